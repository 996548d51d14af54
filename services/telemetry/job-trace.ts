// The worker's side of a request's trace, inside BullMQ's consumer span: queue wait, tier moves (traced as they
// run, or recorded after the fact when they ran outside the trace), prefill, decode, and the histograms at the end.
import { context, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { ColdReason, MoveKind, ServePath } from '../../contracts/vocab.ts';
import { recordEviction, recordMove, recordRequest, recordRequestError } from './metrics.ts';
import type { RequestEnd } from './request-span.ts';
import * as S from '../../contracts/semconv.ts';
import { recordSpan, setRequestPath, tracer, withSpan } from './span-utils.ts';

const SPAN_PREFILL = S.SPAN.prefill;

/** Open job traces by trace id, so moves made inside a job's trace are known to it (see waitedFor). */
const openJobs = new Map<string, JobTrace>();

/**
 * One tier move as a span of the active trace (`swapserve.load`, `swapserve.swap_in`, or, for the evictions a
 * request waits for, `swapserve.evict_wait`) with bytes and GB/s, plus the move metrics. `fn` resolves with the
 * bytes moved. Outside any trace (a scheduler command) only the metrics are recorded.
 */
export async function tracedMove<T extends { bytes: number }>(kind: MoveKind, model: string, fn: () => Promise<T>): Promise<T> {
  const name = kind === 'load' || kind === 'load_to_gpu' ? S.SPAN.load : kind === 'swap_in' ? S.SPAN.swapIn : S.SPAN.evictWait;
  const attrs: Attributes = { [S.ATTR_MOVE_KIND]: kind };
  if (name === S.SPAN.evictWait) attrs[S.ATTR_EVICTED_MODEL] = model;
  else attrs[S.ATTR_GEN_AI_REQUEST_MODEL] = model;
  const t0 = performance.now();
  const measure = (span: Span | null, r: T): T => {
    const seconds = (performance.now() - t0) / 1000;
    span?.setAttribute(S.ATTR_MOVE_BYTES, r.bytes);
    if (seconds > 0 && r.bytes > 0) span?.setAttribute(S.ATTR_MOVE_GBPS, r.bytes / seconds / 1e9);
    recordMove(kind, r.bytes, seconds, model);
    if (kind === 'evict' || kind === 'drop') recordEviction(model, kind === 'evict' ? 'gpu' : 'host');
    return r;
  };
  const active = trace.getActiveSpan();
  if (!active) return measure(null, await fn());
  if (kind === 'load' || kind === 'swap_in' || kind === 'load_to_gpu') openJobs.get(active.spanContext().traceId)?.movesTraced.add(kind === 'swap_in' ? 'swap_in' : 'load');
  return withSpan(name, attrs, async (span) => measure(span, await fn()));
}

// ---- Worker side --------------------------------------------------------------------------------------------

export interface JobTraceInit {
  operation: S.GenAiOperation;
  model: string;
  jobId?: string;
  worker?: string;
  gpu?: number | null;
  /** When the job was enqueued, ms since the epoch (BullMQ's job.timestamp). */
  enqueuedMs: number;
  /** When this worker picked the job up. @defaultValue Date.now() */
  pickedUpMs?: number;
  /**
   * Record the GenAI histograms at end(). The gateway records them for its own requests (RequestSpan.follow),
   * so pass `data.source !== 'gateway'` to count every request once. @defaultValue true
   */
  recordMetrics?: boolean;
}

/**
 * One job's trace on the worker, inside BullMQ's consumer span (call from the processor, where that span is
 * active). Records the queue-wait span at once; phases run through `phase()`/`move()`; `end()` records metrics.
 */
export class JobTrace {
  readonly context: Context;
  private readonly init: JobTraceInit;
  private path: ServePath | null = null;
  private coldReason: ColdReason | null = null;
  private firstTokenMs: number | null = null;
  private ended = false;
  /** Moves that ran inside this trace (as spans through tracedMove). */
  readonly movesTraced = new Set<'load' | 'swap_in'>();

  constructor(init: JobTraceInit, ctx: Context = context.active()) {
    this.init = init;
    this.context = ctx;
    const span = trace.getSpan(ctx);
    if (span?.isRecording()) {
      openJobs.set(span.spanContext().traceId, this);
      // A job that never reaches end() (cancelled before placement) must not grow the map without bound.
      if (openJobs.size > 10_000) openJobs.delete(openJobs.keys().next().value as string);
    }
    const attrs: Attributes = {
      [S.ATTR_GEN_AI_OPERATION_NAME]: init.operation,
      [S.ATTR_GEN_AI_REQUEST_MODEL]: init.model,
    };
    if (init.jobId) attrs[S.ATTR_JOB_ID] = init.jobId;
    if (init.worker) attrs[S.ATTR_WORKER] = init.worker;
    if (init.gpu != null) attrs[S.ATTR_GPU] = init.gpu;
    span?.setAttributes(attrs);
    recordSpan(S.SPAN.queueWait, init.enqueuedMs, init.pickedUpMs ?? Date.now(), {}, ctx);
  }

  /** The path this job takes, decided before any phase runs (stamps every span of the trace here). */
  setPath(path: ServePath, coldReason?: ColdReason | null): void {
    this.path = path;
    this.coldReason = path === 'cold' ? (coldReason ?? null) : null;
    setRequestPath(path, this.coldReason, this.context);
  }

  /** Run one phase (`SPAN.prefill`, `SPAN.decode`, `SPAN.evictWait`, ...) as a child span. */
  phase<T>(name: S.SwapserveSpanName, attrs: Attributes, fn: (span: Span) => Promise<T> | T): Promise<T> {
    return context.with(this.context, () => withSpan(name, attrs, fn));
  }

  /**
   * Run one tier move (`load` or `swap_in`) as a child span carrying bytes and GB/s, and record the move
   * metrics. `fn` returns the bytes actually moved.
   */
  async move(kind: MoveKind, model: string, fn: () => Promise<number>): Promise<number> {
    const name = kind === 'swap_in' ? S.SPAN.swapIn : S.SPAN.load;
    return this.phase(name, { [S.ATTR_MOVE_KIND]: kind, [S.ATTR_GEN_AI_REQUEST_MODEL]: model }, async (span) => {
      const t0 = performance.now();
      const bytes = await fn();
      const seconds = (performance.now() - t0) / 1000;
      span.setAttribute(S.ATTR_MOVE_BYTES, bytes);
      if (seconds > 0) span.setAttribute(S.ATTR_MOVE_GBPS, bytes / seconds / 1e9);
      recordMove(kind, bytes, seconds, model);
      return bytes;
    });
  }

  /**
   * The moves that brought the model to the GPU while this request waited, but ran outside its trace (a
   * scheduler command, or another job of the same model): recorded after the fact as this trace's load / swap-in
   * spans, marked `swapserve.move.by_other`. Moves before the request arrived are not its wait and are skipped.
   */
  waitedFor(moves: { load: { startMs: number; endMs: number } | null; swap: { startMs: number; endMs: number } | null }, bytes?: number): void {
    const add = (kind: 'load' | 'swap_in', m: { startMs: number; endMs: number } | null) => {
      if (!m || this.movesTraced.has(kind) || m.endMs <= this.init.enqueuedMs) return;
      const attrs: Attributes = { [S.ATTR_MOVE_KIND]: kind, [S.ATTR_GEN_AI_REQUEST_MODEL]: this.init.model, [S.ATTR_MOVE_BY_OTHER]: true };
      if (bytes && bytes > 0) {
        attrs[S.ATTR_MOVE_BYTES] = bytes;
        if (m.endMs > m.startMs) attrs[S.ATTR_MOVE_GBPS] = bytes / ((m.endMs - m.startMs) / 1000) / 1e9;
      }
      recordSpan(kind === 'load' ? S.SPAN.load : S.SPAN.swapIn, m.startMs, m.endMs, attrs, this.context);
      this.movesTraced.add(kind);
    };
    add('load', moves.load);
    add('swap_in', moves.swap);
  }

  /**
   * Record prefill after the fact, from generation start to the first token (epoch ms), with the
   * `swapserve.first_token` event on it and on the consumer span.
   */
  prefillDone(startMs: number, firstTokenMs: number): void {
    const span = tracer().startSpan(SPAN_PREFILL, { startTime: startMs }, this.context);
    span.addEvent(S.EVENT.firstToken, firstTokenMs);
    span.end(Math.max(startMs, firstTokenMs));
    this.firstTokenMs ??= firstTokenMs;
    trace.getSpan(this.context)?.addEvent(S.EVENT.firstToken, firstTokenMs);
  }

  /** Record decode after the fact, from the first token to the last (epoch ms). */
  decodeDone(firstTokenMs: number, endMs: number, outputTokens: number): void {
    recordSpan(S.SPAN.decode, firstTokenMs, endMs, { [S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: outputTokens }, this.context);
  }

  /** The first token was sampled: `swapserve.first_token` on the active span (prefill) and the consumer span. */
  firstToken(atMs: number = Date.now()): void {
    if (this.firstTokenMs !== null) return;
    this.firstTokenMs = atMs;
    const active = trace.getActiveSpan();
    const job = trace.getSpan(this.context);
    active?.addEvent(S.EVENT.firstToken, atMs);
    if (job && job !== active) job.addEvent(S.EVENT.firstToken, atMs);
  }

  /** Finish: usage attributes on the consumer span and the GenAI histograms (once per job). */
  end(e: RequestEnd, atMs: number = Date.now()): void {
    if (this.ended) return;
    this.ended = true;
    const span = trace.getSpan(this.context);
    if (span) openJobs.delete(span.spanContext().traceId);
    const attrs: Attributes = { [S.ATTR_OUTCOME]: e.outcome };
    if (e.inputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_INPUT_TOKENS] = e.inputTokens;
    if (e.outputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = e.outputTokens;
    if (e.outcome !== 'completed') attrs[S.ATTR_ERROR_TYPE] = e.errorType ?? e.outcome;
    span?.setAttributes(attrs);
    if (this.init.recordMetrics === false) return;
    if (e.outcome !== 'completed') recordRequestError(this.init.model, e.errorType ?? e.outcome);
    if (!this.path) return; // never decided (failed before placement): no path to label metrics with
    recordRequest({
      model: this.init.model,
      path: this.path,
      operation: this.init.operation,
      coldReason: this.coldReason,
      ttftSeconds: this.firstTokenMs !== null ? (this.firstTokenMs - this.init.enqueuedMs) / 1000 : null,
      durationSeconds: (atMs - this.init.enqueuedMs) / 1000,
      outputTokens: e.outputTokens ?? null,
      inputTokens: e.inputTokens ?? null,
      errorType: e.outcome === 'completed' ? null : (e.errorType ?? e.outcome),
      trace: span?.isRecording() ? span.spanContext() : null,
    });
  }
}

/** Start a job's trace in the worker's BullMQ processor. */
export function jobTrace(init: JobTraceInit): JobTrace {
  return new JobTrace(init);
}
