// A span processor that puts a request's serving path (`swapserve.path`, `swapserve.cold_reason`) on every span
// of its trace in this process, including spans that ended before the path was known (BullMQ's producer span
// ends when the job is added; the path is decided later by the worker).
import type { Attributes, AttributeValue, Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

interface TraceState {
  /** Attributes to stamp on every span of the trace (path, cold reason). */
  attrs: Attributes | null;
  /** Spans of the trace still open in this process. */
  open: Set<Span>;
  /** Ended spans held back until the attributes are known or the trace's local root ends. */
  held: ReadableSpan[];
}

/** Spans held per trace at most; past this they are released unstamped (a runaway trace must not grow memory). */
const MAX_HELD_PER_TRACE = 512;

export class RequestAttributeProcessor implements SpanProcessor {
  private readonly traces = new Map<string, TraceState>();

  constructor(private readonly next: SpanProcessor) {}

  /** Stamp `attrs` on every span of `traceId`: open ones now, held ones now, future ones at start. */
  setTraceAttributes(traceId: string, attrs: Attributes): void {
    const st = this.traces.get(traceId);
    if (!st) return; // the trace has no open span here: nothing left to stamp
    st.attrs = { ...(st.attrs ?? {}), ...attrs };
    for (const span of st.open) span.setAttributes(attrs);
    for (const span of st.held) stamp(span, attrs);
    const held = st.held;
    st.held = [];
    for (const span of held) this.next.onEnd(span);
  }

  onStart(span: Span, parentContext: Context): void {
    const traceId = span.spanContext().traceId;
    let st = this.traces.get(traceId);
    if (!st) {
      st = { attrs: null, open: new Set(), held: [] };
      this.traces.set(traceId, st);
    }
    st.open.add(span);
    if (st.attrs) span.setAttributes(st.attrs);
    this.next.onStart(span, parentContext);
  }

  onEnding(span: Span): void {
    this.next.onEnding?.(span);
  }

  onEnd(span: ReadableSpan): void {
    const traceId = span.spanContext().traceId;
    const st = this.traces.get(traceId);
    if (!st) {
      this.next.onEnd(span);
      return;
    }
    st.open.delete(span as Span);
    if (st.attrs) {
      stamp(span, st.attrs);
      this.next.onEnd(span);
    } else if (st.held.length < MAX_HELD_PER_TRACE && st.open.size > 0) {
      st.held.push(span);
    } else {
      this.next.onEnd(span);
    }
    if (st.open.size === 0) {
      // The last open span of the trace in this process ended: release whatever is held, stamped or not.
      this.traces.delete(traceId);
      for (const held of st.held) this.next.onEnd(held);
    }
  }

  forceFlush(): Promise<void> {
    return this.next.forceFlush();
  }

  async shutdown(): Promise<void> {
    for (const st of this.traces.values()) for (const held of st.held) this.next.onEnd(held);
    this.traces.clear();
    await this.next.shutdown();
  }
}

/** Set attributes on an ended span (the SDK ignores setAttribute after end; the exporter reads this object). */
function stamp(span: ReadableSpan, attrs: Attributes): void {
  const target = span.attributes as Record<string, AttributeValue | undefined>;
  for (const [k, v] of Object.entries(attrs)) if (target[k] === undefined) target[k] = v;
}
