// Every span, attribute, event and metric name swapserve emits, in one place.
// The GenAI names are still "development" in OpenTelemetry's semantic conventions, so they are copied here
// (as the OpenTelemetry JS maintainers advise for unstable names) instead of imported from the incubating entry.

// ---- Span names --------------------------------------------------------------------------------------------

/** The inference span: `{gen_ai.operation.name} {gen_ai.request.model}`, e.g. `chat stories260K`. */
export const inferenceSpanName = (operation: GenAiOperation, model: string): string => `${operation} ${model}`;
/** HTTP server span: `{method} {route}` (HTTP semconv), e.g. `POST /v1/chat/completions`. */
export const httpSpanName = (method: string, route: string | undefined): string =>
  route ? `${method} ${route}` : method;

/** Worker child spans, one per phase of serving a job. */
export const SPAN = {
  /** From enqueue (job.timestamp) to the worker picking the job up; includes a cold worker start. */
  queueWait: 'swapserve.queue_wait',
  /** Disk -> host (or disk -> GPU) load of a model's weights. */
  load: 'swapserve.load',
  /** Pinned host -> GPU copy of a model's arena. */
  swapIn: 'swapserve.swap_in',
  /** Waiting for another model to be evicted to make room. */
  evictWait: 'swapserve.evict_wait',
  /** Prompt prefill (forward pass over the prompt, up to the first sampled token). */
  prefill: 'swapserve.prefill',
  /** Token-by-token decode after the first token. */
  decode: 'swapserve.decode',
  /**
   * A worker process's start: from the process start to ready (runtime open, registered with the scheduler). A trace
   * of its own (a worker serves many requests); the requests a scale from zero waited for name the same worker.
   */
  workerStart: 'swapserve.worker_start',
} as const;
export type SwapserveSpanName = (typeof SPAN)[keyof typeof SPAN];

/** Span events. */
export const EVENT = {
  /** The first output token was produced (worker) or streamed to the client (gateway). */
  firstToken: 'gen_ai.first_token',
  /** On swapserve.worker_start: the worker's code is loaded (Node started, modules imported). */
  workerImported: 'swapserve.worker.imported',
  /** On swapserve.worker_start: the native runtime is open (device context, pools). */
  workerRuntimeOpen: 'swapserve.worker.runtime_open',
} as const;

// ---- Attributes ----------------------------------------------------------------------------------------------

export const GEN_AI_OPERATIONS = ['chat', 'text_completion'] as const;
export type GenAiOperation = (typeof GEN_AI_OPERATIONS)[number];

/** OpenTelemetry GenAI semantic-convention attributes (development status, copied). */
export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
export const ATTR_GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
export const ATTR_GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
export const ATTR_GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
export const ATTR_GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
export const ATTR_GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
export const ATTR_GEN_AI_REQUEST_MAX_TOKENS = 'gen_ai.request.max_tokens';
export const ATTR_GEN_AI_REQUEST_TEMPERATURE = 'gen_ai.request.temperature';
export const ATTR_GEN_AI_REQUEST_TOP_P = 'gen_ai.request.top_p';
export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
/** Seconds from the request's start to the first streamed chunk (GenAI semconv). */
export const ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = 'gen_ai.response.time_to_first_chunk';
/** `gen_ai.provider.name` value for spans produced by swapserve itself. */
export const GEN_AI_PROVIDER = 'swapserve';

/** Stable general attributes (HTTP, errors). */
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_URL_PATH = 'url.path';
export const ATTR_URL_SCHEME = 'url.scheme';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_SERVICE_NAME = 'service.name';

/** swapserve's own attributes. */
/** `warm | swap | cold` (contracts/vocab.ts PATHS): on every span of a request. */
export const ATTR_PATH = 'swapserve.path';
/** `disk_load | worker_start` (COLD_REASONS): on every span of a cold request. */
export const ATTR_COLD_REASON = 'swapserve.cold_reason';
export const ATTR_WORKER = 'swapserve.worker';
export const ATTR_GPU = 'swapserve.gpu';
export const ATTR_BACKEND = 'swapserve.backend';
export const ATTR_JOB_ID = 'swapserve.job.id';
export const ATTR_OUTCOME = 'swapserve.outcome';
export const ATTR_TIER = 'swapserve.tier';
export const ATTR_MOVE_KIND = 'swapserve.move.kind';
/** Bytes moved by one tier move. */
export const ATTR_MOVE_BYTES = 'swapserve.move.bytes';
/** Achieved bandwidth of one move in GB/s (1e9 bytes per second). */
export const ATTR_MOVE_GBPS = 'swapserve.move.gbps';
/** On a load / swap-in span: the move ran outside this request (scheduler command, another job); the request waited for it. */
export const ATTR_MOVE_BY_OTHER = 'swapserve.move.by_other';
/** Model evicted while this request waited. */
export const ATTR_EVICTED_MODEL = 'swapserve.evict.model';
export const ATTR_QUEUE_STATE = 'swapserve.queue.state';
export const ATTR_WORKER_STATE = 'swapserve.worker.state';
/** The policy event a scheduler decision handled: worker-state | worker-gone | queue | result | worker-start-failed | tick. */
export const ATTR_SCHEDULER_EVENT = 'swapserve.scheduler.event';
/** What a scheduler action does: send (a worker command) | start-worker | stop-worker. */
export const ATTR_SCHEDULER_ACTION = 'swapserve.scheduler.action';
/** The worker command a `send` action carries (load, swap_in, load_to_gpu, evict, drop, consume, stop_consume, drain). */
export const ATTR_COMMAND_KIND = 'swapserve.command.kind';

