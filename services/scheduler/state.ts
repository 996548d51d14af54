// The scheduler policy's types: per-model settings, the state it keeps, the events it takes and the actions it emits.
import type { CommandBody, CommandResult, WorkerCommandKind, WorkerState } from '../../contracts/cluster.ts';
import type { Residency } from '../../contracts/vocab.ts';

/** Per-model settings the policy reads (built from services/config/config.ts `ModelEntry` by `modelSettings`). */
export interface ModelSettings {
  id: string;
  /** Arena bytes when no worker has reported the model yet (estimated from its files); a worker's report wins. */
  bytes: number;
  /** Queue-wait SLO (ms): a model whose oldest waiting job is older gets another replica. */
  sloMs: number;
  /** GPU replicas kept even when idle (0 = may scale to zero). */
  keepWarm: number;
  /** Most GPU replicas of this model. */
  maxReplicas: number;
  /** Jobs one replica takes at once (the `consume` command's concurrency). */
  concurrency: number;
  /** Idle time (ms) after which a GPU replica is evicted to host. */
  gpuIdleMs: number;
  /** Idle time (ms) after which a host copy is dropped to disk. */
  hostIdleMs: number;
  /** Weight of this model's expected cost when choosing victims (>= 0; higher = kept longer). */
  priority: number;
  /** Worker groups it may be placed on (config `placement`); undefined: any worker. */
  groups?: readonly string[];
}

/** Cluster-wide policy settings. */
export interface PolicyConfig {
  /** Most workers the provider may run. @defaultValue 1 */
  maxWorkers: number;
  /** Workers kept even when idle. @defaultValue 0 (scale to zero) */
  minWorkers: number;
  /** A worker with nothing active for this long is drained (ms). @defaultValue 600000 */
  workerIdleMs: number;
  /** A started worker that has not reported by then is given up (ms). @defaultValue 120000 */
  workerStartTimeoutMs: number;
  /** A command with no result by then is forgotten (ms). @defaultValue 120000 */
  commandTimeoutMs: number;
  /** A model that waits this long for GPU room may reclaim a busy model's GPU (ms). @defaultValue 10000 */
  starvationMs: number;
  /** "Soon" in expected cost: the chance a model gets a request within this many ms. @defaultValue 60000 */
  horizonMs: number;
  /** Half-life of each model's arrival-rate estimate (ms). @defaultValue 60000 */
  rateHalfLifeMs: number;
  /** After a failed move, that worker is not asked to place that model again for this long (ms). @defaultValue 5000 */
  failureBackoffMs: number;
  /** Relative cost of reading a byte from disk versus copying it host -> GPU. @defaultValue 8 */
  diskCostFactor: number;
  /**
   * Victim order: 'expected-cost' (bytes x chance of a request soon, per byte) or 'lru' (least recently used
   * first), the latter only as the baseline the benchmark compares against. @defaultValue "expected-cost"
   */
  victimOrder: 'expected-cost' | 'lru';
  /** Most workers per worker group (config `placement.groups[].gpus / gpusPerWorker`). @defaultValue {} (only maxWorkers) */
  groupMaxWorkers: Readonly<Record<string, number>>;
}

export const POLICY_DEFAULTS: PolicyConfig = {
  maxWorkers: 1,
  minWorkers: 0,
  workerIdleMs: 600_000,
  workerStartTimeoutMs: 120_000,
  commandTimeoutMs: 120_000,
  starvationMs: 10_000,
  horizonMs: 60_000,
  rateHalfLifeMs: 60_000,
  failureBackoffMs: 5_000,
  diskCostFactor: 8,
  victimOrder: 'expected-cost',
  groupMaxWorkers: {},
};

/** What the policy knows of one model's queue. */
export interface QueueView {
  waiting: number;
  active: number;
  /** Enqueue time (ms) of the oldest waiting job, null when none waits. */
  oldestWaitingAt: number | null;
  /** Jobs ever added (BullMQ's id counter): its growth gives the arrival rate. */
  added: number;
  /** Arrival-rate estimate (jobs per ms, exponentially decayed). */
  rate: number;
  /** Time of the last snapshot (ms). */
  seenAt: number;
  /** Chance of a request within the horizon x priority weight (set by `refreshDemand`; 1 while jobs wait). */
  soon?: number;
  /** Active jobs no live worker runs (their worker died), set by `refreshDemand` (placement.ts `orphanedJobs`). */
  orphaned?: number;
  /** Active jobs live workers accounted for at the last `refreshDemand` (placement.ts `coverOf`; Infinity: all). */
  cover?: number;
  /**
   * That cover shrank after this snapshot was read (a worker finished jobs, let go of the model, or left): `active`
   * may count jobs that finished since, so none counts as orphaned until the next snapshot (the scheduler re-reads
   * stale queues at once after a worker is gone, and on every full poll).
   */
  stale?: boolean;
}

