// Issue 14 item 4 on the CPU: two real worker processes share one "GPU" (LocalProcessProvider, workersPerGpu 2; the
// CPU backend, so no MPS daemon here — test/scheduler/mps.test.ts covers it) and both stream. One is killed with
// SIGKILL (what a fatal CUDA error under MPS does to every client's context): the provider drains the other, restarts
// both under the same ids, and every accepted request ends completed, or failed with a retryable error whose retry by
// the client completes. 0 lost. Real Redis, real BullMQ, stories260K.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Client, RequestError } from '../../services/sdk/index.ts';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import { connect } from '../../services/client/queues.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';

const SKIP = needsData();
let redis: TestRedis;
let dir: string;
const closers: (() => Promise<unknown>)[] = [];
before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-coloc-fault-'));
});
after(async () => {
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function until<T>(what: string, f: () => Promise<T | null | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a co-located worker killed while both stream', { skip: SKIP }, () => {
  it('both workers on the GPU restart; every accepted request completes or fails retryably and its retry completes; 0 lost', { timeout: 150_000 }, async (t) => {
    const prefix = redis.prefix();
    const raw = {
      redisUrl: redis.url, prefix, modelRoots: [join(STORIES260K_GGUF, '..')],
      budgets: { hostBytes: '32MiB', gpuBytes: '8MiB', scratchBytes: '128MiB' },
      worker: { concurrency: 2, lockDurationMs: 1000, stalledIntervalMs: 300, maxStalledCount: 2 },
      shutdown: { timeoutMs: 20_000 },
      models: [{ id: 'story', path: STORIES260K_GGUF }],
    };
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify(raw));
    const exits: string[] = [];
    const lines: string[] = [];
    // Self-loading workers (no scheduler): each consumes the model's queue; the group restart is the provider's.
    const provider = new LocalProcessProvider({
      gpus: 1, workersPerGpu: () => 2, extraArgs: ['--config', file, '--threads', '1', '--backend', 'cpu'],
      stdio: 'ignore', stopOnClose: true, killAfterMs: 25_000,
      onExit: (id, code, signal) => exits.push(`${id}:${signal ?? code}`), log: (l) => lines.push(l),
    });
    const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 120_000 });
    const conn = connect(redis.url);
    closers.push(() => client.close(), async () => conn.disconnect(), () => provider.close());
    const state = async (id: string): Promise<WorkerState | null> => {
      const s = await conn.get(clusterKeys(prefix).workerState(id));
      return s === null ? null : parseWorkerState(s);
    };
    try {
      await provider.start('g0a', { model: null });
      await provider.start('g0b', { model: null });
      const [a0, b0] = await Promise.all(['g0a', 'g0b'].map((id) => until(`${id} up`, () => state(id))));
      assert.equal(a0.budgets.gpu, 4 * 2 ** 20, 'each co-located worker has half the GPU budget');
      assert.equal(b0.budgets.gpu, 4 * 2 ** 20);
      // Both load the model and serve (one warm-up request each would not pin a worker: just wait for both).
      await client.complete({ model: 'story', prompt: '', max_tokens: 2, temperature: 0 });

      // Four long streams: two per worker (concurrency 2 each). Wait until both workers hold jobs and a token flowed.
      const N = 4;
      const req = (i: number) => ({ model: 'story', prompt: `Once upon a time ${i}`, max_tokens: 400, temperature: 0.8, seed: i });
      const streams = await Promise.all([...Array(N)].map((_, i) => client.stream(req(i))));
      const firstToken: Promise<void>[] = [];
      const outcomes = streams.map((s) => {
        let gotFirst!: () => void;
        firstToken.push(new Promise<void>((r) => (gotFirst = r)));
        return (async (): Promise<{ ok: boolean; tokens: number; err?: RequestError }> => {
          const idx: number[] = [];
          try {
            for await (const tok of s) {
              idx.push(tok.index);
              if (idx.length === 1) gotFirst();
            }
            await s.result;
            assert.deepEqual(idx, idx.map((_, i) => i), 'no token twice');
            return { ok: true, tokens: idx.length };
          } catch (e) {
            gotFirst();
            assert.deepEqual(idx, idx.map((_, i) => i), 'no token twice');
            if (!(e instanceof RequestError)) throw e;
            return { ok: false, tokens: idx.length, err: e };
          }
        })();
      });
      const busy = await until('both workers streaming', async () => {
        const [a, b] = await Promise.all([state('g0a'), state('g0b')]);
        const act = (w: WorkerState | null) => w?.models.story?.activeJobs ?? 0;
        return a && b && act(a) > 0 && act(b) > 0 ? { a, b } : null;
      });
      await Promise.race([Promise.all(firstToken), new Promise((r) => setTimeout(r, 5000))]);
      process.kill(busy.a.pid, 'SIGKILL');
      const results = await Promise.all(outcomes);

      // Every accepted request: completed, or failed retryably and the client's retry completes.
      let retried = 0;
      for (const [i, r] of results.entries()) {
        if (r.ok) continue;
        assert.equal(r.err!.retryable, true, `request ${i} failed with a retryable error, got ${r.err!.code}: ${r.err!.message}`);
        const again = await client.complete(req(i));
        assert.ok(again.usage.completionTokens > 0, `the retry of request ${i} completes`);
        retried++;
      }
      t.diagnostic(`${N} streams: ${N - retried} completed, ${retried} failed retryably (${results.filter((r) => !r.ok).map((r) => r.err!.code).join(', ') || 'none'}) and completed on retry; 0 lost`);
      // The group restart: the killed worker and its sibling (drained, clean exit) both back, same ids.
      assert.ok(lines.some((l) => /co-located worker g0a on GPU 0 exited \(SIGKILL\)/.test(l)), lines.join('\n'));
      await until('both restarted', async () => (provider.running().length === 2 ? true : null));
      assert.deepEqual(exits.sort(), ['g0a:SIGKILL', 'g0b:0']);
      const [a1, b1] = await Promise.all(['g0a', 'g0b'].map((id) => until(`${id} restarted`, async () => {
        const s = await state(id);
        return s && s.pid !== (id === 'g0a' ? busy.a.pid : busy.b.pid) ? s : null;
      })));
      assert.ok(a1.startedAt > busy.a.startedAt && b1.startedAt > busy.b.startedAt);
      // The GPU serves again.
      const after = await client.complete({ model: 'story', prompt: '', max_tokens: 2, temperature: 0 });
      assert.equal(after.usage.completionTokens, 2);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nexits: ${JSON.stringify(exits)}\nprovider log:\n${lines.join('\n')}`, { cause: e });
    } finally {
      for (const close of closers.splice(0)) await close().catch(() => undefined);
    }
  });
});
