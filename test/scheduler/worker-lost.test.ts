// Issue 4 item 10, end to end: the ONLY worker of a model is killed with SIGKILL mid-job. BullMQ keeps the job
// `active` (its lock expires, but only a running BullMQ Worker's stalled check moves it back), so the real scheduler
// must count it as demand: it starts a worker through LocalProcessProvider (scale from zero), places the model
// there, and that worker's stalled check hands the job to it. The client (SDK) gets exactly one outcome, long before
// its 300 s timeout, and never a token twice. Real Redis, real BullMQ, real CPU worker processes, stories260K.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { settingsFromConfig } from '../../services/cli/scheduler.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import { Client, RequestError } from '../../services/sdk/index.ts';
import { clusterKeys, parseWorkerState } from '../../contracts/cluster.ts';
import { parseConfig } from '../../services/config/config.ts';
import { streamEventSchema, type StreamEvent } from '../../contracts/stream.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

let redis: TestRedis;
let dir: string;
/** Closers of what a test opened, run by `after` even when the test times out (so the process can exit). */
const closers: (() => Promise<unknown>)[] = [];
before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-worker-lost-'));
});
after(async () => {
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The default SDK request timeout: an answer well before it is not a timeout. */
const CLIENT_TIMEOUT_MS = 300_000;
/** Each recovery must end far sooner: worker state expiry (3 s) + a worker start + BullMQ's stalled check. */
const RECOVERY_BOUND_MS = 60_000;

async function eventsOnStream(conn: RedisClient, prefix: string, requestId: string): Promise<StreamEvent[]> {
  const entries = (await conn.xrange(keys(prefix).stream(requestId), '-', '+')) as [string, string[]][];
  return entries.map(([, f]) => streamEventSchema.parse(JSON.parse(f[1])));
}

/** Worker id of an attempt (`<workerId>.<attemptsStarted>.<random>`; scheduler-started ids have no dots). */
const workerOf = (attempt: string): string => attempt.split('.')[0];

describe('the only worker killed with SIGKILL mid-job, under the scheduler', { skip: SKIP }, () => {
  it('the scheduler starts a new worker, whose stalled check re-runs the job: one outcome, no token twice', { timeout: 120_000 }, async (t) => {
    const prefix = redis.prefix();
    const raw = {
      redisUrl: redis.url, prefix, modelRoots: [join(STORIES260K_GGUF, '..')],
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
      // Short lock and stalled interval: the new worker's stalled check finds the dead worker's lock gone at once.
      worker: { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 300, maxStalledCount: 2 },
      models: [{ id: 'story', path: STORIES260K_GGUF }],
    };
    const file = join(dir, `${prefix.replace(/\W/g, '')}.json`);
    await writeFile(file, JSON.stringify(raw));
    const config = parseConfig(raw, {});

    const exits: { id: string; signal: string | null }[] = [];
    const provider = new LocalProcessProvider({
      extraArgs: ['--config', file, '--no-self-load', '--threads', '1', '--backend', 'cpu'],
      stdio: 'ignore', stopOnClose: true, killAfterMs: 3000,
      onExit: (id, _code, signal) => exits.push({ id, signal }),
    });
    const logs: string[] = [];
    let leading: (() => void) | null = null;
    const isLeader = new Promise<void>((r) => (leading = r));
    const scheduler = new Scheduler({
      redisUrl: redis.url, prefix, models: await settingsFromConfig(config, 1), provider,
      policy: { maxWorkers: 1 }, leaseMs: 1000, tickMs: 200, pollMs: 200,
      log: (m) => {
        logs.push(m);
        if (m.includes('leader, epoch')) leading?.();
      },
    });
    const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: CLIENT_TIMEOUT_MS });
    const conn = connect(redis.url);
    const queue = new Queue(queueName('story'), { connection: conn, prefix });
    closers.push(() => client.close(), () => queue.close(), async () => conn.disconnect(), () => scheduler.close());
    const pidOf = async (workerId: string): Promise<number> => {
      const s = await conn.get(clusterKeys(prefix).workerState(workerId));
      assert.ok(s !== null, `worker ${workerId} has a state key`);
      return parseWorkerState(s).pid;
    };
    try {
      await scheduler.start();
      await isLeader;
      assert.deepEqual(provider.running(), [], 'no worker before the first request');

      // Scale from zero: the first request makes the scheduler start w1 and place the model on it.
      const first = await client.complete({ model: 'story', prompt: '', max_tokens: 2, temperature: 0 });
      assert.deepEqual(provider.running(), [first.workerId]);
      const w1 = first.workerId;

      // 1. Mid-stream: w1 is killed right after the first token reaches the client.
      const t1 = Date.now();
      const s1 = await client.stream({ model: 'story', prompt: '', max_tokens: 400, temperature: 0 });
      const indexes: number[] = [];
      let caught: unknown = null;
      try {
        for await (const tok of s1) {
          indexes.push(tok.index);
          if (indexes.length === 1) process.kill(await pidOf(w1), 'SIGKILL');
        }
      } catch (e) {
        caught = e;
      }
      const took1 = Date.now() - t1;
      assert.ok(caught instanceof RequestError, `expected a RequestError, got ${String(caught)}`);
      assert.equal(caught.code, 'worker_lost');
      assert.equal(caught.retryable, true);
      await assert.rejects(s1.result, (e: RequestError) => e.code === 'worker_lost');
      assert.deepEqual(indexes, indexes.map((_, i) => i), 'token indexes 0..n-1: none delivered twice');
      assert.ok(took1 < RECOVERY_BOUND_MS, `answered in ${took1} ms, far below the ${CLIENT_TIMEOUT_MS} ms timeout`);
      const ev1 = await eventsOnStream(conn, prefix, s1.requestId);
      assert.equal(ev1.filter((e) => e.type === 'done' && workerOf(e.attempt) === w1).length, 0, 'w1 was killed before it finished');
      const rerunBy = [...new Set(ev1.map((e) => workerOf(e.attempt)))].filter((w) => w !== w1);
      assert.equal(rerunBy.length, 1, `the job was re-run by one new worker (attempts: ${ev1.map((e) => e.attempt)})`);
      const w2 = rerunBy[0];
      t.diagnostic(`mid-stream kill after ${indexes.length} token(s): worker_lost after ${took1} ms, re-run by ${w2}`);
      assert.deepEqual(exits, [{ id: w1, signal: 'SIGKILL' }]);
      assert.deepEqual(provider.running(), [w2], 'the re-run came from the worker the scheduler started through the provider');

      // 2. Before (or at) the first token: a long prompt keeps w2 in prefill; it is killed as soon as it holds the job.
      const t2 = Date.now();
      const s2 = await client.stream({ model: 'story', prompt: 'the quick brown fox jumps over the lazy dog. '.repeat(30), max_tokens: 200, temperature: 0 });
      const deadline = Date.now() + 20_000;
      while ((await queue.getActiveCount()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      process.kill(await pidOf(w2), 'SIGKILL');
      const got: number[] = [];
      let err: unknown = null;
      try {
        for await (const tok of s2) got.push(tok.index);
      } catch (e) {
        err = e;
      }
      const took2 = Date.now() - t2;
      assert.deepEqual(got, got.map((_, i) => i), 'token indexes 0..n-1: none delivered twice');
      const ev2 = await eventsOnStream(conn, prefix, s2.requestId);
      const w3s = [...new Set(ev2.map((e) => workerOf(e.attempt)))].filter((w) => w !== w1 && w !== w2);
      assert.equal(w3s.length, 1, `the job was re-run by one new worker (attempts: ${ev2.map((e) => e.attempt)})`);
      if (err === null) {
        // Killed in prefill: the retry is transparent and the request completes once, on the new worker.
        const r = await s2.result;
        assert.equal(r.workerId, w3s[0]);
        assert.equal(r.usage.completionTokens, got.length);
        assert.equal(ev2.filter((e) => e.type === 'token' && workerOf(e.attempt) === w2).length, 0);
      } else {
        // A token of w2 had reached the client: one retryable worker_lost, never a duplicate.
        assert.ok(err instanceof RequestError && err.code === 'worker_lost' && err.retryable, `got ${String(err)}`);
        assert.ok(ev2.some((e) => e.type === 'token' && workerOf(e.attempt) === w2));
      }
      assert.equal(ev2.filter((e) => e.type === 'done' && workerOf(e.attempt) === w2).length, 0, 'w2 was killed before it finished');
      assert.ok(took2 < RECOVERY_BOUND_MS, `answered in ${took2} ms`);
      t.diagnostic(`kill at job start: ${err === null ? `completed (${got.length} tokens)` : `worker_lost after ${got.length} token(s)`} after ${took2} ms, re-run by ${w3s[0]}`);

      // The system still serves.
      const again = await client.complete({ model: 'story', prompt: '', max_tokens: 2, temperature: 0 });
      assert.equal(again.workerId, w3s[0]);
      assert.equal(again.usage.completionTokens, 2);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nworker exits: ${JSON.stringify(exits)}\nscheduler log:\n${logs.join('\n')}`, { cause: e });
    } finally {
      for (const close of closers.splice(0)) await close().catch(() => undefined);
    }
  });
});
