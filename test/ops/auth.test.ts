// API keys over real sockets against two gateway processes sharing one Redis: 401 without a key, 403 for a model
// outside a key's allowlist, 429 + Retry-After once a key's limit is spent across both gateways, and an admin
// boundary around /queues (bull-board) and the status data that anonymous callers cannot cross or change.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { sha256Hex } from '../../services/config/config.ts';
import { newRequestId, type JobData } from '../../contracts/job.ts';
import { queueName } from '../../contracts/queues.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';
import { DATA_MODELS, STORIES } from '../spine/stack.ts';

const ALICE = 'sk-alice-0123456789';
const BOB = 'sk-bob-0123456789';
const ADMIN = 'sk-admin-0123456789';

let redis: TestRedis;
let prefix: string;
const gateways: ServiceProcess[] = [];
const urls: string[] = [];

const call = (url: string, path: string, init: RequestInit & { key?: string } = {}) =>
  fetch(url + path, { ...init, headers: { ...(init.key ? { authorization: `Bearer ${init.key}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers as Record<string, string> } });
const chat = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });

before(async () => {
  redis = await startRedis();
  prefix = redis.prefix();
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-auth-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, stringify({
    prefix,
    modelRoots: [DATA_MODELS],
    gateway: { port: 0, requestTimeoutMs: 2000 },
    models: [{ id: 'story-a', path: STORIES }, { id: 'story-b', path: STORIES }],
    auth: {
      keys: [
        { id: 'alice', sha256: sha256Hex(ALICE), models: ['story-a'], rateLimit: null },
        { id: 'bob', keyEnv: 'BOB_KEY', rateLimit: { max: 3, windowMs: 60_000 } },
      ],
    },
  }));
  const env = { REDIS_URL: redis.url, BOB_KEY: BOB, SWAPSERVE_ADMIN_KEY: ADMIN, LOG_LEVEL: 'warn' };
  for (let i = 0; i < 2; i++) {
    const gw = await startService(['gateway', '--config', file], env, /^gateway listening on /);
    gateways.push(gw);
    urls.push(gw.ready.replace('gateway listening on ', '').trim());
  }
});

after(async () => {
  await Promise.allSettled(gateways.map((g) => g.stop()));
  await redis?.stop();
});

describe('API keys', () => {
  it('answers 401 in the OpenAI error shape without a key or with a wrong one; probes stay open', async () => {
    for (const key of [undefined, 'sk-wrong']) {
      const r = await call(urls[0], '/v1/models', { key });
      assert.equal(r.status, 401);
      const body = await r.json() as { error: { code: string; type: string } };
      assert.equal(body.error.code, 'invalid_api_key');
      assert.equal(body.error.type, 'invalid_request_error');
      assert.match(r.headers.get('www-authenticate') ?? '', /Bearer/);
    }
    const r = await call(urls[0], '/v1/chat/completions', { method: 'POST', body: chat('story-a') });
    assert.equal(r.status, 401);
    assert.equal((await call(urls[1], '/healthz')).status, 200);
  });

  it('answers 403 for a model outside the key\'s allowlist and lists only allowed models', async () => {
    const r = await call(urls[1], '/v1/chat/completions', { method: 'POST', key: ALICE, body: chat('story-b') });
    assert.equal(r.status, 403);
    const body = await r.json() as { error: { code: string; param: string } };
    assert.equal(body.error.code, 'model_not_allowed');
    assert.equal(body.error.param, 'model');
    assert.equal((await call(urls[1], '/v1/models/story-b', { key: ALICE })).status, 403);
    const list = await (await call(urls[0], '/v1/models', { key: ALICE })).json() as { data: { id: string }[] };
    assert.deepEqual(list.data.map((m) => m.id), ['story-a']);
    const all = await (await call(urls[0], '/v1/models', { key: ADMIN })).json() as { data: { id: string }[] };
    assert.deepEqual(all.data.map((m) => m.id), ['story-a', 'story-b']);
  });

  it('counts a key\'s limit across both gateways: the 4th request of 3 allowed gets 429 with Retry-After', async () => {
    const statuses = [];
    for (const url of [urls[0], urls[1], urls[0]]) statuses.push((await call(url, '/v1/models', { key: BOB })).status);
    assert.deepEqual(statuses, [200, 200, 200]);
    const r = await call(urls[1], '/v1/models', { key: BOB });
    assert.equal(r.status, 429);
    const retryAfter = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${r.headers.get('retry-after')}`);
    const body = await r.json() as { error: { code: string; type: string } };
    assert.equal(body.error.code, 'rate_limited');
    assert.equal(body.error.type, 'rate_limit_error');
    // Another key is not affected by bob's spent limit.
    assert.equal((await call(urls[1], '/v1/models', { key: ALICE })).status, 200);
  });
});

