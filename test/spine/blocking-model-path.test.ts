// A model whose file is a FIFO (open() would wait for a writer forever; a dead mount behaves the same) fails that
// model only: a real gateway and CPU worker serve two models, and the other one keeps answering, before, during and
// after repeated requests to the broken one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { parseConfig } from '../../services/config/config.ts';
import { makeTempDir } from '../helpers/make-model.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';
import { DATA_MODELS, startStack, STORIES, type Stack } from './stack.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

/** Longest a request may take here (ms): well under the 300 s job timeout a stalled model would run into. */
const BOUND_MS = 10_000;

let redis: TestRedis;
let stack: Stack;
let client: OpenAI;
before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  const dir = await makeTempDir('fifo-model');
  const fifo = join(dir, 'blocked.gguf');
  execFileSync('mkfifo', [fifo]);
  stack = await startStack(parseConfig({
    prefix: redis.prefix(),
    modelRoots: [DATA_MODELS, dir],
    budgets: { hostBytes: '16MiB', gpuBytes: '16MiB', scratchBytes: '64MiB' },
    gateway: { port: 0, keepAliveMs: 100 },
    worker: { concurrency: 2 },
    models: [{ id: 'story', path: STORIES }, { id: 'blocked', path: fifo }],
  }, { REDIS_URL: redis.url }));
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: BOUND_MS });
});
after(async () => {
  await stack?.close();
  await redis?.stop();
});

const ask = (model: string) => client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });

describe('a model path that blocks on open()', { skip: SKIP }, () => {
  it('fails only its own model, with an OpenAI error, while the other model keeps answering', async () => {
    assert.ok((await ask('story')).choices[0].text.length > 0);
    // More requests to the blocked model than the libuv pool has threads (4): once, each took one for good.
    const t0 = performance.now();
    const broken = await Promise.allSettled(Array.from({ length: 6 }, () => ask('blocked')));
    const during = await ask('story');
    for (const r of broken) {
      assert.equal(r.status, 'rejected');
      const e = (r as PromiseRejectedResult).reason as { status?: number; error?: { message?: string; type?: string } };
      assert.ok(e.status !== undefined && e.status >= 400, `an HTTP error, got ${String(e)}`);
      assert.equal(typeof e.error?.message, 'string', 'an OpenAI error object');
    }
    assert.ok(performance.now() - t0 < BOUND_MS, 'the broken model fails fast');
    assert.ok(during.choices[0].text.length > 0);
    // Still answering after: nothing of the process is held by the FIFO.
    const again = await Promise.all([ask('story'), ask('story')]);
    for (const r of again) assert.ok(r.choices[0].text.length > 0);
  });
});
