// The status page's data against a real Redis and real BullMQ queues: live workers only, a corrupt worker state
// reported (never a crash or a 500), queue counts with the oldest wait, TTFT percentiles by path.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { clusterKeys, type WorkerState } from '../../contracts/cluster.ts';
import { queueName } from '../../contracts/queues.ts';
import { collectStatus, pathStats } from '../../services/status/state.ts';
import { statusPlugin } from '../../services/status/plugin.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

let redis: TestRedis;
let conn: Redis;
let prefix: string;
const queues = new Map<string, Queue>();
const queue = (m: string) => {
  let q = queues.get(m);
  if (!q) queues.set(m, (q = new Queue(queueName(m), { connection: conn, prefix })));
  return q;
};

function state(id: string, now: number): WorkerState {
  return {
    workerId: id, pid: 4242, host: 'gpu-host-1', backend: 'cuda', device: 'NVIDIA H100 80GB HBM3', startedAt: now - 60_000,
    heartbeatAt: now - 250, seq: 7, budgets: { host: 64e9, gpu: 70e9 }, usage: { host: 32e9, gpu: 16e9 }, maxJobs: 4,
    models: {
      'llama-8b': { residency: 'gpu', bytes: 16e9, activeJobs: 2, lastUsedAt: now - 10, consuming: true },
      'qwen-7b': { residency: 'host', bytes: 15e9, activeJobs: 0, lastUsedAt: now - 90_000, consuming: false },
    },
    draining: false, healthy: true, epoch: 3,
  };
}

before(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url, { maxRetriesPerRequest: null });
  prefix = redis.prefix();
});
after(async () => {
  await Promise.all([...queues.values()].map((q) => q.close()));
  conn.disconnect();
  await redis.stop();
});

describe('status state', () => {
  it('shows live workers, reports a corrupt one, and counts queues with the oldest wait', async () => {
    const k = clusterKeys(prefix);
    const now = Date.now();
    await conn.set(k.workerState('w1'), JSON.stringify(state('w1', now)), 'PX', 10_000);
    await conn.set(k.workerState('w2'), '{"workerId":"w2","pid":-1}', 'PX', 10_000);
    await conn.zadd(k.workers(), now, 'w1', now, 'w2', now - 60_000, 'w-gone'); // w-gone: state key expired
    await queue('llama-8b').add('generate', { n: 1 }, { timestamp: now - 1500 });
    await queue('llama-8b').add('generate', { n: 2 });

    const s = await collectStatus({ prefix, models: ['llama-8b', 'qwen-7b'], redis: conn, queue }, now);
    assert.deepEqual(s.workers.map((w) => w.workerId), ['w1']);
    assert.equal(s.workers[0].state, 'ready');
    assert.equal(s.workers[0].models['llama-8b'].residency, 'gpu');
    assert.equal(s.workers[0].heartbeatAgeMs, 250);
    assert.equal(s.problems.length, 1);
    assert.match(s.problems[0], /^worker w2: Invalid worker state read from Redis/);
    const llama = s.queues.find((q) => q.model === 'llama-8b')!;
    assert.equal(llama.waiting, 2);
    assert.ok(llama.oldestWaitMs >= 1500 && llama.oldestWaitMs < 5000, `oldest wait ${llama.oldestWaitMs}`);
    assert.deepEqual(s.queues.find((q) => q.model === 'qwen-7b'), { model: 'qwen-7b', waiting: 0, active: 0, delayed: 0, failed: 0, oldestWaitMs: 0 });
  });

  it('serves the state as JSON and the page as HTML, without bull-board when turned off', async () => {
    const app = Fastify();
    await app.register(statusPlugin, { keyPrefix: prefix, models: ['llama-8b'], redis: conn, queue, boardPath: null, metrics: false });
    const page = await app.inject({ method: 'GET', url: '/' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /<title>swapserve status<\/title>/);
    const api = await app.inject({ method: 'GET', url: '/status/api/state' });
    assert.equal(api.statusCode, 200);
    assert.deepEqual(api.json().models, ['llama-8b']);
    assert.equal((await app.inject({ method: 'GET', url: '/queues' })).statusCode, 404);
    await app.close();
  });

  it('keeps answering with the problem when Redis is gone', async () => {
    const dead = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
    dead.on('error', () => {});
    const s = await collectStatus({ prefix, models: [], redis: dead, queue }, Date.now());
    assert.deepEqual(s.workers, []);
    assert.match(s.problems.join(), /^workers: /);
    dead.disconnect();
  });

  it('computes TTFT percentiles per path by nearest rank', () => {
    const stats = pathStats([
      { path: 'warm', ttftMs: 30 }, { path: 'warm', ttftMs: 10 }, { path: 'warm', ttftMs: 20 }, { path: 'cold', ttftMs: 9000 },
    ]);
    assert.deepEqual(stats, [
      { path: 'warm', count: 3, p50Ms: 20, p95Ms: 30, lastMs: 30 },
      { path: 'swap', count: 0, p50Ms: null, p95Ms: null, lastMs: null },
      { path: 'cold', count: 1, p50Ms: 9000, p95Ms: 9000, lastMs: 9000 },
    ]);
  });
});