describe('admin boundary', () => {
  let queue: Queue;
  let jobId: string;
  const data = (): JobData => ({
    v: 1, requestId: jobId, model: 'story-a', kind: 'chat', input: { type: 'chat', messages: [{ role: 'user', content: 'my password is hunter2' }] },
    sampling: { maxTokens: 4, temperature: 0, topP: 1, stop: [] } as unknown as JobData['sampling'], arrivalMs: Date.now(), source: 'gateway',
  });

  before(async () => {
    queue = new Queue(queueName('story-a'), { connection: { url: redis.url }, prefix });
    jobId = newRequestId();
    await queue.add('generate', data(), { jobId });
  });
  after(async () => { await queue.close(); });

  it('refuses anonymous /queues with 401 and changes nothing', async () => {
    const q = `/queues/api/queues/${encodeURIComponent(queueName('story-a'))}`;
    for (const [method, path, body] of [
      ['GET', '/queues/api/queues', undefined],
      ['PUT', `${q}/pause`, undefined],
      ['PUT', `${q}/empty`, undefined],
      ['PUT', `${q}/${jobId}/update-data`, JSON.stringify({ jobData: { prompt: 'attacker' } })],
    ] as const) {
      const r = await call(urls[0], path, { method, body });
      assert.equal(r.status, 401, `${method} ${path}`);
    }
    assert.equal(await queue.isPaused(), false);
    const job = await queue.getJob(jobId);
    assert.equal((job?.data as JobData).input.type, 'chat');
    assert.equal(await queue.getWaitingCount(), 1);
  });

  it('lets a non-admin key read /queues but not change it, nor read Redis stats', async () => {
    const q = `/queues/api/queues/${encodeURIComponent(queueName('story-a'))}`;
    assert.equal((await call(urls[0], '/queues/api/queues?activeQueue=&status=latest&page=1', { key: ALICE })).status, 200);
    const r = await call(urls[1], `${q}/pause`, { method: 'PUT', key: ALICE });
    assert.equal(r.status, 403);
    assert.equal((await r.json() as { error: { code: string } }).error.code, 'admin_required');
    assert.equal(await queue.isPaused(), false);
    assert.equal((await call(urls[0], '/queues/api/redis/stats', { key: ALICE })).status, 403);
    const stats = await call(urls[0], '/queues/api/redis/stats', { key: ADMIN });
    assert.equal(stats.status, 200);
    assert.match(await stats.text(), /version/);
  });

  it('redacts the status data for non-admins and refuses it anonymously', async () => {
    assert.equal((await call(urls[0], '/status/api/state')).status, 401);
    assert.equal((await call(urls[0], '/')).status, 200);
    const s = await (await call(urls[0], '/status/api/state', { key: ALICE })).json() as { queues: { model: string; waiting: number }[] };
    assert.equal(s.queues.find((x) => x.model === 'story-a')?.waiting, 1);
  });

  it('lets the admin key change state (the boundary is the key, not a broken route)', async () => {
    const q = `/queues/api/queues/${encodeURIComponent(queueName('story-a'))}`;
    const r = await call(urls[1], `${q}/pause`, { method: 'PUT', key: ADMIN });
    assert.equal(r.status, 200);
    assert.equal(await queue.isPaused(), true);
  });
});
