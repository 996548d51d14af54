// Span helpers shared by the request and job traces: the tracer, child spans around work, spans recorded after
// the fact, and the path stamp that reaches every span of a trace. All are no-ops without initTelemetry.
import { context, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';
import { instrumentationHandle } from './handle.ts';
import * as S from '../../contracts/semconv.ts';

export function tracer(): Tracer {
  return trace.getTracer('swapserve');
}

/** Put the serving path (and cold reason) on every span of the current trace in this process. */
export function setRequestPath(path: ServePath, coldReason?: ColdReason | null, ctx: Context = context.active()): void {
  const span = trace.getSpan(ctx);
  if (!span) return;
  const attrs: Attributes = { [S.ATTR_PATH]: path };
  if (path === 'cold' && coldReason) attrs[S.ATTR_COLD_REASON] = coldReason;
  span.setAttributes(attrs);
  instrumentationHandle()?.setTraceAttributes?.(span.spanContext().traceId, attrs);
}

/**
 * Run `fn` inside a child span of the active context. The span ends when `fn` settles; a throw or rejection is
 * recorded on the span (status ERROR, `error.type`) and re-thrown.
 */
export async function withSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => Promise<T> | T): Promise<T> {
  return tracer().startActiveSpan(name, { attributes: attrs }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      markError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

function markError(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (err as { code?: unknown })?.code;
  span.recordException(e);
  span.setAttribute(S.ATTR_ERROR_TYPE, typeof code === 'string' ? code : e.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

/** Record a span that already happened (start and end known), as a child of `ctx`. */
export function recordSpan(name: string, startMs: number, endMs: number, attrs: Attributes, ctx = context.active()): void {
  tracer().startSpan(name, { attributes: attrs, startTime: startMs }, ctx).end(Math.max(startMs, endMs));
}
