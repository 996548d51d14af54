// The scheduler process over a real Redis: it survives invalid entries on the events stream (logged, skipped) and
// keeps deciding; a standby issues nothing while another holds the lease; close() releases the lease at once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { clusterKeys } from '../../contracts/cluster.ts';
import { connect, queueOptions, type RedisClient } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { model } from '../helpers/scheduler-fixtures.ts';
import { SimWorker } from './sim-worker.ts';

let redis: TestRedis;
let conn: RedisClient;
before(async () => {
  redis = await startRedis();
  conn = connect(redis.url);
});
after(async () => {
  await conn?.quit();
  await redis?.stop();
});

function scheduler(prefix: string, id: string, logs: string[], onLead: () => void, onLog: (m: string) => void = () => undefined): Scheduler {
  return new Scheduler({
    redisUrl: redis.url, prefix, id, models: [model('A', { bytes: 1000 }), model('B', { bytes: 1000 })], provider: new LocalProcessProvider(),
    policy: { maxWorkers: 0, minWorkers: 10 }, leaseMs: 1000, tickMs: 100, pollMs: 100,
    log: (m) => {
      logs.push(m);
      onLog(m);
      if (m.includes('leader, epoch')) onLead();
    },
  });
}

describe('scheduler process', () => {
  it('skips invalid events with a log line and keeps deciding', { timeout: 30_000 }, async () => {
    const prefix = redis.prefix();
    const keys = clusterKeys(prefix);
    const logs: string[] = [];
    let lead: () => void = () => undefined;
    const leading = new Promise<void>((r) => (lead = r));
    const s = scheduler(prefix, 'only', logs, () => lead());
    const worker = new SimWorker('sim', redis.url, prefix, { A: 1000 });
    const q = new Queue(queueName('A'), queueOptions(conn, prefix));
    try {
      await s.start();
      await leading;
      await conn.xadd(keys.events(), '*', 'type', 'state', 'data', '{"workerId":"../../etc"}');
      await conn.xadd(keys.events(), '*', 'type', 'nonsense', 'data', '{}');
      await conn.xadd(keys.events(), '*', 'type', 'result', 'data', 'not json');
      await worker.start();
      const placed = worker.next((c) => c.kind === 'consume');
      await q.add('generate', {}, { jobId: 'r1' });
      const c = await placed;
      assert.equal('model' in c && c.model, 'A');
      assert.equal(s.role, 'leader');
      const skipped = logs.filter((l) => l.includes('skipped event'));
      assert.equal(skipped.length, 3, logs.join('\n'));
      assert.match(skipped[0], /Invalid worker state read from Redis/);
    } finally {
      await q.close();
      await worker.stop();
      await s.close();
    }
  });

  it('after Redis loses its data (epoch reset), the leader moves past the epoch the workers have seen', { timeout: 30_000 }, async () => {
    const prefix = redis.prefix();
    const keys = clusterKeys(prefix);
    await conn.set(keys.epoch(), '4'); // the next term is epoch 5
    const logs: string[] = [];
    let lead: () => void = () => undefined;
    let raised: () => void = () => undefined;
    const raisedTo6 = new Promise<void>((r) => (raised = r));
    const s = scheduler(prefix, 'only', logs, () => lead(), (m) => {
      if (m.includes('had epoch 5; now epoch 6')) raised();
    });
    const worker = new SimWorker('sim', redis.url, prefix, { A: 1000 });
    try {
      const leading = new Promise<void>((r) => (lead = r));
      await s.start();
      await leading;
      assert.equal(s.epoch, 5);
      await worker.start();
      const first = worker.next((c) => c.kind === 'consume');
      await conn.lpush(`${prefix}:${queueName('A')}:wait`, 'fake-job'); // demand, as BullMQ lists it
      assert.equal((await first).epoch, 5);
      // Redis loses everything: the lease and the epoch counter with it. The scheduler re-acquires (epoch 1),
      // hears the worker's epoch 5 (its next heartbeat) and moves to 6.
      await conn.flushall();
      await raisedTo6;
      // New demand is served with the new epoch, which the worker accepts.
      const again = worker.next((c) => 'model' in c && c.model === 'B');
      await conn.lpush(`${prefix}:${queueName('B')}:wait`, 'fake-job');
      assert.equal((await again).epoch, 6);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${logs.join('\n')}\ncommands: ${JSON.stringify(worker.commands)}`);
    } finally {
      await worker.stop();
      await s.close();
    }
  });

  it('a standby sends nothing; when the leader closes, the standby leads at once', { timeout: 30_000 }, async () => {
    const prefix = redis.prefix();
    const logs1: string[] = [], logs2: string[] = [];
    let lead1: () => void = () => undefined, lead2: () => void = () => undefined;
    const led1 = new Promise<void>((r) => (lead1 = r));
    const led2 = new Promise<void>((r) => (lead2 = r));
    const s1 = scheduler(prefix, 's1', logs1, () => lead1());
    const s2 = scheduler(prefix, 's2', logs2, () => lead2());
    const worker = new SimWorker('sim', redis.url, prefix, { A: 1000 });
    try {
      await s1.start();
      await led1;
      await s2.start();
      await worker.start();
      const first = worker.next((c) => c.kind === 'swap_in');
      const q = new Queue(queueName('A'), queueOptions(conn, prefix));
      await q.add('generate', {}, { jobId: 'r1' });
      await first;
      await q.close();
      assert.equal(s2.role, 'standby');
      assert.ok(worker.commands.every((c) => c.epoch === s1.epoch), 'only the leader issued commands');
      const t0 = performance.now();
      await s1.close();
      await led2;
      // Released, not expired: the standby's next attempt (every leaseMs / 5) takes it.
      assert.ok(performance.now() - t0 < 1000, `took ${(performance.now() - t0).toFixed(0)} ms`);
      assert.ok(s2.epoch > s1.epoch);
    } finally {
      await worker.stop();
      await Promise.allSettled([s1.close(), s2.close()]);
    }
  });
});
