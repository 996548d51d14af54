// swapserve's metrics: GenAI latency histograms, queue depth, residency, tier moves, evictions, workers.
// Instruments only (@opentelemetry/api; the /metrics page is prometheus.ts, SDK side). Record calls are no-ops
// until initTelemetry() runs; gauges read the latest value set or pull from sources registered by the process
// that knows (the gateway's queues, the scheduler's cluster view).
import type { Attributes, Counter, Histogram, ObservableResult } from '@opentelemetry/api';
import type { ColdReason, MoveKind, Residency, ServePath, Tier } from '../../contracts/vocab.ts';
import { ExemplarStore } from './exemplars.ts';
import { onTelemetryInit } from './handle.ts';
import * as B from './buckets.ts';
import * as S from '../../contracts/semconv.ts';

export interface QueueSample {
  model: string;
  /** Jobs waiting (not yet picked up), including delayed and prioritised. */
  waiting: number;
  /** Jobs being served. */
  active: number;
  /** Age of the oldest waiting job in seconds; 0 when none waits. */
  oldestWaitSeconds: number;
}
export interface WorkerSample {
  /** e.g. 'ready' | 'starting' | 'draining' (whatever the cluster view calls them). */
  state: string;
  count: number;
}
export interface ResidencySample {
  worker: string;
  model: string;
  tier: Tier;
  bytes: number;
}
export type ResidencySource = () => Promise<ResidencySample[]> | ResidencySample[];
export type QueueSource = () => Promise<QueueSample[]> | QueueSample[];
export type WorkerSource = () => Promise<WorkerSample[]> | WorkerSample[];

interface Instruments {
  ttft: Histogram;
  tpot: Histogram;
  duration: Histogram;
  tokenUsage: Histogram;
  moveBytes: Counter;
  moveDuration: Histogram;
  moveBandwidth: Histogram;
  evictions: Counter;
  errors: Counter;
  workerStart: Histogram;
  decision: Histogram;
  actions: Counter;
  actionFailures: Counter;
  restarts: Counter;
}
let inst: Instruments | null = null;
const queueSources = new Set<QueueSource>();
const workerSources = new Set<WorkerSource>();
const residencySources = new Set<ResidencySource>();
/** Whether a scheduler holds the leader lease (one source: `swapserve up`'s). */
let leaderSource: (() => Promise<boolean>) | null = null;
/** Last residency set per worker/model/tier: `${worker}\0${model}\0${tier}` -> bytes. */
const residency = new Map<string, { worker: string; model: string; tier: Tier; bytes: number }>();
const linkPeak = new Map<string, number>();
/** Trace ids of recent requests per TTFT / duration bucket, served as OpenMetrics exemplars. */
export const exemplars = new ExemplarStore();

