// Whether the worker process holding a job still heartbeats (its state key, read on Redis's clock).
import { CLUSTER_DEFAULTS, clusterKeys, parseWorkerState, workerInstance, workerOfInstance, type WorkerState } from '../../contracts/cluster.ts';
import type { RedisClient } from './queues.ts';

/**
 * Whether the worker process `instance` still heartbeats: its state key exists, names that same process, and was
 * written less than `lostAfterMs` ago (on Redis's clock: the key's PTTL). Unparseable state counts as alive (it is
 * not ours to judge; the lock's expiry still recovers the job).
 */
export async function workerAlive(redis: RedisClient, prefix: string, instance: string, lostAfterMs: number = CLUSTER_DEFAULTS.lostAfterMs): Promise<boolean> {
  const key = clusterKeys(prefix).workerState(workerOfInstance(instance));
  const [[, raw], [, pttl]] = (await redis.multi().get(key).pttl(key).exec()) as [[unknown, string | null], [unknown, number]];
  if (raw === null || pttl < 0) return false;
  let state: WorkerState;
  try {
    state = parseWorkerState(raw);
  } catch {
    return true;
  }
  if (workerInstance(state) !== instance) return false;
  return CLUSTER_DEFAULTS.stateTtlMs - pttl < lostAfterMs;
}