/** A command sent and not yet answered. */
export interface Pending {
  id: string;
  workerId: string;
  kind: WorkerCommandKind;
  model: string | null;
  issuedAt: number;
  /**
   * Set (worker clock, ms) when the worker answered ok. The overlay stays until a report shows the result, or a
   * report written after it: the result can reach the events stream before the state that reflects it.
   */
  doneAt?: number;
}

/** One worker as the policy sees it: its last report plus the commands it has not answered yet. */
export interface WorkerView {
  state: WorkerState;
  /** The move in flight per model (at most one), until a report confirms it. */
  moves: Map<string, Pending>;
  /** The consume/stop_consume in flight per model: what the worker will be doing once it is applied. */
  consume: Map<string, { id: string; want: boolean; doneAt?: number }>;
  /** Whether a GPU model also has a host copy, as inferred from the moves sent (a report's `hostCopy` wins). */
  hostCopy: Map<string, boolean>;
  /** When each model last changed residency here (ms): an idle clock for models never used. */
  touchedAt: Map<string, number>;
  /** A drain was sent (or the worker reports draining). */
  draining: boolean;
  /** Models this worker is indexed as a replica of (mirror of `PolicyState.replicas`). */
  indexed: Set<string>;
  /** Bumped on every change to the report, the moves in flight or draining; keys `cache`. */
  version: number;
  /** Model list and tier usage, computed once per version (placement reads them for every candidate worker). */
  cache: WorkerCache;
}

/** Derived from a worker's report and moves in flight; recomputed when `WorkerView.version` moves. */
export interface WorkerCache {
  version: number;
  models: string[];
  /** Bytes in use once moves land (-1: not computed yet). */
  gpu: number;
  host: number;
  /** Models whose effective residency is exactly 'gpu' / 'host' (the only possible victims), or null. */
  onGpu: string[] | null;
  hostOnly: string[] | null;
}

export interface PolicyState {
  config: PolicyConfig;
  models: Map<string, ModelSettings>;
  /** Prefix of command and worker ids (the leader's epoch), so ids never repeat across leaders. */
  idPrefix: string;
  nextId: number;
  workers: Map<string, WorkerView>;
  /** Index: model -> live (not draining) workers where it is a GPU replica once moves in flight land. */
  replicas: Map<string, Set<WorkerView>>;
  queues: Map<string, QueueView>;
  /** Configured models with waiting jobs. */
  waiting: Set<string>;
  /** Configured models with waiting jobs and no GPU replica (what a worker's new room may unblock). */
  unserved: Set<string>;
  /** Commands in flight by id. */
  pending: Map<string, Pending>;
  /** Workers asked of the provider and not reported yet: id -> (requested at ms, model that wanted it). */
  starting: Map<string, { requestedAt: number; model: string | null; group?: string }>;
  /** Busy replicas told to stop consuming so a starving model gets their GPU: `${worker}\n${model}` -> for whom. */
  reclaims: Map<string, { forModel: string; since: number }>;
  /** No worker is started before this time (ms): set after a start failed or timed out. */
  startBackoffUntil: number;
  /** `${worker}\n${model}` -> time (ms) until which that placement is not retried after a failure. */
  backoff: Map<string, number>;
}

export type PolicyEvent =
  | { type: 'worker-state'; state: WorkerState }
  | { type: 'worker-gone'; workerId: string }
  | { type: 'queue'; model: string; waiting: number; active: number; added: number; oldestWaitingAt: number | null }
  | { type: 'result'; result: CommandResult }
  | { type: 'worker-start-failed'; workerId: string; message: string }
  | { type: 'tick' };

/** What the policy asks the world to do, in order. */
export type Action =
  | { type: 'send'; workerId: string; id: string; command: CommandBody }
  | { type: 'start-worker'; workerId: string; model: string | null; group?: string }
  | { type: 'stop-worker'; workerId: string; reason: string };

export interface Decision {
  state: PolicyState;
  actions: Action[];
}

/** Residencies that hold (or are about to hold) GPU memory; host memory is held by these when `hostCopy`. */
export const ON_GPU: ReadonlySet<Residency> = new Set(['swapping-in', 'gpu', 'evicting']);
/** Residencies that hold host memory whatever the GPU holds. */
export const HOST_ONLY: ReadonlySet<Residency> = new Set(['loading', 'host']);

export const pairKey = (workerId: string, model: string): string => `${workerId}\n${model}`;
