// Issue 11 leftover: a model whose file the worker rejects at registration leaves one error line in the worker's
// structured log (pino), naming the model and the reason, while its other models register. Real Redis, real worker.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../services/config/config.ts';
import { createLogger } from '../../services/config/log.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { DATA_MODELS, STORIES } from './stack.ts';

let redis: TestRedis;
let dir: string;
before(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-rejected-log-'));
});
after(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('worker log', () => {
  it('a rejected model registration is one error line naming the model', { timeout: 60_000 }, async () => {
    const bad = join(dir, 'garbage.gguf');
    await writeFile(bad, Buffer.from('GGUF but not really a model file at all'));
    const config = parseConfig({
      prefix: redis.prefix(), modelRoots: [DATA_MODELS, dir],
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
      models: [{ id: 'story', path: STORIES }, { id: 'broken', path: bad }],
    }, { REDIS_URL: redis.url });
    const lines: Record<string, unknown>[] = [];
    // The test runner silences logs (LOG_LEVEL), which createLogger prefers: this logger is read, not printed.
    const level = process.env.LOG_LEVEL;
    delete process.env.LOG_LEVEL;
    const log = createLogger({ service: 'worker', level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } } });
    if (level !== undefined) process.env.LOG_LEVEL = level;
    const w = new SwapWorker({ config, backend: new NativeBackend(config, { backend: 'cpu', threads: 1 }), log });
    try {
      await w.start();
      const end = Date.now() + 20_000;
      while (!lines.some((l) => l.model === 'broken') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      const rejected = lines.filter((l) => l.model === 'broken');
      assert.equal(rejected.length, 1, JSON.stringify(lines));
      assert.equal(rejected[0].level, 50, 'error level');
      assert.equal(rejected[0].code, 'model_load_failed');
      assert.match(String(rejected[0].msg), /^model broken rejected: .+/);
      assert.ok(!lines.some((l) => l.model === 'story' && l.level === 50), 'the good model is not reported');
    } finally {
      await w.close();
    }
  });
});
