// `swapserve up`'s ready line (services/cli/up.ts waitReady): the gateway listens before the scheduler process has
// started, and a request sent then waits for it (a first request held ~1 s on the 2-core development machine). The
// probe behind the line, against a real Redis: the leader lease and a heartbeat since start from every worker.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterKeys } from '../../contracts/cluster.ts';
import { connect } from '../../services/client/queues.ts';
import { waitReady } from '../../services/cli/up.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

let redis: TestRedis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

describe('swapserve up: waitReady', () => {
  it('waits for the leader lease and a fresh heartbeat of every worker, and names what is missing when it gives up', async () => {
    const conn = connect(redis.url);
    const k = clusterKeys(redis.prefix());
    try {
      const since = Date.now();
      // A heartbeat from before this start (a previous run's worker under the same id) does not count.
      await conn.zadd(k.workers(), since - 60_000, 'local-0');
      const none = await waitReady(conn, k, ['local-0', 'local-1'], since, true, 120, () => false, 20);
      assert.notEqual(none, 'stopped');
      assert.deepEqual(none !== 'stopped' && [none.ready, none.missing], [false, 'no scheduler holds the lease; workers local-0, local-1 not registered']);

      const pending = waitReady(conn, k, ['local-0', 'local-1'], since, true, 10_000, () => false, 20);
      await conn.set(k.leader(), 'sched-x', 'PX', 10_000);
      await conn.zadd(k.workers(), Date.now(), 'local-0');
      await new Promise((r) => setTimeout(r, 100));
      await conn.zadd(k.workers(), Date.now(), 'local-1');
      const r = await pending;
      if (r === 'stopped') throw new Error('stopped');
      assert.ok(r.ready && r.missing === '', JSON.stringify(r));
      assert.ok(r.ms >= 100, 'it waited for the second worker');

      // Without a scheduler (up --no-scheduler) the lease is not asked for.
      await conn.del(k.leader());
      const noSched = await waitReady(conn, k, ['local-0'], since, false, 1_000, () => false, 20);
      assert.ok(noSched !== 'stopped' && noSched.ready);
      // Shutting down stops the probe.
      let stop = false;
      const stopped = waitReady(conn, k, ['local-9'], since, true, 10_000, () => stop, 20);
      stop = true;
      assert.equal(await stopped, 'stopped');
    } finally {
      conn.disconnect();
    }
  });
});
