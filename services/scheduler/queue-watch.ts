// Demand from the model queues: counts read from BullMQ's keys in two pipelined round trips, and a wake-up on
// BullMQ's per-queue events streams (one XREAD BLOCK over all of them: they share the {hash tag} slot).
import { DEFAULT_PREFIX, queueName } from '../../contracts/queues.ts';
import type { RedisClient } from '../client/queues.ts';

/** One model's queue at one moment (the policy's `queue` event). */
export interface QueueSnapshot {
  model: string;
  /** Jobs waiting (wait + prioritized + paused lists). */
  waiting: number;
  active: number;
  /** Jobs ever added: BullMQ's id counter (incremented for every job, custom ids included). */
  added: number;
  /** Enqueue time (ms since epoch) of the oldest waiting job, null when none waits. */
  oldestWaitingAt: number | null;
}

const int = (v: unknown): number => {
  const n = typeof v === 'number' ? v : Number(v ?? 0);
  return Number.isFinite(n) && n >= 0 ? n : 0;
};

/** BullMQ key of one queue (same layout as bullmq's QueueKeys: `<prefix>:<queue>:<type>`). */
export const bullKey = (prefix: string, model: string, type: string): string => `${prefix}:${queueName(model)}:${type}`;

/** Reads the demand of each model's queue: BullMQ's wait/prioritized/paused/active keys and the oldest job's timestamp. */
export async function readQueues(redis: RedisClient, models: readonly string[], prefix: string = DEFAULT_PREFIX): Promise<QueueSnapshot[]> {
  if (models.length === 0) return [];
  const p1 = redis.pipeline();
  for (const m of models) {
    p1.llen(bullKey(prefix, m, 'wait'));
    p1.zcard(bullKey(prefix, m, 'prioritized'));
    p1.llen(bullKey(prefix, m, 'paused'));
    p1.llen(bullKey(prefix, m, 'active'));
    p1.get(bullKey(prefix, m, 'id'));
    p1.lindex(bullKey(prefix, m, 'wait'), -1); // FIFO jobs are LPUSHed: the oldest is at the tail
    p1.zrange(bullKey(prefix, m, 'prioritized'), '0', '0');
  }
  const r1 = (await p1.exec()) ?? [];
  const at = (i: number): unknown => {
    const [err, v] = r1[i] ?? [null, null];
    if (err) throw err;
    return v;
  };
  const oldestIds: (string | null)[] = [];
  const out: QueueSnapshot[] = models.map((model, k) => {
    const i = k * 7;
    const tail = at(i + 5);
    const prio = at(i + 6);
    oldestIds.push(typeof tail === 'string' ? tail : Array.isArray(prio) && typeof prio[0] === 'string' ? prio[0] : null);
    return {
      model, waiting: int(at(i)) + int(at(i + 1)) + int(at(i + 2)), active: int(at(i + 3)), added: int(at(i + 4)), oldestWaitingAt: null,
    };
  });
  const withOldest = out.map((_, k) => k).filter((k) => oldestIds[k] !== null && out[k].waiting > 0);
  if (withOldest.length > 0) {
    const p2 = redis.pipeline();
    for (const k of withOldest) p2.hget(`${prefix}:${queueName(models[k])}:${oldestIds[k]}`, 'timestamp');
    const r2 = (await p2.exec()) ?? [];
    withOldest.forEach((k, j) => {
      const [err, v] = r2[j] ?? [null, null];
      const ts = Number(v);
      // A job taken between the two round trips has no hash left: fall back to "waiting since now" (unknown).
      out[k].oldestWaitingAt = !err && v !== null && Number.isFinite(ts) && ts > 0 ? ts : null;
    });
  }
  return out;
}

/**
 * Blocks until any of the models' BullMQ events streams gets an entry (or `blockMs` passes) and returns the
 * models that had one. `cursor` holds the last id read per stream (a `<ms>-0` id to start from a moment); it is
 * updated in place.
 */
export async function waitForQueueEvents(
  redis: RedisClient, models: readonly string[], cursor: Map<string, string>, blockMs: number, prefix: string = DEFAULT_PREFIX,
): Promise<string[]> {
  if (models.length === 0) return [];
  const streams = models.map((m) => bullKey(prefix, m, 'events'));
  const ids = models.map((m) => cursor.get(m) ?? '$');
  const res = (await redis.xread('COUNT', 1000, 'BLOCK', blockMs, 'STREAMS', ...streams, ...ids)) as [string, [string, string[]][]][] | null;
  if (!res) return [];
  const byStream = new Map(streams.map((s, k) => [s, models[k]]));
  const touched: string[] = [];
  for (const [stream, entries] of res) {
    const model = byStream.get(stream);
    if (model === undefined || entries.length === 0) continue;
    cursor.set(model, entries[entries.length - 1][0]);
    touched.push(model);
  }
  return touched;
}
