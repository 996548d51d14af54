// Demand reading against real BullMQ queues on a real Redis: counts, the oldest waiting job, arrival events.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { connect, queueOptions, type RedisClient } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import { readQueues, waitForQueueEvents } from '../../services/scheduler/queue-watch.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

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

describe('queue watch', () => {
  it('reads waiting (plain and prioritized) and the oldest waiting job of each model queue', async () => {
    const prefix = redis.prefix();
    const q = new Queue(queueName('org/m:1'), queueOptions(conn, prefix));
    const empty = new Queue(queueName('other'), queueOptions(conn, prefix));
    try {
      const first = await q.add('generate', { n: 1 }, { jobId: 'req-1', timestamp: 1_000_000 });
      await q.add('generate', { n: 2 }, { jobId: 'req-2', timestamp: 2_000_000 });
      await q.add('generate', { n: 3 }, { jobId: 'req-3', priority: 5, timestamp: 3_000_000 });
      const snaps = await readQueues(conn, ['org/m:1', 'other'], prefix);
      // `added` is BullMQ's id counter: it counts jobs with custom ids (the gateway's request ids) too.
      assert.deepEqual(snaps[0], { model: 'org/m:1', waiting: 3, active: 0, added: 3, oldestWaitingAt: first.timestamp });
      assert.deepEqual(snaps[1], { model: 'other', waiting: 0, active: 0, added: 0, oldestWaitingAt: null });
    } finally {
      await Promise.allSettled([q.close(), empty.close()]);
    }
  });

  it('wakes on a new job in any watched queue, and only names that queue', async () => {
    const prefix = redis.prefix();
    const qa = new Queue(queueName('a'), queueOptions(conn, prefix));
    const qb = new Queue(queueName('b'), queueOptions(conn, prefix));
    const blocking = connect(redis.url, { blocking: true });
    try {
      const [sec] = await conn.time();
      const cursor = new Map([['a', `${Number(sec) * 1000 - 1000}-0`], ['b', `${Number(sec) * 1000 - 1000}-0`]]);
      const woke = waitForQueueEvents(blocking, ['a', 'b'], cursor, 5000, prefix);
      await qb.add('generate', { n: 1 }, { jobId: 'r1' });
      const touched = await woke;
      assert.deepEqual(touched, ['b']);
      assert.notEqual(cursor.get('b'), cursor.get('a'));
      // Nothing new after the cursor: a short block returns no model.
      while ((await waitForQueueEvents(blocking, ['a', 'b'], cursor, 200, prefix)).length > 0);
      assert.deepEqual(await waitForQueueEvents(blocking, ['a', 'b'], cursor, 100, prefix), []);
    } finally {
      blocking.disconnect();
      await Promise.allSettled([qa.close(), qb.close()]);
    }
  });
});
