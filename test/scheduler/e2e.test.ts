// The scheduler driving a real worker (CPU backend, stories260K, --no-self-load: it serves only what the scheduler
// assigns) behind the real gateway, through the openai client: cold, warm, another model takes the one-model
// GPU tier (the first is evicted, not dropped), then the first comes back by swap.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { settingsFromConfig } from '../../services/cli/scheduler.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import type { WorkerCommand } from '../../contracts/cluster.ts';
import type { Config } from '../../services/config/config.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { twoModelConfig } from '../spine/stack.ts';
import { needsData } from '../helpers/requires.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

let redis: TestRedis;
let config: Config;
let worker: SwapWorker;
let gateway: Gateway;
let scheduler: Scheduler;
const sent: WorkerCommand[] = [];
const logs: string[] = [];

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  config = twoModelConfig(redis);
  worker = new SwapWorker({ config, backend: new NativeBackend(config, { backend: 'cpu', threads: 1 }), consumeAll: false, workerId: 'cpu-0' });
  await worker.start();
  gateway = await startGateway(config);
  let leading: () => void = () => undefined;
  const isLeader = new Promise<void>((r) => (leading = r));
  scheduler = new Scheduler({
    redisUrl: config.redisUrl!, prefix: config.prefix, models: await settingsFromConfig(config, 4),
    provider: new LocalProcessProvider(), policy: { maxWorkers: 0, minWorkers: 1 }, leaseMs: 2000, tickMs: 200, pollMs: 200,
    log: (m) => {
      logs.push(m);
      if (m.includes('leader, epoch')) leading();
    },
  });
  // Record what the leader sends (the real Redis effects still send it).
  const effects = (scheduler as unknown as { effects: { send: (w: string, c: WorkerCommand) => Promise<void> } | null });
  await scheduler.start();
  const real = effects.effects!;
  const send = real.send.bind(real);
  real.send = (w, c) => {
    sent.push(c);
    return send(w, c);
  };
  await isLeader;
});
after(async () => {
  await scheduler?.close();
  await gateway?.close();
  await worker?.close();
  await redis?.stop();
});

type Figures = { path: string; cold_reason: string | null };
/** Paths the worker reported for the first request to story-a and to story-b (each waited for a disk load). */
const firstPaths: string[] = [];

describe('scheduler + real worker + gateway', { skip: SKIP }, () => {
  it('places, keeps warm, evicts for another model, swaps back', { timeout: 60_000 }, async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const ask = async (model: string): Promise<Figures> => {
      const r = await client.completions.create({ model, prompt: '', max_tokens: 6, temperature: 0 });
      const body = r as typeof r & { swapserve: Figures };
      assert.match(body.choices[0].text, /^ ?Once upon a time/);
      return body.swapserve;
    };
    const kinds = (): string[] => sent.map((c) => `${c.kind}${'model' in c ? ` ${c.model}` : ''}`);
    try {
      firstPaths.push((await ask('story-a')).path);
      assert.deepEqual(kinds(), ['load story-a', 'swap_in story-a', 'consume story-a'], 'a disk load that parks a host copy');
      assert.equal((await ask('story-a')).path, 'warm');
      assert.deepEqual(kinds().length, 3, 'a warm request needs no command');

      firstPaths.push((await ask('story-b')).path);
      assert.deepEqual(kinds().slice(3), ['stop_consume story-a', 'evict story-a', 'load story-b', 'swap_in story-b', 'consume story-b']);

      const back = await ask('story-a');
      assert.equal(back.path, 'swap', 'story-a was parked in host RAM: it comes back by swap, not from disk');
      assert.deepEqual(kinds().slice(8), ['stop_consume story-b', 'evict story-b', 'swap_in story-a', 'consume story-a']);
      assert.ok(sent.every((c) => c.epoch === scheduler.epoch));
    } catch (e) {
      throw new Error(`${(e as Error).message}\ncommands: ${JSON.stringify(kinds())}\nscheduler log:\n${logs.join('\n')}`);
    }
  });

  // The worker classifies a job by how its model last reached the GPU: a scheduler's `load` then `swap_in` after
  // the request arrived means the request waited for a disk read.
  it('a request that waited for a scheduler-issued load + swap_in is reported cold', () => {
    assert.deepEqual(firstPaths, ['cold', 'cold']);
  });
});