onTelemetryInit((h) => {
  const meter = h.meterProvider.getMeter('swapserve');
  /** A histogram with explicit buckets, in its unit from contracts/semconv.ts METRICS. */
  const histogram = (name: string, description: string, buckets: number[]): Histogram =>
    meter.createHistogram(name, { unit: S.METRICS[name]!.unit, description, advice: { explicitBucketBoundaries: buckets } });
  const unit = (name: string) => ({ unit: S.METRICS[name]!.unit });
  inst = {
    ttft: histogram(S.METRIC_TTFT, 'Time from enqueue to the first output token', B.TTFT_BUCKETS_S),
    tpot: histogram(S.METRIC_TPOT, 'Time per output token after the first', B.TPOT_BUCKETS_S),
    duration: histogram(S.METRIC_REQUEST_DURATION, 'Time from enqueue to the last output token (or the failure)', B.REQUEST_DURATION_BUCKETS_S),
    tokenUsage: histogram(S.METRIC_TOKEN_USAGE, 'Input and output tokens per request', B.TOKEN_USAGE_BUCKETS),
    moveBytes: meter.createCounter(S.METRIC_MOVE_BYTES, { ...unit(S.METRIC_MOVE_BYTES), description: 'Bytes moved between tiers' }),
    moveDuration: histogram(S.METRIC_MOVE_DURATION, 'Duration of one tier move', B.MOVE_DURATION_BUCKETS_S),
    moveBandwidth: histogram(S.METRIC_MOVE_BANDWIDTH, 'Achieved bandwidth of one tier move (1e9 bytes per second)', B.MOVE_BANDWIDTH_BUCKETS_GBPS),
    evictions: meter.createCounter(S.METRIC_EVICTIONS, { description: 'Models evicted from a tier' }),
    errors: meter.createCounter(S.METRIC_REQUEST_ERRORS, { description: 'Requests that ended without a completion, by error code' }),
    decision: histogram(S.METRIC_SCHEDULER_DECISION, 'Time the scheduler policy took to decide one event', B.DECISION_BUCKETS_S),
    actions: meter.createCounter(S.METRIC_SCHEDULER_ACTIONS, { description: 'Actions the scheduler applied, by type and command' }),
    actionFailures: meter.createCounter(S.METRIC_SCHEDULER_ACTION_FAILURES, { description: 'Scheduler actions that failed when applied' }),
    workerStart: histogram(S.METRIC_WORKER_START, 'Time from a worker process start to ready', B.WORKER_START_BUCKETS_S),
    restarts: meter.createCounter(S.METRIC_SUPERVISOR_RESTARTS, { description: 'Restarts of a supervised process after it exited' }),
  };
  meter
    .createObservableGauge(S.METRIC_SCHEDULER_LEADER, { description: '1 while a scheduler holds the leader lease' })
    .addCallback(async (r) => {
      if (leaderSource) r.observe((await leaderSource().catch(() => false)) ? 1 : 0);
    });

  meter
    .createObservableGauge(S.METRIC_QUEUE_DEPTH, { description: 'Jobs per model queue and state' })
    .addCallback(async (r) => {
      for (const s of await pull(queueSources)) {
        r.observe(s.waiting, { [S.ATTR_GEN_AI_REQUEST_MODEL]: s.model, [S.ATTR_QUEUE_STATE]: 'waiting' });
        r.observe(s.active, { [S.ATTR_GEN_AI_REQUEST_MODEL]: s.model, [S.ATTR_QUEUE_STATE]: 'active' });
      }
    });
  meter
    .createObservableGauge(S.METRIC_QUEUE_OLDEST_WAIT, { ...unit(S.METRIC_QUEUE_OLDEST_WAIT), description: 'Age of the oldest waiting job' })
    .addCallback(async (r) => {
      for (const s of await pull(queueSources)) r.observe(s.oldestWaitSeconds, { [S.ATTR_GEN_AI_REQUEST_MODEL]: s.model });
    });
  meter
    .createObservableGauge(S.METRIC_WORKERS, { description: 'Workers in the cluster by state' })
    .addCallback(async (r) => {
      for (const s of await pull(workerSources)) r.observe(s.count, { [S.ATTR_WORKER_STATE]: s.state });
    });
  meter
    .createObservableGauge(S.METRIC_RESIDENCY_BYTES, { ...unit(S.METRIC_RESIDENCY_BYTES), description: 'Bytes of a model held in a tier' })
    .addCallback(async (r: ObservableResult) => {
      for (const e of [...residency.values(), ...(await pull(residencySources))]) {
        if (e.bytes <= 0) continue;
        r.observe(e.bytes, {
          [S.ATTR_WORKER]: e.worker,
          [S.ATTR_GEN_AI_REQUEST_MODEL]: e.model,
          [S.ATTR_TIER]: e.tier,
        });
      }
    });
  meter
    .createObservableGauge(S.METRIC_LINK_PEAK, { ...unit(S.METRIC_LINK_PEAK), description: 'Peak host->GPU link bandwidth' })
    .addCallback((r: ObservableResult) => {
      for (const [worker, gbps] of linkPeak) r.observe(gbps, { [S.ATTR_WORKER]: worker });
    });
});

/** Samples from every source; a failing source is skipped (and logged), never failing the scrape. */
async function pull<T>(sources: Set<() => Promise<T[]> | T[]>): Promise<T[]> {
  const out: T[] = [];
  for (const src of sources) {
    try {
      out.push(...(await src()));
    } catch (err) {
      process.stderr.write(`swapserve telemetry: metric source failed: ${String(err)}\n`);
    }
  }
  return out;
}

function finite(x: number): boolean {
  return Number.isFinite(x) && x >= 0;
}

export interface RequestMetrics {
  model: string;
  /** The serving path; unknown for a request that failed before the worker placed it. */
  path?: ServePath | null;
  operation?: S.GenAiOperation;
  coldReason?: ColdReason | null;
  /** Enqueue -> first token, seconds. */
  ttftSeconds?: number | null;
  /** Enqueue -> last token, seconds. */
  durationSeconds?: number | null;
  /** Output tokens produced (TPOT = (duration - ttft) / (outputTokens - 1)). */
  outputTokens?: number | null;
  /** Prompt tokens read. */
  inputTokens?: number | null;
  /** Set when the request failed: the error code/type. */
  errorType?: string | null;
  /** The request's trace, attached to its histogram buckets as an exemplar. */
  trace?: { traceId: string; spanId: string } | null;
}

