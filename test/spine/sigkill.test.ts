// Durability: a worker process killed with SIGKILL mid-job. BullMQ's stalled check (or, through the gateway, the
// follower's heartbeat check) hands the job to another worker; the client gets exactly one outcome and never a
// duplicate token: a transparent retry when no token had been sent yet, else one retryable worker_lost error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Queue } from 'bullmq';
import { Client, RequestError } from '../../services/sdk/index.ts';
import { connect } from '../../services/client/queues.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { streamEventSchema, type StreamEvent } from '../../contracts/stream.ts';
import { workerOfInstance } from '../../contracts/cluster.ts';
import { parseConfig } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
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

function rawConfig(prefix: string, worker: Record<string, number>): Record<string, unknown> {
  return {
    redisUrl: redis.url, prefix, modelRoots: [dirname(modelPath)],
    budgets: { hostBytes: '256MiB', gpuBytes: '256MiB', scratchBytes: '256MiB' },
    gateway: { port: 0 },
    worker: { concurrency: 1, ...worker },
    models: [{ id: 'big', path: modelPath }],
  };
}

async function writeRaw(prefix: string, raw: Record<string, unknown>): Promise<string> {
  const file = join(dirname(modelPath), `config-${prefix.replace(/\W/g, '')}.json`);
  await writeFile(file, JSON.stringify(raw));
  return file;
}

