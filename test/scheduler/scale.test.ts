// Scale from zero and back over a real Redis: a job arrives with no worker, the scheduler starts a worker process
// through LocalProcessProvider, places the model on it; once the job is gone and the worker idle, it drains it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { clusterKeys, parseClusterEvent, type WorkerState } from '../../contracts/cluster.ts';
import { connect, queueOptions, type RedisClient } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { model } from '../helpers/scheduler-fixtures.ts';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

/** Resolves with the first worker state on the events stream (read from `from`) that satisfies `match`. */
async function stateWhere(url: string, prefix: string, from: string, match: (s: WorkerState) => boolean): Promise<WorkerState> {
  const conn = connect(url, { blocking: true });
  let cursor = from;
  try {
    for (;;) {
      const res = (await conn.xread('BLOCK', 5000, 'STREAMS', clusterKeys(prefix).events(), cursor)) as [string, [string, string[]][]][] | null;
      for (const [, entries] of res ?? []) {
        for (const [id, fields] of entries) {
          cursor = id;
          const ev = parseClusterEvent(fields);
          if (ev.type === 'state' && match(ev.state)) return ev.state;
        }
      }
    }
  } finally {
    conn.disconnect();
  }
}

describe('scale from zero and to zero', () => {
  it('starts a worker process for a waiting job, places the model there, then drains the idle worker', { timeout: 60_000 }, async () => {
    const prefix = redis.prefix();
    const exits: { id: string; code: number | null }[] = [];
    let exited: (() => void) | null = null;
    const provider = new LocalProcessProvider({
      baseArgs: ['--import', 'tsx', 'test/scheduler/sim-worker-main.ts'],
      extraArgs: ['--redis', redis.url, '--prefix', prefix],
      stopOnClose: true,
      killAfterMs: 2000,
      onExit: (id, code) => {
        exits.push({ id, code });
        exited?.();
      },
    });
    const logs: string[] = [];
    let leading: (() => void) | null = null;
    const scheduler = new Scheduler({
      redisUrl: redis.url, prefix, models: [model('A', { bytes: 1000 })], provider,
      policy: { maxWorkers: 1, workerIdleMs: 1500 }, leaseMs: 1000, tickMs: 100, pollMs: 100,
      log: (m) => {
        logs.push(m);
        if (m.includes('leader, epoch')) leading?.();
      },
    });
    const conn: RedisClient = connect(redis.url);
    const q = new Queue(queueName('A'), queueOptions(conn, prefix));
    try {
      const isLeader = new Promise<void>((r) => (leading = r));
      await scheduler.start();
      await isLeader;
      assert.deepEqual(provider.running(), []);

      const [sec] = await conn.time();
      const from = `${Number(sec) * 1000 - 1}-0`;
      const placed = stateWhere(redis.url, prefix, from, (s) => s.models.A?.residency === 'gpu' && s.models.A.consuming);
      const job = await q.add('generate', { n: 1 }, { jobId: 'req-1' });
      const state = await placed;
      assert.deepEqual(provider.running(), [state.workerId], 'the worker that took A is the one the provider started');

      // No more demand: the worker goes idle and is drained after workerIdleMs; it exits 0.
      const gone = new Promise<void>((r) => (exited = r));
      await job.remove();
      await gone;
      assert.deepEqual(exits, [{ id: state.workerId, code: 0 }]);
      assert.deepEqual(provider.running(), []);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nscheduler log:\n${logs.join('\n')}`);
    } finally {
      await q.close().catch(() => undefined);
      await scheduler.close();
      await conn.quit();
    }
  });
});