/** The GenAI metric attributes: provider, requested and served model (swapserve serves the model asked for). */
function requestAttrs(m: { model: string; path?: ServePath | null; operation?: S.GenAiOperation; errorType?: string | null }) {
  const a: Attributes = {
    [S.ATTR_GEN_AI_PROVIDER_NAME]: S.GEN_AI_PROVIDER,
    [S.ATTR_GEN_AI_REQUEST_MODEL]: m.model,
    [S.ATTR_GEN_AI_RESPONSE_MODEL]: m.model,
  };
  if (m.path) a[S.ATTR_PATH] = m.path;
  if (m.operation) a[S.ATTR_GEN_AI_OPERATION_NAME] = m.operation;
  if (m.errorType) a[S.ATTR_ERROR_TYPE] = m.errorType;
  return a;
}

/** Record the three GenAI histograms for one finished request (call once per request, in the worker). */
export function recordRequest(m: RequestMetrics): void {
  if (!inst) return;
  const a = requestAttrs(m);
  const atMs = Date.now();
  const ex = (value: number) => (m.trace ? { value, traceId: m.trace.traceId, spanId: m.trace.spanId, atMs } : null);
  if (m.ttftSeconds != null && finite(m.ttftSeconds)) {
    inst.ttft.record(m.ttftSeconds, a);
    const e = ex(m.ttftSeconds);
    if (e) exemplars.offer(S.METRIC_TTFT, a, B.TTFT_BUCKETS_S, e);
  }
  if (m.durationSeconds != null && finite(m.durationSeconds)) {
    inst.duration.record(m.durationSeconds, a);
    const e = ex(m.durationSeconds);
    if (e) exemplars.offer(S.METRIC_REQUEST_DURATION, a, B.REQUEST_DURATION_BUCKETS_S, e);
  }
  if (
    m.ttftSeconds != null &&
    m.durationSeconds != null &&
    m.outputTokens != null &&
    m.outputTokens > 1 &&
    m.durationSeconds >= m.ttftSeconds
  ) {
    inst.tpot.record((m.durationSeconds - m.ttftSeconds) / (m.outputTokens - 1), a);
  }
  const tokens: [S.GenAiTokenType, number | null | undefined][] = [['input', m.inputTokens], ['output', m.outputTokens]];
  for (const [type, n] of tokens) if (n != null && finite(n)) inst.tokenUsage.record(n, { ...a, [S.ATTR_GEN_AI_TOKEN_TYPE]: type });
}

/** Count a request that ended without a completion (error code from contracts/errors.ts, or 'cancelled'). */
export function recordRequestError(model: string, errorType: string): void {
  inst?.errors.add(1, { [S.ATTR_GEN_AI_PROVIDER_NAME]: S.GEN_AI_PROVIDER, [S.ATTR_GEN_AI_REQUEST_MODEL]: model, [S.ATTR_ERROR_TYPE]: errorType });
}

/** Record a time to first token alone. */
export function recordTtft(model: string, path: ServePath, seconds: number, operation?: S.GenAiOperation): void {
  if (inst && finite(seconds)) inst.ttft.record(seconds, requestAttrs({ model, path, operation }));
}

/** Record one tier move: bytes, duration and achieved GB/s per move kind. */
export function recordMove(kind: MoveKind, bytes: number, seconds: number, model?: string): void {
  if (!inst || !finite(bytes) || !finite(seconds)) return;
  const a: Attributes = { [S.ATTR_MOVE_KIND]: kind };
  inst.moveBytes.add(bytes, a);
  inst.moveDuration.record(seconds, model ? { ...a, [S.ATTR_GEN_AI_REQUEST_MODEL]: model } : a);
  if (seconds > 0 && bytes > 0) inst.moveBandwidth.record(bytes / seconds / 1e9, a);
}

/** Record one worker start (process start to ready). */
export function recordWorkerStartDuration(seconds: number, backend: string): void {
  if (inst && finite(seconds)) inst.workerStart.record(seconds, { [S.ATTR_BACKEND]: backend });
}