// ---- Metrics -------------------------------------------------------------------------------------------------

/** GenAI server histograms (seconds), attributes gen_ai.request.model + swapserve.path (+ gen_ai.operation.name). */
export const METRIC_TTFT = 'gen_ai.server.time_to_first_token';
export const METRIC_TPOT = 'gen_ai.server.time_per_output_token';
export const METRIC_REQUEST_DURATION = 'gen_ai.server.request.duration';

/** Requests that ended without a completion; attributes gen_ai.request.model, error.type (the error code). */
export const METRIC_REQUEST_ERRORS = 'swapserve.request.errors';
/** Requests waiting / active in a model's queue; attributes gen_ai.request.model, swapserve.queue.state. */
export const METRIC_QUEUE_DEPTH = 'swapserve.queue.depth';
/** Age in seconds of the oldest waiting job per model. */
export const METRIC_QUEUE_OLDEST_WAIT = 'swapserve.queue.oldest_wait';
/** Bytes of a model held in a tier on a worker; attributes gen_ai.request.model, swapserve.tier, swapserve.worker. */
export const METRIC_RESIDENCY_BYTES = 'swapserve.residency.bytes';
/** Bytes moved between tiers; attribute swapserve.move.kind. */
export const METRIC_MOVE_BYTES = 'swapserve.move.bytes';
/** Seconds per tier move; attribute swapserve.move.kind. */
export const METRIC_MOVE_DURATION = 'swapserve.move.duration';
/** Achieved bandwidth per move in GB/s; attribute swapserve.move.kind. */
export const METRIC_MOVE_BANDWIDTH = 'swapserve.move.bandwidth';
/** Peak bandwidth of a worker's host->GPU link in GB/s (configured or measured); attribute swapserve.worker. */
export const METRIC_LINK_PEAK = 'swapserve.link.peak_bandwidth';
/** Evictions; attributes gen_ai.request.model, swapserve.tier (the tier evicted from). */
export const METRIC_EVICTIONS = 'swapserve.evictions';
/** Workers known to the cluster; attribute swapserve.worker.state. */
export const METRIC_WORKERS = 'swapserve.workers';
/** Seconds the scheduler's pure policy took per event (the leader's decision latency); attribute swapserve.scheduler.event. */
export const METRIC_SCHEDULER_DECISION = 'swapserve.scheduler.decision.duration';
/** Actions the leader applied; attributes swapserve.scheduler.action, swapserve.command.kind (sends). */
export const METRIC_SCHEDULER_ACTIONS = 'swapserve.scheduler.actions';
/** Actions that failed when applied (a command not written, a worker that could not start); same attributes. */
export const METRIC_SCHEDULER_ACTION_FAILURES = 'swapserve.scheduler.action.failures';
/** Seconds from a worker process's start to ready (swapserve.worker_start); attribute swapserve.backend. */
export const METRIC_WORKER_START = 'swapserve.worker.start.duration';
/** Restarts of a process `swapserve up` supervises (it exited); attribute swapserve.process (worker-0, scheduler...). */
export const METRIC_SUPERVISOR_RESTARTS = 'swapserve.supervisor.restarts';
/** 1 while a scheduler holds the leader lease, else 0 (observed by `swapserve up` from Redis). */
export const METRIC_SCHEDULER_LEADER = 'swapserve.scheduler.leader';
/** The process a supervisor restarted. */
export const ATTR_PROCESS = 'swapserve.process';

/**
 * The name a metric gets on a Prometheus `/metrics` page (@opentelemetry/exporter-prometheus): dots and other
 * invalid characters become `_`, counters get `_total`. Units are not appended. Used by the dashboards' tests.
 */
export function prometheusName(name: string, kind: 'counter' | 'gauge' | 'histogram' = 'gauge'): string {
  const base = name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/_{2,}/g, '_');
  return kind === 'counter' && !base.endsWith('_total') ? `${base}_total` : base;
}
