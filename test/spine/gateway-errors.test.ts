// Gateway over a real socket with the official openai client: typed errors (400, 404, 413, 429, 503), models,
// health, idempotency, and a disconnecting client removing its waiting job. No worker runs here.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import OpenAI from 'openai';
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { Producer } from '../../services/client/producer.ts';
import { connect } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import { Queue } from 'bullmq';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

let redis: TestRedis;
before(async () => { redis = await startRedis(); });
after(async () => { await redis.stop(); });

function config(extra: Record<string, unknown> = {}): Config {
  return parseConfig({
    prefix: redis.prefix(),
    modelRoots: ['/tmp'],
    gateway: { port: 0, bodyLimitBytes: 4096, keepAliveMs: 50 },
    models: [{ id: 'tiny', path: '/tmp/none.gguf', maxQueued: 2 }],
    ...extra,
  }, { REDIS_URL: redis.url });
}

async function withGateway(cfg: Config, fn: (gw: Gateway, client: OpenAI) => Promise<void>): Promise<void> {
  const gw = await startGateway(cfg);
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  try {
    await fn(gw, client);
  } finally {
    await gw.close();
  }
}

async function rawPost(url: string, path: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let s = '';
      res.on('data', (d) => (s += d));
      res.on('end', () => resolve({ status: res.statusCode!, json: s ? JSON.parse(s) : null, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('gateway errors and metadata', () => {
  it('lists models and answers health and readiness', async () => {
    await withGateway(config(), async (gw, client) => {
      const list = await client.models.list();
      assert.deepEqual(list.data.map((m) => m.id), ['tiny']);
      assert.equal((await client.models.retrieve('tiny')).id, 'tiny');
      await assert.rejects(client.models.retrieve('nope'), (e: any) => e.status === 404 && e.code === 'model_not_found');
      assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
    });
  });

  it('refuses an unknown model with 404 model_not_found', async () => {
    await withGateway(config(), async (_gw, client) => {
      await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
        (e: any) => e.status === 404 && e.code === 'model_not_found' && e.param === 'model' && e.type === 'invalid_request_error');
      await assert.rejects(client.completions.create({ model: 'nope', prompt: 'hi' }), (e: any) => e.status === 404);
    });
  });

  it('refuses bad bodies with 400 invalid_request naming the field', async () => {
    await withGateway(config(), async (gw, client) => {
      await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [] }),
        (e: any) => e.status === 400 && e.code === 'invalid_request' && e.param === 'messages');
      await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 9 }),
        (e: any) => e.status === 400 && e.param === 'temperature');
      const broken = await rawPost(gw.url, '/v1/chat/completions', '{"model":');
      assert.equal(broken.status, 400);
      assert.equal(broken.json.error.code, 'invalid_request');
      const unknownRoute = await rawPost(gw.url, '/v1/nothing', '{}');
      assert.equal(unknownRoute.status, 404);
      assert.equal(unknownRoute.json.error.code, 'not_found');
    });
  });

  it('refuses a body over the limit with 413 body_too_large', async () => {
    await withGateway(config(), async (_gw, client) => {
      await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'x'.repeat(10_000) }),
        (e: any) => e.status === 413 && e.code === 'body_too_large');
    });
  });

  it('refuses with 429 queue_full and Retry-After when the model queue is full', async () => {
    const cfg = config();
    const conn = connect(redis.url);
    const producer = new Producer(conn, cfg.prefix);
    try {
      // Fill the queue (maxQueued 2) with two waiting jobs; no worker consumes them.
      for (let i = 0; i < 2; i++) {
        await producer.submit({ v: 1, requestId: `filler000${i}`, model: 'tiny', kind: 'completion', input: { type: 'text', prompt: 'x' },
          sampling: { maxTokens: 1, temperature: 0, topP: 1, stop: [] }, arrivalMs: Date.now(), source: 'sdk' }, { maxQueued: 100 });
      }
      await withGateway(cfg, async (gw) => {
        const r = await rawPost(gw.url, '/v1/completions', JSON.stringify({ model: 'tiny', prompt: 'hi' }));
        assert.equal(r.status, 429);
        assert.equal(r.json.error.code, 'queue_full');
        assert.equal(r.headers['retry-after'], '1');
      });
    } finally {
      await producer.close();
      conn.disconnect();
    }
  });

  it('answers 503 draining while closing', async () => {
    const cfg = config();
    const gw = await startGateway(cfg);
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    // A streamed request keeps the server open while it drains.
    const ac = new AbortController();
    const pending = client.completions.create({ model: 'tiny', prompt: 'hold', stream: true }, { signal: ac.signal }).then(async (s) => { for await (const _ of s) { /* none */ } }).catch(() => {});
    const closing = gw.close();
    const r = await rawPost(gw.url, '/v1/completions', JSON.stringify({ model: 'tiny', prompt: 'hi' })).catch((e) => ({ status: -1, json: null, headers: {}, e }));
    // Either the listener already stopped accepting, or the request was refused with 503 draining.
    if (r.status !== -1) {
      assert.equal(r.status, 503);
      assert.equal(r.json.error.code, 'draining');
    }
    ac.abort();
    await pending;
    await closing;
  });

  it('removes the waiting job of a streaming client that disconnects', async () => {
    const cfg = config();
    await withGateway(cfg, async (_gw, client) => {
      const conn = connect(redis.url);
      const q = new Queue(queueName('tiny'), { connection: conn, prefix: cfg.prefix });
      try {
        const ac = new AbortController();
        const stream = await client.completions.create({ model: 'tiny', prompt: 'bye', stream: true }, { signal: ac.signal });
        assert.equal(await q.getWaitingCount(), 1);
        ac.abort();
        // The client may end its iterator quietly or with an abort error: either way it is gone.
        await (async () => { for await (const _ of stream) { /* none */ } })().catch(() => {});
        const deadline = Date.now() + 5000;
        while ((await q.getWaitingCount()) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.equal(await q.getWaitingCount(), 0);
      } finally {
        await q.close();
        conn.disconnect();
      }
    });
  });

  it('keeps a waiting stream alive with SSE comment lines', async () => {
    await withGateway(config(), async (gw) => {
      const text = await new Promise<string>((resolve, reject) => {
        const req = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          assert.equal(res.statusCode, 200);
          assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
          let got = '';
          res.on('data', (d: Buffer) => {
            got += d.toString();
            if ((got.match(/^: waiting$/gm) ?? []).length >= 2) {
              res.destroy();
              resolve(got);
            }
          });
        });
        req.on('error', reject);
        req.end(JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'wait' }], stream: true }));
      });
      // The role chunk opens the stream; no content arrives while nothing serves the model.
      assert.match(text, /"role":"assistant"/);
      assert.doesNotMatch(text, /"content":"[^"]/);
    });
  });

  it('dedupes an Idempotency-Key retry onto the first request', async () => {
    const cfg = config();
    await withGateway(cfg, async (gw) => {
      const conn = connect(redis.url);
      const q = new Queue(queueName('tiny'), { connection: conn, prefix: cfg.prefix });
      try {
        const send = () => new Promise<string>((resolve, reject) => {
          const req = request(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'retry-1' } }, (res) => {
            resolve(String(res.headers['x-request-id']));
            res.destroy();
          });
          req.on('error', reject);
          req.end(JSON.stringify({ model: 'tiny', prompt: 'same', stream: true }));
        });
        const a = await send();
        const b = await send();
        assert.equal(a, b);
        assert.ok((await q.getJobCounts('waiting', 'active')).waiting <= 1);
      } finally {
        await q.close();
        conn.disconnect();
      }
    });
  });
});
