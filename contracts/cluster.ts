// Scheduler <-> worker wire contract: Redis keys, worker state, commands and command results (zod-validated).
//
// How they travel (all keys share the hash tag `{swapserve}` so multi-key commands work on Redis Cluster):
//   worker state    SET  workerStateKey(id) <WorkerState JSON> PX stateTtlMs      (refreshed by each heartbeat)
//                   ZADD workersKey() <heartbeatAt ms> <id>                      (discovery; pruned when state expired)
//                   XADD eventsKey() MAXLEN ~ N * type=state data=<WorkerState JSON>   (on change and heartbeat)
//   commands        XADD commandsKey(id) MAXLEN ~ N * data=<WorkerCommand JSON>   (worker XREAD BLOCKs its own stream)
//   results         XADD eventsKey() MAXLEN ~ N * type=result data=<CommandResult JSON>
//   leader lease    SET leaderKey() <holder> NX PX leaseMs; renewed/released by Lua compare-and-set
//   fencing epoch   INCR epochKey() on each lease acquisition; every command carries it and a worker ignores
//                   commands whose epoch is below the highest it has seen (a deposed leader cannot act).
// Every read from Redis goes through one of the parse* functions below.
import { z } from 'zod';
import { CLUSTER_DATA_ERROR_CODE, COMMAND_ERROR_CODES, SwapserveError } from './errors.ts';
import { modelIdSchema as ModelId, WorkerGroup, WorkerId } from './model-id.ts';
import { MOVE_KINDS, RESIDENCY } from './vocab.ts';

/**
 * Redis key builders for a deployment prefix (config `prefix`, default "{swapserve}"; its {hash tag} keeps every
 * cluster key and every BullMQ queue key on one Redis Cluster slot, so one XREAD can watch them all).
 */
export function clusterKeys(prefix: string = '{swapserve}') {
  const p = `${prefix}:`;
  return {
    /** String: a worker's latest `WorkerState` JSON, with a TTL refreshed by its heartbeats. */
    workerState: (workerId: string): string => `${p}worker:${workerId}`,
    /** Sorted set: worker ids scored by their last heartbeat (ms since epoch). */
    workers: (): string => `${p}workers`,
    /** Stream: commands for one worker, in order (field `data` = `WorkerCommand` JSON). */
    commands: (workerId: string): string => `${p}commands:${workerId}`,
    /** Stream: worker state changes and command results for the scheduler (fields `type`, `data`). */
    events: (): string => `${p}events`,
    /** String: the scheduler leader lease (value = holder id), with PX = lease time. */
    leader: (): string => `${p}scheduler:leader`,
    /** Integer: the fencing epoch, incremented each time a scheduler acquires the lease. */
    epoch: (): string => `${p}scheduler:epoch`,
  };
}
export type ClusterKeys = ReturnType<typeof clusterKeys>;

/** The keys under the default prefix. */
export const keys: ClusterKeys = clusterKeys();


const bytes = z.number().int().nonnegative();
const ms = z.number().nonnegative();

/** One model as held by one worker. */
export const ModelOnWorker = z.object({
  residency: z.enum(RESIDENCY),
  /** Size of the model's arena (bytes), the same in host and GPU tiers. */
  bytes,
  /** Jobs of this model running on this worker now. A model with activeJobs > 0 is never evicted. */
  activeJobs: z.number().int().nonnegative(),
  /** Last time a job of this model started or finished here (ms since epoch); null if never used. */
  lastUsedAt: ms.nullable(),
  /** Whether the worker is taking jobs from this model's queue. */
  consuming: z.boolean(),
  /**
   * Whether a host (pinned) copy exists besides the GPU one. `load_to_gpu` keeps none (disk -> staging -> GPU), so
   * evicting such a model sends it back to disk; `load` then `swap_in` keeps one. Optional: when absent the
   * scheduler infers it from the moves it issued.
   */
  hostCopy: z.boolean().optional(),
  /**
   * Partial residency (issue 15): bytes of a parked model's first layer groups kept on the GPU; a `swap_in` on this
   * worker copies only the rest. The worker gives them back before evicting anything, so they count as free room.
   * Absent or 0: none.
   */
  gpuPrefixBytes: bytes.optional(),
  /**
   * The host tier's codec for this model (issue 15): `compressed` (the host copy is the compressed image; `ratio` =
   * its bytes / the raw bytes, what the host budget is charged), `raw` (measured and kept raw: it does not pay),
   * `encoding`, `failed` or `none`. Optional: absent where the backend has no codec.
   */
  hostCodec: z.object({
    state: z.enum(['none', 'encoding', 'compressed', 'raw', 'failed']),
    ratio: z.number().nonnegative(),
    storedBytes: bytes,
  }).optional(),
});
export type ModelOnWorker = z.infer<typeof ModelOnWorker>;

