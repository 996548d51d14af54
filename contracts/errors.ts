// One registry of the spine's stable error codes: HTTP status, OpenAI error type, message template.
export const ERRORS = {
  invalid_request: { status: 400, type: 'invalid_request_error', retryable: false, message: 'Invalid request: %s' },
  model_not_found: { status: 404, type: 'invalid_request_error', retryable: false, message: 'The model `%s` does not exist' },
  not_found: { status: 404, type: 'invalid_request_error', retryable: false, message: 'Unknown route %s' },
  body_too_large: { status: 413, type: 'invalid_request_error', retryable: false, message: 'Request body is larger than %s bytes' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error', retryable: false, message: 'Expected application/json but received %s' },
  queue_full: { status: 429, type: 'rate_limit_error', retryable: true, message: 'The queue of model `%s` is full; retry later' },
  draining: { status: 503, type: 'server_error', retryable: true, message: 'The server is draining and accepts no new requests' },
  not_ready: { status: 503, type: 'server_error', retryable: true, message: 'The server is not ready: %s' },
  timeout: { status: 504, type: 'server_error', retryable: true, message: 'No answer from a worker within %s ms' },
  /** A worker died after sending tokens; the retry would repeat them, so the stream ends and the client retries. */
  worker_lost: { status: 502, type: 'server_error', retryable: true, message: 'The worker serving this request was lost after %s tokens; retry the request' },
  model_load_failed: { status: 503, type: 'server_error', retryable: true, message: 'Model `%s` could not be loaded' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error', retryable: false, message: 'The prompt (%s tokens) does not fit the context window' },
  generation_failed: { status: 500, type: 'server_error', retryable: true, message: 'Generation failed' },
  cancelled: { status: 499, type: 'server_error', retryable: false, message: 'The request was cancelled' },
  internal_error: { status: 500, type: 'server_error', retryable: true, message: 'Internal server error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** The OpenAI error object (the body of every error response, and of SSE error events). */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** A typed error with a stable code; carries what an HTTP response or a stream error event needs. */
export class SwapserveError extends Error {
  override name = 'SwapserveError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  readonly retryable: boolean;
  readonly param: string | null;
  /** Seconds a client should wait before retrying (429/503), sent as Retry-After. */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, args: { detail?: string | number; message?: string; param?: string; retryAfterS?: number; cause?: unknown } = {}) {
    const def = ERRORS[code];
    const message = args.message ?? def.message.replace('%s', String(args.detail ?? ''));
    super(message, args.cause === undefined ? undefined : { cause: args.cause });
    this.code = code;
    this.status = def.status;
    this.type = def.type;
    this.retryable = def.retryable;
    this.param = args.param ?? null;
    this.retryAfterS = args.retryAfterS;
  }

  /** The OpenAI error body; 5xx messages come from the registry only, so internals never leak. */
  toBody(): OpenAIErrorBody {
    const message = this.status >= 500 && this.code === 'internal_error' ? ERRORS.internal_error.message : this.message;
    return { error: { message, type: this.type, param: this.param, code: this.code } };
  }
}

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && v in ERRORS;
}
