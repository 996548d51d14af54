// The gateway's (and the SDK's) span of one request: `chat {model}` / `text_completion {model}` with the GenAI
// attributes, the enqueue inside it, the path and first chunk as events arrive, usage and outcome at the end.
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { ColdReason, Outcome, ServePath } from '../../contracts/vocab.ts';
import { recordRequest, recordRequestError } from './metrics.ts';
import { recordRecent } from './recent.ts';
import * as S from '../../contracts/semconv.ts';
import { setRequestPath, tracer } from './span-utils.ts';

export interface RequestSpanInit {
  operation: S.GenAiOperation;
  model: string;
  maxTokens?: number | null;
  temperature?: number | null;
  topP?: number | null;
  seed?: number | null;
  /** The client asked for a streamed (SSE) response. */
  stream?: boolean;
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
  /** Error code (contracts/errors.ts) when the outcome is not 'completed'. */
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
  private path: ServePath | null = null;
  private responseId: string | undefined;
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
    if (init.seed != null) attrs[S.ATTR_GEN_AI_REQUEST_SEED] = init.seed;
    if (init.stream != null) attrs[S.ATTR_GEN_AI_REQUEST_STREAM] = init.stream;
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
    this.path = path;
    setRequestPath(path, coldReason, this.context);
  }

  /** The id the client sees for the response (`chatcmpl-…`), known once the job is enqueued. */
  setResponseId(id: string): void {
    this.responseId = id;
    this.span.setAttribute(S.ATTR_GEN_AI_RESPONSE_ID, id);
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
              inputTokens: ev.promptTokens ?? null,
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

  /** The first chunk reached the client: `swapserve.first_token` event and `time_to_first_chunk` (s). */
  firstChunk(atMs: number = Date.now()): void {
    if (this.firstChunkMs !== null || this.ended) return;
    this.firstChunkMs = atMs;
    this.span.addEvent(S.EVENT.firstToken, atMs);
    this.span.setAttribute(S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, (atMs - this.startMs) / 1000);
  }

  /**
   * End the span (idempotent). A request that did not complete is counted here (errors counter, and its duration
   * with `error.type`); a completed one's histograms are recorded in follow() with the worker's timings.
   */
  end(e: RequestEnd, atMs: number = Date.now()): void {
    if (this.ended) return;
    this.ended = true;
    // swapserve serves exactly the model asked for (no aliasing onto another model).
    const attrs: Attributes = { [S.ATTR_OUTCOME]: e.outcome, [S.ATTR_GEN_AI_RESPONSE_MODEL]: this.model };
    if (e.inputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_INPUT_TOKENS] = e.inputTokens;
    if (e.outputTokens != null) attrs[S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = e.outputTokens;
    if (e.finishReasons) attrs[S.ATTR_GEN_AI_RESPONSE_FINISH_REASONS] = e.finishReasons;
    const responseId = e.responseId ?? this.responseId;
    if (responseId) attrs[S.ATTR_GEN_AI_RESPONSE_ID] = responseId;
    if (e.outcome !== 'completed') {
      const errorType = e.errorType ?? e.outcome;
      attrs[S.ATTR_ERROR_TYPE] = errorType;
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
      if (this.recordMetrics) {
        recordRequestError(this.model, errorType);
        recordRequest({ model: this.model, path: this.path, operation: this.operation, errorType, durationSeconds: (atMs - this.startMs) / 1000 });
      }
    }
    this.span.setAttributes(attrs);
    this.span.end();
  }
}

/** The shape of the gateway's delivered events that the request span reads (services/client/delivery.ts). */
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
