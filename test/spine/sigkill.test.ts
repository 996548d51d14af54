// Durability: a worker process killed with SIGKILL mid-job. BullMQ's stalled check hands the job to another
// worker; the client gets exactly one outcome and never a duplicate token: a transparent retry when no token
// had been sent yet, else one retryable worker_lost error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import { Client, SwapserveError } from '../../services/sdk/index.ts';
import { connect } from '../../services/client/queues.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { streamEventSchema, type StreamEvent } from '../../contracts/stream.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { BIN, startWorkerProcess } from '../helpers/worker-process.ts';

let redis: TestRedis;
let modelPath: string;
const children = new Set<ChildProcess>();

before(async () => {
  redis = await startRedis();
  // Random weights, big enough that a token takes milliseconds on one CPU thread (the kill lands mid-stream).
  modelPath = await makeTinyModel({ family: 'llama', format: 'gguf', seed: 3, config: { hiddenSize: 384, intermediateSize: 1024, numLayers: 6, numHeads: 6, numKvHeads: 2, headDim: 64, maxPositions: 4096 } });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.stop();
});

async function writeConfig(prefix: string, maxStalledCount = 2): Promise<string> {
  const file = join(dirname(modelPath), `config-${prefix.replace(/\W/g, '')}.json`);
  await writeFile(file, JSON.stringify({
    redisUrl: redis.url, prefix, modelRoots: [dirname(modelPath)],
    budgets: { hostBytes: '256MiB', gpuBytes: '256MiB', scratchBytes: '256MiB' },
    worker: { concurrency: 1, lockDurationMs: 1000, stalledIntervalMs: 300, maxStalledCount },
    models: [{ id: 'big', path: modelPath }],
  }));
  return file;
}

async function startWorker(config: string, id: string): Promise<ChildProcess> {
  return (await startWorkerProcess([BIN, 'worker', '--config', config], id, children)).child;
}

/** A prompt whose prefill takes w1 long enough to be killed in it. */
const LONG_PROMPT = 'the quick brown fox jumps over the lazy dog '.repeat(60);

/** SIGKILLs `w1` as soon as a job of the queue is active (w1 holds it), then starts w2 on the same config. */
async function killOnceActive(queue: Queue, w1: ChildProcess, config: string): Promise<ChildProcess> {
  const deadline = Date.now() + 20_000;
  while ((await queue.getActiveCount()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  w1.kill('SIGKILL');
  return startWorker(config, 'w2');
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

async function eventsOnStream(prefix: string, requestId: string): Promise<StreamEvent[]> {
  const c = connect(redis.url);
  try {
    const entries = (await c.xrange(keys(prefix).stream(requestId), '-', '+')) as [string, string[]][];
    return entries.map(([, f]) => streamEventSchema.parse(JSON.parse(f[1])));
  } finally {
    c.disconnect();
  }
}

async function attemptsOnStream(prefix: string, requestId: string): Promise<Set<string>> {
  return new Set((await eventsOnStream(prefix, requestId)).map((e) => e.attempt));
}

describe('worker killed with SIGKILL', () => {
  it('mid-stream: the client sees each token once, then one retryable worker_lost error', async () => {
    const prefix = redis.prefix();
    const config = await writeConfig(prefix);
    const w1 = await startWorker(config, 'w1');
    const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 30_000 });
    let w2: ChildProcess | null = null;
    try {
      const s = await client.stream({ model: 'big', prompt: 'hello world', max_tokens: 400, temperature: 1, seed: 11 });
      const indexes: number[] = [];
      let caught: unknown = null;
      try {
        for await (const t of s) {
          indexes.push(t.index);
          if (indexes.length === 1) {
            w1.kill('SIGKILL');
            w2 = await startWorker(config, 'w2');
          }
        }
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof SwapserveError, `expected a SwapserveError, got ${caught}`);
      assert.equal((caught as SwapserveError).code, 'worker_lost');
      assert.equal((caught as SwapserveError).retryable, true);
      await assert.rejects(s.result, (e: SwapserveError) => e.code === 'worker_lost');
      assert.deepEqual(indexes, indexes.map((_, i) => i), 'token indexes are 0..n-1: none repeated');
      assert.ok(indexes.length < 400, 'w1 was killed before it finished');
      // The error came from the re-run on w2, not from a timeout.
      const attempts = await attemptsOnStream(prefix, s.requestId);
      assert.ok([...attempts].some((a) => a.startsWith('w1.')) && [...attempts].some((a) => a.startsWith('w2.')), `attempts: ${[...attempts]}`);
      // The system still serves.
      const r = await client.complete({ model: 'big', prompt: 'again', max_tokens: 2 });
      assert.equal(r.workerId, 'w2');
      assert.equal(r.usage.completionTokens, 2);
    } finally {
      await client.close();
      if (w2) await stop(w2);
      await stop(w1);
    }
  });

  it('past maxStalledCount: BullMQ fails the job and the client gets one retryable worker_lost error', async () => {
    const prefix = redis.prefix();
    const config = await writeConfig(prefix, 0);
    const w1 = await startWorker(config, 'w1');
    const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 60_000 });
    const conn = connect(redis.url);
    const queue = new Queue(queueName('big'), { connection: conn, prefix });
    let w2: ChildProcess | null = null;
    try {
      const s = await client.stream({ model: 'big', prompt: LONG_PROMPT, max_tokens: 3, temperature: 0 });
      w2 = await killOnceActive(queue, w1, config);
      const t0 = Date.now();
      await assert.rejects((async () => { for await (const _ of s) { /* none expected */ } })(), (e: SwapserveError) => e.code === 'worker_lost' && e.retryable);
      await assert.rejects(s.result, (e: SwapserveError) => e.code === 'worker_lost');
      assert.ok(Date.now() - t0 < 30_000, 'answered long before the request timeout');
      assert.equal(await (await queue.getJob(s.requestId))?.isFailed(), true);
    } finally {
      await queue.close();
      conn.disconnect();
      await client.close();
      if (w2) await stop(w2);
      await stop(w1);
    }
  });

  it('before the first token: the retry is transparent and the request completes once', async () => {
    const prefix = redis.prefix();
    const config = await writeConfig(prefix);
    const w1 = await startWorker(config, 'w1');
    const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 60_000 });
    const conn = connect(redis.url);
    const queue = new Queue(queueName('big'), { connection: conn, prefix });
    let w2: ChildProcess | null = null;
    try {
      // A long prompt: w1 spends a long prefill before its first token; it is killed as soon as it holds the job.
      const s = await client.stream({ model: 'big', prompt: LONG_PROMPT, max_tokens: 3, temperature: 0 });
      w2 = await killOnceActive(queue, w1, config);
      const indexes: number[] = [];
      for await (const t of s) indexes.push(t.index);
      const r = await s.result;
      assert.deepEqual(indexes, [0, 1, 2]);
      assert.equal(r.workerId, 'w2');
      assert.equal(r.usage.completionTokens, 3);
      // w1 wrote no token (it was killed in prefill); w2's attempt produced the whole answer.
      const events = await eventsOnStream(prefix, s.requestId);
      assert.equal(events.filter((e) => e.type === 'token' && e.attempt.startsWith('w1.')).length, 0);
      assert.equal(events.filter((e) => e.type === 'done').length, 1);
    } finally {
      await queue.close();
      conn.disconnect();
      await client.close();
      if (w2) await stop(w2);
      await stop(w1);
    }
  });
});
