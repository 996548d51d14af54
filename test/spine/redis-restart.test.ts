// Chaos (issue 11): Redis SIGKILLed and restarted from its AOF (appendfsync always) while requests wait in their
// queue: nothing is lost — every request enqueued before the kill completes once a worker runs, and the clients
// that were following their streams across the restart get their answers. Real redis-server, worker, SDK.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../services/config/config.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { Client } from '../../services/sdk/index.ts';
import { DATA_MODELS, STORIES, startWorker } from './stack.ts';

let dir: string;
let port: number;
let redis: ChildProcess | null = null;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swapserve-aof-'));
  port = await freePort();
});
after(async () => {
  if (redis && redis.exitCode === null && redis.signalCode === null) redis.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** redis-server on `port` with an AOF in `dir`; resolves once it accepts connections (after loading the AOF). */
async function startAofRedis(): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', () => reject(new Error(`redis-server exited:\n${out}`)));
  });
  child.stdout!.removeAllListeners('data');
  child.stdout!.resume();
  return child;
}

describe('Redis SIGKILL and restart with AOF', () => {
  it('requests enqueued before the kill all complete after the restart, once each', { timeout: 90_000 }, async () => {
    redis = await startAofRedis();
    const url = `redis://127.0.0.1:${port}`;
    const config = parseConfig({
      prefix: '{aof}', modelRoots: [DATA_MODELS],
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
      models: [{ id: 'story', path: STORIES }],
    }, { REDIS_URL: url });
    const client = new Client({ redisUrl: url, prefix: config.prefix, timeoutMs: 60_000 });
    try {
      // No worker yet: the requests wait in their queue (and their clients on their streams).
      const N = 6;
      const streams = await Promise.all(Array.from({ length: N }, (_, i) => client.stream({ model: 'story', prompt: `Once upon a time ${i}`, max_tokens: 4 })));
      const results = streams.map(async (s) => {
        const indexes: number[] = [];
        for await (const t of s) indexes.push(t.index);
        return { r: await s.result, indexes };
      });
      const exited = once(redis, 'exit');
      redis.kill('SIGKILL');
      await exited;
      redis = await startAofRedis();
      const worker = await startWorker(config);
      try {
        const done = await Promise.all(results);
        for (const { r, indexes } of done) {
          assert.equal(r.usage.completionTokens, 4);
          assert.deepEqual(indexes, [0, 1, 2, 3], 'each token once');
        }
        assert.equal(new Set(done.map((d) => d.r.requestId)).size, N);
      } finally {
        await worker.close();
      }
    } finally {
      await client.close();
    }
  });
});