/** Byte budgets and usage per tier (the disk tier has no budget). */
export const TierBytes = z.object({ host: bytes, gpu: bytes });
export type TierBytes = z.infer<typeof TierBytes>;

/** What a worker publishes about itself (heartbeat and on every change). */
export const WorkerState = z.object({
  workerId: WorkerId,
  pid: z.number().int().positive(),
  /** Host name, so a provider can tell its own processes from others'. */
  host: z.string().max(255),
  backend: z.enum(['cpu', 'cuda']),
  /** e.g. "NVIDIA H100 80GB HBM3" or "cpu". */
  device: z.string().max(255),
  startedAt: ms,
  /** When this state was written (ms since epoch, the worker's clock). */
  heartbeatAt: ms,
  /** Increases with every write, so a reader can drop an older state that arrives late. */
  seq: z.number().int().nonnegative(),
  /**
   * What models may use per tier: `gpu` is config budgets.gpuBytes less the codec work buffer (hostCodec.workBytes)
   * when hostCodec.compress is on, so the scheduler never places more than the device has for weights.
   */
  budgets: TierBytes,
  usage: TierBytes,
  /** Most jobs this worker runs at once over all models. */
  maxJobs: z.number().int().positive(),
  models: z.record(ModelId, ModelOnWorker),
  /** Draining: takes no new jobs, finishes its active ones, then exits. */
  draining: z.boolean(),
  /** False after a sticky device error: the worker drains and exits non-zero. */
  healthy: z.boolean(),
  /** Highest scheduler epoch the worker has accepted a command from. */
  epoch: z.number().int().nonnegative(),
  /**
   * Whether the pinned host tier exists yet. A fresh worker pins its host pool on a background thread (≈ 2 s for
   * 54 GB); a `load` into it waits for that, so the scheduler brings a model in with `load_to_gpu` (small pinned
   * staging ring, pinned first) while this is false. Optional: absent means ready.
   */
  hostReady: z.boolean().optional(),
  /**
   * The worker group it belongs to (config `worker.group`, `--group`): a model the config's `placement` lists is
   * only placed on workers of its groups. Optional: absent means no group.
   */
  group: WorkerGroup.optional(),
});
export type WorkerState = z.infer<typeof WorkerState>;

/** Every command kind: the tier moves of vocab.ts, then queue and lifecycle commands. */
export const COMMAND_KINDS = [...MOVE_KINDS, 'consume', 'stop_consume', 'drain', 'shutdown'] as const;
export type WorkerCommandKind = (typeof COMMAND_KINDS)[number];

const base = {
  /** Unique per command (the scheduler's `<epoch>-<counter>`), echoed in the result. */
  id: z.string().min(1).max(100),
  /** Fencing epoch of the leader that issued it. */
  epoch: z.number().int().nonnegative(),
  issuedAt: ms,
};

/**
 * Commands the scheduler sends a worker. Tier moves are named by vocab.ts `MoveKind`:
 *   load         disk -> host (pinned)          swap_in      host -> gpu
 *   load_to_gpu  disk -> gpu (via host staging) evict        gpu -> host (keeps the host copy)
 *   drop         release the model from every tier on this worker (back to disk only)
 * A move for a model with active jobs on that worker that would take it off the GPU (evict, drop) must be
 * refused by the worker with `in_use` (the scheduler never sends one; this is the second line of defence).
 * consume / stop_consume: start / stop taking jobs from the model's queue (stop lets active jobs finish).
 * A worker may start a consumed model's job while the model is still swapping-in and prefill as groups land.
 * drain: stop taking jobs, finish active ones, then exit 0. shutdown: exit now (active jobs fail over via
 * BullMQ's stalled-job check).
 */
export const WorkerCommand = z.discriminatedUnion('kind', [
  z.object({ ...base, kind: z.enum(MOVE_KINDS), model: ModelId }),
  z.object({ ...base, kind: z.literal('consume'), model: ModelId, concurrency: z.number().int().positive().max(1024) }),
  z.object({ ...base, kind: z.literal('stop_consume'), model: ModelId }),
  z.object({ ...base, kind: z.literal('drain') }),
  z.object({ ...base, kind: z.literal('shutdown') }),
]);
export type WorkerCommand = z.infer<typeof WorkerCommand>;
/** A command before the effects layer stamps id, epoch and issuedAt on it. */
export type CommandBody = WorkerCommand extends infer C ? (C extends WorkerCommand ? Omit<C, 'id' | 'epoch' | 'issuedAt'> : never) : never;


