// What the status page shows, collected on demand: workers and their per-model tiers (from the cluster keys the
// workers heartbeat into Redis), queue counts per model (BullMQ), and recent time to first token by path.
import type { Queue } from 'bullmq';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import type { RedisClient } from '../client/queues.ts';
import { PATHS, type ColdReason, type Residency, type ServePath } from '../../contracts/vocab.ts';
import type { QueueSample, WorkerSample } from '../telemetry/metrics.ts';
import { recentRequests } from '../telemetry/recent.ts';

export interface StatusDeps {
  /** Deployment prefix (config `prefix`). */
  prefix: string;
  /** Configured model ids, in config order. */
  models: string[];
  /** A non-blocking Redis connection. */
  redis: RedisClient;
  /** The BullMQ queue of a model (the gateway's producer queues). */
  queue(model: string): Queue;
}

export interface WorkerView {
  workerId: string;
  host: string;
  backend: 'cpu' | 'cuda';
  device: string;
  state: 'ready' | 'draining' | 'unhealthy';
  heartbeatAgeMs: number;
  startedAt: number;
  maxJobs: number;
  budgets: { host: number; gpu: number };
  usage: { host: number; gpu: number };
  models: Record<string, { residency: Residency; bytes: number; activeJobs: number; consuming: boolean }>;
}

export interface QueueView {
  model: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  oldestWaitMs: number;
}

export interface PathStats {
  path: ServePath;
  count: number;
  p50Ms: number | null;
  p95Ms: number | null;
  lastMs: number | null;
}

export interface StatusSnapshot {
  atMs: number;
  models: string[];
  workers: WorkerView[];
  queues: QueueView[];
  ttft: PathStats[];
  recent: { model: string; path: ServePath; coldReason: ColdReason | null; ttftMs: number; ageMs: number }[];
  /** Problems reading the cluster (a worker's state failed validation, Redis error): shown, never thrown. */
  problems: string[];
}

/** Every worker whose state key is alive. States that fail validation are reported, not shown. */
export async function readWorkers(redis: RedisClient, prefix: string, problems: string[]): Promise<WorkerState[]> {
  const k = clusterKeys(prefix);
  const ids = await redis.zrange(k.workers(), '0', '-1');
  if (ids.length === 0) return [];
  const raws = await Promise.all(ids.map((id) => redis.get(k.workerState(id))));
  const out: WorkerState[] = [];
  raws.forEach((raw, i) => {
    if (raw === null) return; // expired: the worker is gone (the scheduler prunes the set)
    try {
      out.push(parseWorkerState(raw));
    } catch (err) {
      problems.push(`worker ${ids[i]}: ${(err as Error).message}`);
    }
  });
  return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
}

export async function readQueues(deps: StatusDeps, nowMs: number): Promise<QueueView[]> {
  return Promise.all(
    deps.models.map(async (model) => {
      const q = deps.queue(model);
      const counts = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
      const [oldest] = await q.getJobs(['waiting', 'prioritized'], 0, 0, true);
      return {
        model,
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        oldestWaitMs: oldest ? Math.max(0, nowMs - oldest.timestamp) : 0,
      };
    }),
  );
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]; // nearest rank
}

/** TTFT per path over the recent requests this gateway served. */
export function pathStats(recent: { path: ServePath; ttftMs: number }[]): PathStats[] {
  return PATHS.map((path) => {
    const mine = recent.filter((r) => r.path === path);
    const sorted = mine.map((r) => r.ttftMs).sort((a, b) => a - b);
    return { path, count: mine.length, p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), lastMs: mine[0]?.ttftMs ?? null };
  });
}

function workerView(w: WorkerState, nowMs: number): WorkerView {
  const models: WorkerView['models'] = {};
  for (const [id, m] of Object.entries(w.models)) {
    models[id] = { residency: m.residency, bytes: m.bytes, activeJobs: m.activeJobs, consuming: m.consuming };
  }
  return {
    workerId: w.workerId,
    host: w.host,
    backend: w.backend,
    device: w.device,
    state: !w.healthy ? 'unhealthy' : w.draining ? 'draining' : 'ready',
    heartbeatAgeMs: Math.max(0, nowMs - w.heartbeatAt),
    startedAt: w.startedAt,
    maxJobs: w.maxJobs,
    budgets: w.budgets,
    usage: w.usage,
    models,
  };
}

export async function collectStatus(deps: StatusDeps, nowMs: number = Date.now()): Promise<StatusSnapshot> {
  const problems: string[] = [];
  const [workers, queues] = await Promise.all([
    readWorkers(deps.redis, deps.prefix, problems).catch((err) => {
      problems.push(`workers: ${(err as Error).message}`);
      return [] as WorkerState[];
    }),
    readQueues(deps, nowMs).catch((err) => {
      problems.push(`queues: ${(err as Error).message}`);
      return [] as QueueView[];
    }),
  ]);
  const recent = recentRequests(50);
  return {
    atMs: nowMs,
    models: deps.models,
    workers: workers.map((w) => workerView(w, nowMs)),
    queues,
    ttft: pathStats(recentRequests()),
    recent: recent.map((r) => ({ model: r.model, path: r.path, coldReason: r.coldReason, ttftMs: r.ttftMs, ageMs: Math.max(0, nowMs - r.atMs) })),
    problems,
  };
}

/**
 * The snapshot for a caller who is not an admin: no host names, devices, budgets or usage, and problems only
 * counted (their text can carry Redis addresses and versions).
 */
export function redactStatus(s: StatusSnapshot): StatusSnapshot {
  return {
    ...s,
    workers: s.workers.map((w) => ({ ...w, host: '', device: w.backend, budgets: { host: 0, gpu: 0 }, usage: { host: 0, gpu: 0 } })),
    problems: s.problems.length ? [`${s.problems.length} problem(s); an admin key shows them`] : [],
  };
}

/** Queue depth samples for the metrics (swapserve.queue.depth / oldest_wait). */
export async function queueSamples(deps: StatusDeps): Promise<QueueSample[]> {
  const qs = await readQueues(deps, Date.now());
  return qs.map((q) => ({ model: q.model, waiting: q.waiting, active: q.active, oldestWaitSeconds: q.oldestWaitMs / 1000 }));
}

/** Worker counts by state for the metrics (swapserve.workers); every state is reported, zero included. */
export async function workerSamples(deps: StatusDeps): Promise<WorkerSample[]> {
  const ws = await readWorkers(deps.redis, deps.prefix, []);
  const counts: Record<WorkerView['state'], number> = { ready: 0, draining: 0, unhealthy: 0 };
  for (const w of ws) counts[!w.healthy ? 'unhealthy' : w.draining ? 'draining' : 'ready']++;
  return Object.entries(counts).map(([state, count]) => ({ state, count }));
}
