// Spans of one request: the gateway's inference span (`chat {model}`), the worker's job trace with its phase
// spans (queue wait, load, swap-in, eviction waits, prefill, decode) and the `gen_ai.first_token` event.
// Every call is safe without initTelemetry (the OpenTelemetry API is then a no-op) and never throws.
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { ColdReason, MoveKind, Outcome, ServePath } from '../shared/vocab.ts';
import { recordEviction, recordMove, recordRequest, recordRequestError } from './metrics.ts';
import { recordRecent } from './recent.ts';
import { telemetryHandle } from './sdk.ts';
import * as S from './semconv.ts';

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
  telemetryHandle()?.requestAttributes?.setTraceAttributes(span.spanContext().traceId, attrs);
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

// ---- Gateway side -------------------------------------------------------------------------------------------

export interface RequestSpanInit {
  operation: S.GenAiOperation;
  model: string;
  maxTokens?: number | null;
  temperature?: number | null;
  topP?: number | null;
  /** Request start in ms since the epoch. @defaultValue Date.now() */
  startMs?: number;
  /**
   * Record the GenAI histograms when the request is done. The gateway does; the SDK does not (its jobs are
   * counted by the worker, since an SDK process usually serves no /metrics). @defaultValue true
   */
  recordMetrics?: boolean;
}

export interface RequestEnd {
  outcome: Outcome;
  inputTokens?: number | null;
  outputTokens?: number | null;
  finishReasons?: string[];
  responseId?: string;
  /** Error code (services/shared/errors.ts) when the outcome is not 'completed'. */
  errorType?: string | null;
}

/**
 * The gateway's `chat {model}` / `text_completion {model}` span. Run the enqueue inside `run()` so BullMQ's
 * producer span (and through it the worker's spans) join this trace.
 */
export class RequestSpan {
  readonly span: Span;
  readonly context: Context;
  private readonly startMs: number;
  private readonly model: string;
  private readonly operation: S.GenAiOperation;
  private readonly recordMetrics: boolean;
  private firstChunkMs: number | null = null;
  private ended = false;

  constructor(init: RequestSpanInit, parent: Context = context.active()) {
    this.startMs = init.startMs ?? Date.now();
    this.model = init.model;
    this.operation = init.operation;
    this.recordMetrics = init.recordMetrics ?? true;
    const attrs: Attributes = {
      [S.ATTR_GEN_AI_OPERATION_NAME]: init.operation,
      [S.ATTR_GEN_AI_PROVIDER_NAME]: S.GEN_AI_PROVIDER,
      [S.ATTR_GEN_AI_REQUEST_MODEL]: init.model,
    };
    if (init.maxTokens != null) attrs[S.ATTR_GEN_AI_REQUEST_MAX_TOKENS] = init.maxTokens;
    if (init.temperature != null) attrs[S.ATTR_GEN_AI_REQUEST_TEMPERATURE] = init.temperature;
    if (init.topP != null) attrs[S.ATTR_GEN_AI_REQUEST_TOP_P] = init.topP;
    this.span = tracer().startSpan(
      S.inferenceSpanName(init.operation, init.model),
      { kind: SpanKind.INTERNAL, attributes: attrs, startTime: this.startMs },
      parent,
    );
    this.context = trace.setSpan(parent, this.span);
  }

  /** Run `fn` with this span active (enqueue inside it). */
  run<T>(fn: () => T): T {
    return context.with(this.context, fn);
  }

  /** The path the worker chose; stamps every span of the trace in this process. */
  setPath(path: ServePath, coldReason?: ColdReason | null): void {
    setRequestPath(path, coldReason, this.context);
  }

