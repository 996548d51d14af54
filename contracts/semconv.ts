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
  /**
   * The first output token was produced (worker) or streamed to the client (gateway). swapserve's own event: the
   * GenAI conventions define no such event, and `gen_ai.*` is theirs to define.
   */
  firstToken: 'swapserve.first_token',
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
export const ATTR_GEN_AI_REQUEST_SEED = 'gen_ai.request.seed';
/** Whether the client asked for a streamed response (GenAI semconv `gen_ai.request.stream`). */
export const ATTR_GEN_AI_REQUEST_STREAM = 'gen_ai.request.stream';
/** `input | output` on the token-usage histogram. */
export const ATTR_GEN_AI_TOKEN_TYPE = 'gen_ai.token.type';
export const GEN_AI_TOKEN_TYPES = ['input', 'output'] as const;
export type GenAiTokenType = (typeof GEN_AI_TOKEN_TYPES)[number];
export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
/** Seconds from the request's start to the first streamed chunk (GenAI semconv). */
export const ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = 'gen_ai.response.time_to_first_chunk';
/** `gen_ai.provider.name` value on swapserve's GenAI spans and on every GenAI metric. */
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

/**
 * GenAI model-server histograms (unit `s`), attributes gen_ai.provider.name, gen_ai.request.model,
 * gen_ai.response.model, swapserve.path (+ gen_ai.operation.name; + error.type on a failed request's duration).
 */
export const METRIC_TTFT = 'gen_ai.server.time_to_first_token';
export const METRIC_TPOT = 'gen_ai.server.time_per_output_token';
export const METRIC_REQUEST_DURATION = 'gen_ai.server.request.duration';
/**
 * Tokens per request (GenAI semconv histogram, unit `{token}`), one record per gen_ai.token.type (input, output),
 * same attributes as the histograms above. The conventions define this name for clients and none for model
 * servers; swapserve reports what it served under it, as the conventions' model-server section leaves open.
 */
export const METRIC_TOKEN_USAGE = 'gen_ai.client.token.usage';

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

/** Instrument kind and UCUM unit of every metric above: what metrics.ts creates, and what names Prometheus shows. */
export type MetricKind = 'counter' | 'gauge' | 'histogram';
export const METRICS: Record<string, { kind: MetricKind; unit: string }> = {
  [METRIC_TTFT]: { kind: 'histogram', unit: 's' },
  [METRIC_TPOT]: { kind: 'histogram', unit: 's' },
  [METRIC_REQUEST_DURATION]: { kind: 'histogram', unit: 's' },
  [METRIC_TOKEN_USAGE]: { kind: 'histogram', unit: '{token}' },
  [METRIC_REQUEST_ERRORS]: { kind: 'counter', unit: '' },
  [METRIC_QUEUE_DEPTH]: { kind: 'gauge', unit: '' },
  [METRIC_QUEUE_OLDEST_WAIT]: { kind: 'gauge', unit: 's' },
  [METRIC_RESIDENCY_BYTES]: { kind: 'gauge', unit: 'By' },
  [METRIC_MOVE_BYTES]: { kind: 'counter', unit: 'By' },
  [METRIC_MOVE_DURATION]: { kind: 'histogram', unit: 's' },
  [METRIC_MOVE_BANDWIDTH]: { kind: 'histogram', unit: 'GBy/s' },
  [METRIC_LINK_PEAK]: { kind: 'gauge', unit: 'GBy/s' },
  [METRIC_EVICTIONS]: { kind: 'counter', unit: '' },
  [METRIC_WORKERS]: { kind: 'gauge', unit: '' },
  [METRIC_SCHEDULER_DECISION]: { kind: 'histogram', unit: 's' },
  [METRIC_SCHEDULER_ACTIONS]: { kind: 'counter', unit: '' },
  [METRIC_SCHEDULER_ACTION_FAILURES]: { kind: 'counter', unit: '' },
  [METRIC_WORKER_START]: { kind: 'histogram', unit: 's' },
};

/** Both Prometheus names of a swapserve metric (direct scrape, OTLP path), `suffix` (`_bucket`, …) appended. */
export function prometheusNames(metric: string, suffix = ''): [direct: string, otlp: string] {
  const m = METRICS[metric];
  if (!m) throw new Error(`unknown metric ${metric}`);
  return [prometheusName(metric, m.kind, m.unit, 'direct') + suffix, prometheusName(metric, m.kind, m.unit, 'otlp') + suffix];
}

/**
 * The name a metric gets in Prometheus. `direct`: swapserve's own `/metrics` page (@opentelemetry/exporter-prometheus):
 * dots and other invalid characters become `_`, counters get `_total`, units are not appended. `otlp`: OTLP through
 * the OpenTelemetry Collector's Prometheus exporters (and Prometheus's own OTLP receiver), which also append the
 * unit's word (`s` -> `_seconds`, `By` -> `_bytes`, `GBy/s` -> `_gigabytes_per_second`; `{…}` annotations dropped)
 * unless the name already holds it. Used by the dashboards and their tests.
 */
export function prometheusName(name: string, kind: 'counter' | 'gauge' | 'histogram' = 'gauge', unit = '', path: 'direct' | 'otlp' = 'direct'): string {
  const tokens = name.split(/[^a-zA-Z0-9:]+/).filter(Boolean);
  if (path === 'otlp') for (const word of unitWords(unit)) if (!tokens.includes(word)) tokens.push(...word.split('_'));
  const base = tokens.join('_');
  return kind === 'counter' && !base.endsWith('_total') ? `${base}_total` : base;
}

/** The Collector's words for the UCUM units swapserve uses (prometheus translator's unit map). */
const UNIT_WORDS: Record<string, string> = { s: 'seconds', ms: 'milliseconds', By: 'bytes', KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes' };
function unitWords(unit: string): string[] {
  const [main, per] = unit.replace(/\{[^}]*\}/g, '').split('/');
  const out: string[] = [];
  if (main && UNIT_WORDS[main]) out.push(UNIT_WORDS[main]);
  const perWord = per ? ({ s: 'second', m: 'minute', h: 'hour' } as Record<string, string>)[per] : undefined;
  if (perWord) out.push(`per_${perWord}`);
  return out;
}