/** A scheduler action, as its metrics label it: its type, and the command's kind for a `send`. */
export interface SchedulerActionLike {
  type: string;
  command?: { kind: string };
}
const actionAttrs = (a: SchedulerActionLike): Attributes =>
  a.command ? { [S.ATTR_SCHEDULER_ACTION]: a.type, [S.ATTR_COMMAND_KIND]: a.command.kind } : { [S.ATTR_SCHEDULER_ACTION]: a.type };

/** Record one policy decision (its latency and the actions it asked for). */
export function recordSchedulerDecision(event: string, seconds: number, actions: readonly SchedulerActionLike[]): void {
  if (!inst) return;
  if (finite(seconds)) inst.decision.record(seconds, { [S.ATTR_SCHEDULER_EVENT]: event });
  for (const a of actions) inst.actions.add(1, actionAttrs(a));
}

/** Count an action that failed when applied. */
export function recordSchedulerActionFailure(a: SchedulerActionLike): void {
  inst?.actionFailures.add(1, actionAttrs(a));
}

/** Count a restart of a supervised process (`swapserve up`). */
export function recordRestart(process: string): void {
  inst?.restarts.add(1, { [S.ATTR_PROCESS]: process });
}

/** Sets where the scheduler-leader gauge reads from (null: no series). */
export function setLeaderSource(src: (() => Promise<boolean>) | null): void {
  leaderSource = src;
}

/** Count an eviction of `model` from `tier`. */
export function recordEviction(model: string, tier: Tier): void {
  inst?.evictions.add(1, { [S.ATTR_GEN_AI_REQUEST_MODEL]: model, [S.ATTR_TIER]: tier });
}

/** Set how many bytes of `model` `worker` holds in `tier` (0 removes the series). */
export function setResidency(worker: string, model: string, tier: Tier, bytes: number): void {
  const key = `${worker}\0${model}\0${tier}`;
  if (!finite(bytes) || bytes === 0) residency.delete(key);
  else residency.set(key, { worker, model, tier, bytes });
}

/** Forget every residency series of a worker (it exited). */
export function clearResidency(worker: string): void {
  for (const [k, e] of residency) if (e.worker === worker) residency.delete(k);
}

/** Set a worker's host->GPU link peak in GB/s (configured or measured), drawn against swap bandwidth. */
export function setLinkPeak(worker: string, gbps: number): void {
  if (finite(gbps)) linkPeak.set(worker, gbps);
}

/** Pull residency per worker, model and tier at each collection (a worker's tier manager). */
export function registerResidencySource(src: ResidencySource): () => void {
  residencySources.add(src);
  return () => void residencySources.delete(src);
}

/**
 * Residency samples from a worker's per-model states (contracts/cluster.ts `ModelOnWorker`): a model on
 * the GPU (or leaving it) holds its bytes there and keeps its host copy; one on its way in holds the host copy.
 */
export function residencySamples(
  worker: string,
  models: Record<string, { residency: Residency; bytes: number }>,
): ResidencySample[] {
  const out: ResidencySample[] = [];
  for (const [model, m] of Object.entries(models)) {
    if (m.residency === 'gpu' || m.residency === 'evicting') out.push({ worker, model, tier: 'gpu', bytes: m.bytes });
    if (m.residency !== 'disk' && m.residency !== 'loading') out.push({ worker, model, tier: 'host', bytes: m.bytes });
  }
  return out;
}

/**
 * The host->GPU link peak drawn on the swap-bandwidth panel, GB/s: env SWAPSERVE_LINK_PEAK_GBPS, else for the
 * CUDA backend PCIe Gen5 x16's ~55 GB/s achievable; none for the CPU backend (its "GPU" tier is host memory).
 */
export function linkPeakFromEnv(backend: 'cpu' | 'cuda', env: Record<string, string | undefined> = process.env): number | null {
  const v = env.SWAPSERVE_LINK_PEAK_GBPS;
  if (v !== undefined && v !== '') {
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : null;
  }
  return backend === 'cuda' ? 55 : null;
}

/** Pull queue depth / oldest wait per model at each collection. Returns an unregister function. */
export function registerQueueSource(src: QueueSource): () => void {
  queueSources.add(src);
  return () => void queueSources.delete(src);
}

/** Pull worker counts by state at each collection. Returns an unregister function. */
export function registerWorkerSource(src: WorkerSource): () => void {
  workerSources.add(src);
  return () => void workerSources.delete(src);
}