  /**
   * Enqueue inside this span (BullMQ's producer span becomes its child and carries the trace to the worker).
   * A rejection (queue full, Redis down) ends the span as failed and is re-thrown.
   */
  async enqueue<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await context.with(this.context, fn);
    } catch (err) {
      this.end({ outcome: 'failed', errorType: errorCode(err) });
      throw err;
    }
  }

  /**
   * Pass a request's delivered events through unchanged while recording them: the path and the first chunk at
   * the first token, usage at done, the error code at error; an iteration that stops without either (client
   * gone) ends the span as cancelled.
   */
  async *follow<E extends DeliveredLike>(events: AsyncIterable<E>): AsyncGenerator<E> {
    try {
      for await (const ev of events) {
        if (ev.type === 'token' && ev.path) {
          this.setPath(ev.path, ev.coldReason);
          if (this.firstChunkMs === null) {
            this.firstChunk();
            recordRecent({
              model: this.model,
              path: ev.path,
              coldReason: ev.coldReason ?? null,
              ttftMs: ev.timings?.ttftMs ?? (this.firstChunkMs ?? Date.now()) - this.startMs,
              atMs: Date.now(),
            });
          }
        } else if (ev.type === 'done') {
          if (ev.path) this.setPath(ev.path, ev.coldReason);
          const cancelled = ev.finishReason === 'cancelled';
          // The GenAI histograms of a gateway request are recorded here, once, with the worker's timings (measured
          // from this gateway's arrival time); the worker records them only for SDK jobs. So the gateway's own
          // /metrics carries them whatever process the worker runs in.
          if (ev.path && ev.timings && !cancelled && this.recordMetrics) {
            recordRequest({
              model: this.model,
              path: ev.path,
              operation: this.operation,
              ttftSeconds: ev.timings.ttftMs / 1000,
              durationSeconds: ev.timings.totalMs != null ? ev.timings.totalMs / 1000 : null,
              outputTokens: ev.completionTokens ?? null,
              trace: this.span.isRecording() ? this.span.spanContext() : null,
            });
          }
          this.end({
            outcome: cancelled ? 'cancelled' : 'completed',
            inputTokens: ev.promptTokens,
            outputTokens: ev.completionTokens,
            finishReasons: ev.finishReason ? [ev.finishReason] : undefined,
          });
        } else if (ev.type === 'error') {
          const code = errorCode(ev.error);
          this.end({ outcome: code === 'cancelled' ? 'cancelled' : 'failed', errorType: code });
        }
        yield ev;
      }
    } finally {
      this.end({ outcome: 'cancelled', errorType: 'cancelled' });
    }
  }

  /** The first chunk reached the client: `gen_ai.first_token` event and `time_to_first_chunk` (s). */
  firstChunk(atMs: number = Date.now()): void {
    if (this.firstChunkMs !== null || this.ended) return;
    this.firstChunkMs = atMs;
    this.span.addEvent(S.EVENT.firstToken, atMs);
    this.span.setAttribute(S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, (atMs - this.startMs) / 1000);
  }

  /** End the span (idempotent). Metrics are recorded by the worker, once per job, not here. */
  end(e: RequestEnd): void {
    if (this.ended) return;
    this.ended = true;
    const attrs: Attributes = { [S.ATTR_OUTCOME]: e.outcome };
    if (e.inputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_INPUT_TOKENS] = e.inputTokens;
    if (e.outputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = e.outputTokens;
    if (e.finishReasons) attrs[S.ATTR_GEN_AI_RESPONSE_FINISH_REASONS] = e.finishReasons;
    if (e.responseId) attrs[S.ATTR_GEN_AI_RESPONSE_ID] = e.responseId;
    if (e.outcome !== 'completed') {
      attrs[S.ATTR_ERROR_TYPE] = e.errorType ?? e.outcome;
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: e.errorType ?? e.outcome });
      if (this.recordMetrics) recordRequestError(this.model, e.errorType ?? e.outcome);
    }
    this.span.setAttributes(attrs);
    this.span.end();
  }
}

/** The shape of the gateway's delivered events that the request span reads (services/shared/delivery.ts). */
export interface DeliveredLike {
  type: string;
  path?: ServePath;
  coldReason?: ColdReason;
  finishReason?: string;
  /** Stage timings (ms) as the worker measured them: on the first token and on done. */
  timings?: { ttftMs: number; totalMs?: number };
  promptTokens?: number;
  completionTokens?: number;
  error?: unknown;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}

/** Start the gateway's inference span as a child of `parent` (pass `requestContext(req)` from ./http.ts). */
export function requestSpan(init: RequestSpanInit, parent: Context = context.active()): RequestSpan {
  return new RequestSpan(init, parent);
}

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
   * `gen_ai.first_token` event on it and on the consumer span.
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

  /** The first token was sampled: `gen_ai.first_token` on the active span (prefill) and the consumer span. */
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
      errorType: e.outcome === 'completed' ? null : (e.errorType ?? e.outcome),
      trace: span?.isRecording() ? span.spanContext() : null,
    });
  }
}

/** Start a job's trace in the worker's BullMQ processor. */
export function jobTrace(init: JobTraceInit): JobTrace {
  return new JobTrace(init);
}
