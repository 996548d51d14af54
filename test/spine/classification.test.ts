// Failure classification through the gateway (issue 11): a model whose file the worker rejected answers 503
// model_load_failed naming it, while the worker's other models keep answering. Real Redis, worker, socket.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../services/config/config.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { DATA_MODELS, STORIES, startStack } from './stack.ts';

let redis: TestRedis;
let dir: string;
before(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-classify-'));
});
after(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function post(url: string, model: string): Promise<{ status: number; body: { error?: { code: string; message: string; type: string } } }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }),
  });
  return { status: res.status, body: await res.json() as { error?: { code: string; message: string; type: string } } };
}

describe('failure classification', () => {
  it('a model whose file was rejected answers 503 model_load_failed naming it; the others keep answering', { timeout: 60_000 }, async () => {
    const bad = join(dir, 'garbage.gguf');
    await writeFile(bad, Buffer.from('GGUF but not really a model file at all'));
    const config = parseConfig({
      prefix: redis.prefix(), modelRoots: [DATA_MODELS, dir],
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
      gateway: { port: 0, keepAliveMs: 100 },
      models: [{ id: 'story', path: STORIES }, { id: 'broken', path: bad }],
    }, { REDIS_URL: redis.url });
    const stack = await startStack(config);
    try {
      const r = await post(stack.gateway.url, 'broken');
      assert.equal(r.status, 503);
      assert.equal(r.body.error?.code, 'model_load_failed');
      assert.equal(r.body.error?.type, 'server_error');
      assert.match(r.body.error?.message ?? '', /`broken`/);
      const ok = await post(stack.gateway.url, 'story');
      assert.equal(ok.status, 200);
    } finally {
      await stack.close();
    }
  });
});