export const CommandResult = z.object({
  commandId: z.string().min(1).max(100),
  workerId: WorkerId,
  kind: z.enum(COMMAND_KINDS),
  model: ModelId.optional(),
  ok: z.boolean(),
  error: z.object({ code: z.enum(COMMAND_ERROR_CODES), message: z.string().max(2000) }).optional(),
  /** How long the command took on the worker (ms). */
  durationMs: ms,
  finishedAt: ms,
});
export type CommandResult = z.infer<typeof CommandResult>;

/** One entry of the events stream. */
export type ClusterEvent = { type: 'state'; state: WorkerState } | { type: 'result'; result: CommandResult };

/** Thrown when something read from Redis does not match its schema. */
export class ClusterDataError extends SwapserveError<typeof CLUSTER_DATA_ERROR_CODE> {
  override name = 'ClusterDataError';
  constructor(what: string, detail: string) {
    super(CLUSTER_DATA_ERROR_CODE, `Invalid ${what} read from Redis: ${detail}`);
  }
}

function parseJson<T>(schema: z.ZodType<T>, what: string, raw: string): T {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ClusterDataError(what, 'not JSON');
  }
  const r = schema.safeParse(value);
  if (!r.success) throw new ClusterDataError(what, z.prettifyError(r.error));
  return r.data;
}

export const parseWorkerState = (raw: string): WorkerState => parseJson(WorkerState, 'worker state', raw);
export const parseWorkerCommand = (raw: string): WorkerCommand => parseJson(WorkerCommand, 'worker command', raw);
export const parseCommandResult = (raw: string): CommandResult => parseJson(CommandResult, 'command result', raw);

/** Stream entry fields as ioredis returns them: [k1, v1, k2, v2, ...]. */
function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Parses one events-stream entry's fields. */
export function parseClusterEvent(fields: string[]): ClusterEvent {
  const type = field(fields, 'type');
  const data = field(fields, 'data');
  if (data === undefined) throw new ClusterDataError('cluster event', 'missing data field');
  if (type === 'state') return { type, state: parseWorkerState(data) };
  if (type === 'result') return { type, result: parseCommandResult(data) };
  throw new ClusterDataError('cluster event', `unknown type ${JSON.stringify(type)}`);
}

/** Parses one command-stream entry's fields. */
export function parseCommandEntry(fields: string[]): WorkerCommand {
  const data = field(fields, 'data');
  if (data === undefined) throw new ClusterDataError('worker command', 'missing data field');
  return parseWorkerCommand(data);
}

/** Stream fields for an events-stream entry (XADD ... type <t> data <json>). */
export const stateEventFields = (s: WorkerState): string[] => ['type', 'state', 'data', JSON.stringify(s)];
export const resultEventFields = (r: CommandResult): string[] => ['type', 'result', 'data', JSON.stringify(r)];
export const commandFields = (c: WorkerCommand): string[] => ['data', JSON.stringify(c)];

/** Defaults for the transport. */
export const CLUSTER_DEFAULTS = {
  /** Worker heartbeat period (ms). */
  heartbeatMs: 1000,
  /** TTL of a worker's state key (ms): a worker missing 3 heartbeats is gone. */
  stateTtlMs: 3000,
  /**
   * A worker whose state was last written longer ago than this (ms, read as stateTtlMs - PTTL, so on Redis's clock)
   * is lost for the jobs it holds: two missed heartbeats. A follower checking every 500 ms then ends a lost stream
   * within 2.5 s of the kill (issue 11: 3 s).
   */
  lostAfterMs: 2000,
  /** Approximate cap on the events stream and each command stream (entries). */
  streamMaxLen: 10_000,
} as const;

/**
 * One worker *process*: `<workerId>@<pid>@<startedAt>`. BullMQ records it on each job it takes (its Worker `name`,
 * the job's `processedBy`), so a reader can tell the process holding a job from a restarted one with the same id.
 */
export function workerInstance(s: Pick<WorkerState, 'workerId' | 'pid' | 'startedAt'>): string {
  return `${s.workerId}@${s.pid}@${s.startedAt}`;
}

/** The worker id of an instance string (or the string itself when it is not one). */
export function workerOfInstance(instance: string): string {
  return instance.split('@')[0];
}
