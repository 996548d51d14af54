// Issue 16: `swapserve up` with several workers on one host (CPU backend here: the same layout code as GPUs, without
// the --device). The machine's pinned host budget (host.pinnedBytes) is split among the workers — each reports its
// part in its own state — every worker's placement is logged, and NUMA binding is a logged no-op where it cannot apply.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import { connect } from '../../services/client/queues.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';
import { BIN } from '../helpers/worker-process.ts';

const MiB = 2 ** 20;
let redis: TestRedis;
let dir: string;
let up: ChildProcess | null = null;
before(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-up-multi-'));
});
after(async () => {
  if (up && up.exitCode === null && up.signalCode === null) {
    const exited = once(up, 'exit');
    up.kill('SIGTERM');
    await exited;
  }
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('swapserve up, three workers on one host', { skip: needsData() }, () => {
  it('splits host.pinnedBytes among the workers (each reports its part) and logs each worker\'s placement', { timeout: 60_000 }, async () => {
    const prefix = redis.prefix();
    const port = await freePort();
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({
      prefix, dataDir: dir, modelRoots: [join(STORIES260K_GGUF, '..')], gateway: { port },
      // 3 x 16 MiB asked, 30 MiB allowed together: 10 MiB each.
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' }, host: { pinnedBytes: '30MiB' },
      models: [{ id: 'story-a', path: STORIES260K_GGUF }],
    }));
    let out = '';
    up = spawn(process.execPath, [BIN, 'up', '--config', file, '--workers', '3', '--no-scheduler'], {
      stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, REDIS_URL: redis.url, SWAPSERVE_BACKEND: 'cpu' },
    });
    up.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const conn = connect(redis.url);
    const k = clusterKeys(prefix);
    try {
      let ws: WorkerState[] = [];
      const deadline = Date.now() + 50_000;
      while (ws.length < 3) {
        if (Date.now() > deadline || up.exitCode !== null) throw new Error(`three workers did not register:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
        const ids = await conn.zrange(k.workers(), '0', '-1');
        ws = (await Promise.all(ids.map((id) => conn.get(k.workerState(id))))).flatMap((r) => (r ? [parseWorkerState(r)] : []));
      }
      assert.deepEqual(ws.map((w) => w.budgets.host), [10 * MiB, 10 * MiB, 10 * MiB], 'each worker pins its third of host.pinnedBytes');
      assert.match(out, /pinned host budgets: 3 workers x 16\.0 MiB = 48\.0 MiB is more than host\.pinnedBytes \(30\.0 MiB\)/);
      for (let i = 0; i < 3; i++) assert.match(out, new RegExp(`worker-${i}: CPU, not bound, pinned host 10\\.0 MiB`));
      // The gateway serves through them.
      const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'story-a', prompt: 'Once upon a time', max_tokens: 3 }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      // `up` says when the stack serves without holding a request (here: no scheduler; the three workers registered).
      for (const end = Date.now() + 10_000; !/\[up\] ready: 3 workers registered/.test(out); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > end) throw new Error(`no ready line:\n${out}`);
      }
    } finally {
      conn.disconnect();
    }
  });
});
