// One registry of stable error codes: the request errors clients see (HTTP status, OpenAI error type, message
// template), then the codes of every layer below (worker commands, engine, model files, tokenizers, native addon).
export const ERRORS = {
  invalid_request: { status: 400, type: 'invalid_request_error', retryable: false, message: 'Invalid request: %s' },
  /** A parameter (or a value of one) swapserve does not implement: refused rather than ignored; `param` names it. */
  unsupported_parameter: { status: 400, type: 'invalid_request_error', retryable: false, message: 'Unsupported parameter: %s is not supported by this server' },
  model_not_found: { status: 404, type: 'invalid_request_error', retryable: false, message: 'The model `%s` does not exist' },
  not_found: { status: 404, type: 'invalid_request_error', retryable: false, message: 'Unknown route %s' },
  body_too_large: { status: 413, type: 'invalid_request_error', retryable: false, message: 'Request body is larger than %s bytes' },
  request_timeout: { status: 408, type: 'invalid_request_error', retryable: true, message: 'The request was not received in time (%s)' },
  idempotency_conflict: { status: 409, type: 'invalid_request_error', retryable: false, message: 'Idempotency-Key `%s` was already used with a different request body' },
  expectation_failed: { status: 417, type: 'invalid_request_error', retryable: false, message: 'Expect: %s is not supported (only 100-continue)' },
  host_not_allowed: { status: 403, type: 'invalid_request_error', retryable: false, message: 'Host `%s` is not allowed (gateway.allowedHosts guards a loopback gateway against DNS rebinding)' },
  headers_too_large: { status: 431, type: 'invalid_request_error', retryable: false, message: 'The request headers are larger than %s bytes' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error', retryable: false, message: 'Expected application/json but received %s' },
  invalid_api_key: { status: 401, type: 'invalid_request_error', retryable: false, message: 'Missing or invalid API key: %s' },
  model_not_allowed: { status: 403, type: 'permission_error', retryable: false, message: 'This API key may not use the model `%s`' },
  admin_required: { status: 403, type: 'permission_error', retryable: false, message: '%s needs an admin key' },
  rate_limited: { status: 429, type: 'rate_limit_error', retryable: true, message: 'Rate limit of %s reached; retry later' },
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
  too_many_connections: { status: 503, type: 'server_error', retryable: true, message: 'The gateway holds its maximum of %s open connections; retry later' },
} as const;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** The OpenAI error object (the body of every error response, and of SSE error events). */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/**
 * The base of every swapserve error: a stable code from this registry (any layer's table below). Subclasses exist
 * only where callers branch on the class (RequestError for what reaches a client; EngineError, ModelFileError,
 * TokenizerError, SwapserveNativeError, TierError, ClusterDataError, ConfigError, RedisNotFoundError); everything
 * else throws a SwapserveError and callers branch on `isSwapserveError(e, code)`.
 */
export class SwapserveError<C extends SwapserveErrorCode = SwapserveErrorCode> extends Error {
  override name = 'SwapserveError';
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

/** Any swapserve error, or one with this code (of any layer). */
export function isSwapserveError<C extends SwapserveErrorCode>(e: unknown, code?: C): e is SwapserveError<C> {
  return e instanceof SwapserveError && (code === undefined || e.code === code);
}

/** A request error (a code of ERRORS): carries what an HTTP response or a stream error event needs. */
export class RequestError extends SwapserveError<ErrorCode> {
  override name = 'RequestError';
  readonly status: number;
  readonly type: string;
  readonly retryable: boolean;
  readonly param: string | null;
  /** Seconds a client should wait before retrying (429/503), sent as Retry-After. */
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, args: { detail?: string | number; message?: string; param?: string; retryAfterS?: number; cause?: unknown } = {}) {
    const def = ERRORS[code];
    const message = args.message ?? def.message.replace('%s', String(args.detail ?? ''));
    super(code, message, { cause: args.cause });
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


// ---- Every other error code, by the layer that raises it ------------------------------------------------------
// One registry: each error class carries a code from one table here, every table snake_case, the native addon's
// included (the C++ strings are spelled so: see NATIVE_ERROR_CODES). A code that reaches an HTTP client is mapped
// to a code of ERRORS above.

/** Worker command results (contracts/cluster.ts CommandResult) and the worker's tier errors. */
export const COMMAND_ERROR_CODES = [
  'in_use', // evict/drop of a model with active jobs
  'out_of_memory', // the tier's budget (or the device) has no room
  'not_found', // model unknown to the worker, or not in the tier the move starts from
  'stale_epoch', // issued by a deposed leader
  'invalid', // failed validation
  'io', // disk read failed
  'device', // device error
  'draining', // worker is draining
  'internal',
] as const;
export type CommandErrorCode = (typeof COMMAND_ERROR_CODES)[number];

/** Data read from Redis that does not match its schema (contracts/cluster.ts ClusterDataError). */
export const CLUSTER_DATA_ERROR_CODE = 'cluster_data_invalid';

/** The engine (native/ts/engine-errors.ts EngineError); named as in ERRORS where one exists there, so the worker maps them one to one. */
export const ENGINE_ERROR_CODES = {
  invalid_request: 'a generate request or engine option is malformed',
  context_length_exceeded: 'prompt + maxTokens is longer than the engine context (maxContext)',
  closed: 'the engine was closed',
  decode_failed: 'a sampled token id could not be turned into text (e.g. a model vocab larger than its tokenizer\'s)',
  native: 'the native engine failed (see nativeCode: budget, oom, cuda_sticky, ...)',
} as const;
export type EngineErrorCode = keyof typeof ENGINE_ERROR_CODES;

/** Model files (native/ts/model/errors.ts ModelFileError): one code per way a file can be wrong. */
export const MODEL_FILE_ERROR_CODES = {
  not_found: 'the path does not exist or is not a model folder / .gguf file',
  io: 'reading the file failed',
  timeout: 'opening or reading the file did not finish in time (a dead network mount, a device that blocks)',
  truncated: 'the file ends before a structure it declares',
  header_too_large: 'a declared header or string length is larger than allowed',
  bad_json: 'a JSON file or header does not parse or has the wrong shape',
  duplicate_key: 'a safetensors JSON header names the same key twice (the format forbids it)',
  bad_header: 'a safetensors header entry is malformed',
  unknown_dtype: 'a tensor has a dtype this format does not define',
  unsupported_dtype: 'a tensor has a known dtype that swapserve cannot run yet (e.g. quantized GGUF)',
  offset_gap: 'tensor data ranges leave a gap',
  offset_overlap: 'tensor data ranges overlap',
  size_mismatch: 'a tensor byte size does not match its shape and dtype, or the file size does not match the data',
  out_of_bounds: 'a tensor lies (partly) outside the file',
  bad_magic: 'the file is not a GGUF file',
  bad_version: 'unsupported GGUF version',
  bad_metadata: 'a GGUF metadata value has the wrong type or is invalid',
  bad_alignment: 'general.alignment is not a power of two, or a tensor offset is not aligned',
  duplicate_tensor: 'a tensor name occurs twice',
  missing_tensor: 'a tensor the architecture needs is missing',
  unexpected_tensor: 'a tensor the architecture does not use is present',
  shape_mismatch: 'a tensor shape does not match the one the config implies',
  bad_config: 'config.json / GGUF hyper-parameters are missing or inconsistent',
  unsupported_arch: 'the architecture is not one swapserve runs',
  bad_index: 'model.safetensors.index.json is malformed or disagrees with the shards',
  quant_block: 'a block-quantized GGUF tensor\'s rows are not a whole number of blocks, or a quantized tensor is not a weight matrix',
} as const;
export type ModelFileErrorCode = keyof typeof MODEL_FILE_ERROR_CODES;

/** Tokenizers (native/ts/tokenizer/types.ts TokenizerError). */
export const TOKENIZER_ERROR_CODES = {
  no_tokenizer: 'the model carries no tokenizer',
  bad_vocab: 'the vocabulary is missing pieces or inconsistent',
  unsupported: 'this tokenizer type is not supported',
  bad_token_id: 'a token id is outside the vocabulary',
  bad_messages: 'chat messages are malformed (unknown role, empty list)',
} as const;
export type TokenizerErrorCode = keyof typeof TOKENIZER_ERROR_CODES;

/** The addon's stable codes, thrown by the addon as ErrorCodeName (native/src/common/errors.cc) spells them; the
 * test/runtime/errors.test.ts keeps the two in sync. The C++ strings are snake_case rather than mapped at the TS
 * boundary: the addon is reached through two wrappers (native/ts/errors.ts fromNative for the runtime,
 * native/ts/engine-errors.ts fromNative for the engine, which keeps it as nativeCode), so a map would be a second
 * spelling to keep in step in two places, and `SWAPSERVE_CUDA` was also the name of a build macro. */
export const NATIVE_ERROR_CODES = [
  'invalid_argument',
  'budget',
  'oom',
  'cuda_sticky',
  'cuda',
  'io',
  'not_resident',
  'state',
  'aborted',
  'unusable',
  /** The addon could not be loaded (not built, or built for another platform). JS only. */
  'addon',
] as const;
export type NativeErrorCode = (typeof NATIVE_ERROR_CODES)[number];

/** What a caller should do about each code. */
export const NATIVE_ERROR_HINTS: Record<NativeErrorCode, string> = {
  invalid_argument: 'fix the call',
  budget: 'evict or drop a model (or raise the budget), then retry',
  oom: 'recoverable: evict or drop a model, then retry',
  cuda_sticky: 'fatal: the CUDA context is corrupted; drain the worker and exit non-zero',
  cuda: 'the CUDA call failed; see the message',
  io: 'check the model files',
  not_resident: 'move the model to the GPU tier first',
  state: 'the move is not valid in the model\'s current residency; check residency() first',
  aborted: 'the runtime was closing',
  unusable: 'fatal: an earlier sticky error made the runtime unusable; drain and exit non-zero',
  addon: 'rebuild the addon: npm run build:native',
};

/** Command-line tools and local setup (services/cli, services/config, services/dev, the bench CLIs). */
export const CLI_ERROR_CODES = {
  config_invalid: 'a config file, environment variable or option is invalid (services/config/config.ts ConfigError)',
  redis_not_found: 'no redis-server to start for local runs (services/dev/local-redis.ts RedisNotFoundError)',
  usage: 'bad command-line arguments; an empty message asks for the usage text',
  mps_unavailable: 'co-location asked for NVIDIA MPS but nvidia-cuda-mps-control (or nvidia-smi) is missing (services/scheduler/mps.ts MpsError)',
  mps_compute_mode: "a GPU's compute mode forbids MPS clients (Prohibited or Exclusive_Thread) (services/scheduler/mps.ts MpsError)",
  mps_failed: 'the MPS control daemon did not start, answer or stop (services/scheduler/mps.ts MpsError)',
} as const;
export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

/** The fleet simulator and planner's inputs (services/simulator, services/fleet). */
export const FLEET_ERROR_CODES = {
  fleet_invalid: 'a fleet file is unreadable or has a bad field (services/simulator/fleet-spec.ts FleetError)',
  trace_invalid: 'a request trace is unreadable or has a bad row (services/simulator/trace.ts TraceError)',
  calibration_invalid: 'a calibration or plan input is bad (services/fleet/calibration.ts FleetInputError)',
} as const;
export type FleetErrorCode = keyof typeof FLEET_ERROR_CODES;

/** Every code of every layer: what a SwapserveError may carry. */
export type SwapserveErrorCode = ErrorCode | CommandErrorCode | typeof CLUSTER_DATA_ERROR_CODE | EngineErrorCode
  | ModelFileErrorCode | TokenizerErrorCode | NativeErrorCode | CliErrorCode | FleetErrorCode;

/** Every code by layer: what the registry test checks (one casing per table, no code with two meanings). */
export const ERROR_REGISTRY = {
  request: ERROR_CODES,
  command: COMMAND_ERROR_CODES,
  cluster: [CLUSTER_DATA_ERROR_CODE],
  engine: Object.keys(ENGINE_ERROR_CODES) as EngineErrorCode[],
  model_file: Object.keys(MODEL_FILE_ERROR_CODES) as ModelFileErrorCode[],
  tokenizer: Object.keys(TOKENIZER_ERROR_CODES) as TokenizerErrorCode[],
  native: NATIVE_ERROR_CODES,
  cli: Object.keys(CLI_ERROR_CODES) as CliErrorCode[],
  fleet: Object.keys(FLEET_ERROR_CODES) as FleetErrorCode[],
} as const;
