// The spine against a real Redis Cluster (three masters): queues under the {hash-tagged} prefix, per-request
// streams on their own slots, worker state, cancel pub/sub — one request served end to end through the SDK.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../services/sdk/index.ts';
import { parseConfig } from '../../services/config/config.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { DATA_MODELS, STORIES } from './stack.ts';
import { needsData } from '../helpers/requires.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

let cluster: TestRedisCluster;
before(async () => { if (SKIP) return; cluster = await startRedisCluster(); });
after(async () => { await cluster?.stop(); });

describe('Redis Cluster', { skip: SKIP }, () => {
  it('serves a request through the SDK and a worker on a 3-node cluster', async () => {
    const config = parseConfig({ prefix: '{swapserve-cluster}', modelRoots: [DATA_MODELS], budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' }, models: [{ id: 'story', path: STORIES }] }, { REDIS_URL: cluster.url });
    const worker = new SwapWorker({ config, backend: new NativeBackend(config, { backend: 'cpu', threads: 1 }) });
    await worker.start();
    const client = new Client({ redisUrl: cluster.url, prefix: config.prefix });
    try {
      const r = await client.complete({ model: 'story', prompt: '', max_tokens: 6, temperature: 0 });
      assert.match(r.text, /^ ?Once upon a time/);
      assert.equal(r.path, 'cold');
      const s = await client.stream({ model: 'story', prompt: 'Once', max_tokens: 3 });
      let n = 0;
      for await (const _ of s) n++;
      assert.equal(n, 3);
      assert.equal((await s.result).path, 'warm');
    } finally {
      await client.close();
      await worker.close();
    }
  });
});