async function writeConfig(prefix: string, maxStalledCount = 2): Promise<string> {
  return writeRaw(prefix, rawConfig(prefix, { lockDurationMs: 1000, stalledIntervalMs: 300, maxStalledCount }));
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
      assert.ok(caught instanceof RequestError, `expected a RequestError, got ${caught}`);
      assert.equal((caught as RequestError).code, 'worker_lost');
      assert.equal((caught as RequestError).retryable, true);
      await assert.rejects(s.result, (e: RequestError) => e.code === 'worker_lost');
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
      await assert.rejects((async () => { for await (const _ of s) { /* none expected */ } })(), (e: RequestError) => e.code === 'worker_lost' && e.retryable);
      await assert.rejects(s.result, (e: RequestError) => e.code === 'worker_lost');
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

/**
 * Through the gateway, over a real socket, with the DEFAULT lock (10 s) and stalled check (5 s): the follower finds
 * the lost worker by its heartbeat (issue 11: within 3 s), not by the lock's expiry (which took 12–18 s). Two
 * workers run from the start; the one holding the job is killed.
 */
describe('worker killed with SIGKILL, through the gateway (default lock and stalled interval)', () => {
  async function stack(prefix: string): Promise<{ gw: Gateway; workers: Map<string, ChildProcess>; queue: Queue; close: () => Promise<void> }> {
    const raw = rawConfig(prefix, {});
    const config = await writeRaw(prefix, raw);
    const workers = new Map<string, ChildProcess>();
    for (const id of ['g1', 'g2']) workers.set(id, await startWorker(config, id));
    const gw = await startGateway(parseConfig(raw, {}));
    const conn = connect(redis.url);
    const queue = new Queue(queueName('big'), { connection: conn, prefix });
    return {
      gw, workers, queue,
      close: async () => {
        await gw.close();
        await queue.close();
        conn.disconnect();
        for (const w of workers.values()) await stop(w);
      },
    };
  }

  /** Waits for the request's first token on its Redis stream; returns the id of the worker holding the job. */
  async function holderOnceTokenWritten(prefix: string, queue: Queue, requestId: string): Promise<string> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if ((await eventsOnStream(prefix, requestId)).some((e) => e.type === 'token')) {
        const job = await queue.getJob(requestId);
        assert.ok(job?.processedBy, 'the job records the worker process holding it');
        return workerOfInstance(job.processedBy);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('no token within 30 s');
  }

  it('streaming: a stream that sent tokens ends with worker_lost within 3 s of the kill, no token twice', { timeout: 90_000 }, async (t) => {
    const prefix = redis.prefix();
    const s = await stack(prefix);
    try {
      const res = await fetch(`${s.gw.url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'big', prompt: 'hello world', max_tokens: 2048, temperature: 1, seed: 5, stream: true }),
      });
      assert.equal(res.status, 200);
      const requestId = res.headers.get('x-request-id')!;
      const texts: string[] = [];
      let errorEvent: { error: { code: string } } | null = null;
      let killedAt = 0;
      let endedAt = 0;
      let buf = '';
      const decoder = new TextDecoder();
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(bytes, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
          const j = JSON.parse(line.slice(6));
          if (j.error) {
            errorEvent = j;
            endedAt = Date.now();
          } else texts.push(j.choices[0].text);
        }
        if (texts.length >= 1 && !killedAt) {
          const holder = workerOfInstance((await s.queue.getJob(requestId))!.processedBy!);
          s.workers.get(holder)!.kill('SIGKILL');
          killedAt = Date.now();
        }
      }
      assert.ok(killedAt > 0, 'the stream sent a token');
      assert.equal(errorEvent?.error.code, 'worker_lost');
      t.diagnostic(`worker_lost ${endedAt - killedAt} ms after the kill, ${texts.length} tokens delivered`);
      assert.ok(endedAt - killedAt < 3000, `worker_lost ${endedAt - killedAt} ms after the kill`);
      // Each token once: what the client got is a prefix of the lost attempt's tokens, in order.
      const written = (await eventsOnStream(prefix, requestId)).filter((e) => e.type === 'token');
      const lost = written[0].attempt;
      const ofLost = written.filter((e) => e.attempt === lost).map((e) => (e as { text: string }).text);
      assert.ok(texts.length <= ofLost.length && texts.length < 4000);
      assert.deepEqual(texts, ofLost.slice(0, texts.length));
    } finally {
      await s.close();
    }
  });

  it('non-streaming: a request whose worker died mid-generation completes on the other worker, whole and once', { timeout: 90_000 }, async (t) => {
    const prefix = redis.prefix();
    const s = await stack(prefix);
    try {
      const pending = fetch(`${s.gw.url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'big', prompt: 'once upon a time', max_tokens: 40, temperature: 0 }),
      });
      // The request id is only in the response: find the job in the queue.
      let requestId = '';
      while (!requestId) {
        const jobs = await s.queue.getJobs(['active', 'waiting']);
        requestId = jobs[0]?.id ?? '';
        if (!requestId) await new Promise((r) => setTimeout(r, 5));
      }
      const holder = await holderOnceTokenWritten(prefix, s.queue, requestId);
      s.workers.get(holder)!.kill('SIGKILL');
      const killedAt = Date.now();
      const res = await pending;
      assert.equal(res.status, 200);
      const body = await res.json() as { choices: { text: string }[]; usage: { completion_tokens: number } };
      assert.equal(body.usage.completion_tokens, 40);
      const events = await eventsOnStream(prefix, requestId);
      const done = events.filter((e) => e.type === 'done');
      assert.equal(done.length, 1);
      const winner = done[0].attempt;
      assert.ok(!winner.startsWith(`${holder}.`), `completed by the other worker (${winner})`);
      // The text is the winning attempt's alone (the lost attempt's tokens were dropped, none twice).
      const text = events.filter((e) => e.type === 'token' && e.attempt === winner).map((e) => (e as { text: string }).text).join('');
      assert.equal(body.choices[0].text, text);
      assert.ok(events.some((e) => e.type === 'token' && e.attempt.startsWith(`${holder}.`)), 'the lost attempt had produced tokens');
      t.diagnostic(`answered 200 ${Date.now() - killedAt} ms after the kill`);
      // Requeued by the heartbeat check, not by the lock's expiry (10 s) + stalled check (5 s).
      assert.ok(Date.now() - killedAt < 10_000, `answered ${Date.now() - killedAt} ms after the kill`);
    } finally {
      await s.close();
    }
  });
});
