// Issue 16: on a host with several GPUs the scheduler spreads concurrent demand over the workers instead of queueing
// it behind one, and moves on different workers run at the same time. Three CPU workers (one "GPU" tier each, room
// for one model), the real scheduler and gateway over a real Redis, six stories260K models. Each worker's next move
// is held at its start (native test hook): the requests that arrive together must all have a move in flight on three
// distinct workers at once — a policy that serialised them would never show a second one while the first is held.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { settingsFromConfig } from '../../services/cli/scheduler.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import { holdNextMove } from '../../native/ts/testing.ts';
import { DATA_MODELS } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';

const SKIP = needsData();
const WORKERS = 3;
const FIRST = ['story-a', 'story-b', 'story-c'];
const SECOND = ['story-d', 'story-e', 'story-f'];

let redis: TestRedis;
let config: Config;
let conn: RedisClient;
let gateway: Gateway;
let scheduler: Scheduler;
const workers: { worker: SwapWorker; backend: NativeBackend }[] = [];
const logs: string[] = [];

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  config = parseConfig({
    prefix: redis.prefix(), modelRoots: [DATA_MODELS],
    // Each worker's GPU tier holds one model, its host tier all six.
    budgets: { hostBytes: '16MiB', gpuBytes: '1.5MiB', scratchBytes: '64MiB' },
    gateway: { port: 0, keepAliveMs: 100 }, worker: { concurrency: 2, heartbeatMs: 200 },
    models: [...FIRST, ...SECOND].map((id) => ({ id, path: 'stories260K/stories260K.gguf' })),
  }, { REDIS_URL: redis.url });
  conn = connect(redis.url);
  for (let i = 0; i < WORKERS; i++) {
    const backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
    const worker = new SwapWorker({ config, backend, consumeAll: false, workerId: `gpu-${i}` });
    await worker.start();
    workers.push({ worker, backend });
  }
  gateway = await startGateway(config);
  let leading: () => void = () => undefined;
  const isLeader = new Promise<void>((r) => (leading = r));
  scheduler = new Scheduler({
    redisUrl: config.redisUrl!, prefix: config.prefix, models: await settingsFromConfig(config, 4),
    provider: new LocalProcessProvider(), policy: { maxWorkers: 0, minWorkers: WORKERS }, leaseMs: 2000, tickMs: 100, pollMs: 100,
    log: (m) => {
      logs.push(m);
      if (m.includes('leader, epoch')) leading();
    },
  });
  await scheduler.start();
  await isLeader;
});
after(async () => {
  await scheduler?.close();
  await gateway?.close();
  for (const w of workers) await w.worker.close();
  conn?.disconnect();
  await redis?.stop();
});

async function states(): Promise<WorkerState[]> {
  const k = clusterKeys(config.prefix);
  const ids = await conn.zrange(k.workers(), '0', '-1');
  const raw = await Promise.all(ids.map((id) => conn.get(k.workerState(id))));
  return raw.flatMap((r) => (r ? [parseWorkerState(r)] : []));
}

async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}: ${JSON.stringify((await states()).map((s) => [s.workerId, s.models]))}\n${logs.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One completion; resolves with the path the system reported. */
async function ask(model: string): Promise<string> {
  const res = await fetch(`${gateway.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: 3, temperature: 0 }),
  });
  const body = await res.json() as { swapserve?: { path: string }; error?: unknown };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.swapserve!.path;
}

/** Which worker holds each model in `residency` (model -> worker ids). */
function holders(ss: WorkerState[], residency: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const s of ss) for (const [id, x] of Object.entries(s.models)) if (residency.includes(x.residency)) m.set(id, [...(m.get(id) ?? []), s.workerId]);
  return m;
}

/**
 * Holds every worker's next move, sends one request per model at the same moment, waits until every model has a move
 * in flight (`inFlight` residency) and checks they sit on distinct workers; then releases the moves. Resolves with the
 * requests' paths and where each model ended up.
 */
async function together(models: string[], inFlight: string): Promise<{ paths: string[]; onGpu: Map<string, string[]> }> {
  const releases = workers.map((w) => holdNextMove(w.backend.runtimeForTest));
  let released = false;
  const release = () => {
    if (!released) for (const r of releases) r();
    released = true;
  };
  try {
    const answers = Promise.all(models.map((m) => ask(m)));
    const moving = await until(`a ${inFlight} move of each of ${models.join(', ')} at once`, 20_000, async () => {
      const h = holders(await states(), [inFlight]);
      return models.every((m) => h.has(m)) ? h : null;
    });
    const where = models.map((m) => moving.get(m)!);
    assert.ok(where.every((w) => w.length === 1), `each model moves on one worker: ${JSON.stringify(where)}`);
    assert.equal(new Set(where.flat()).size, models.length, `the ${models.length} moves, all in flight at once, are on distinct workers: ${JSON.stringify(where)}`);
    release();
    const paths = await answers;
    const onGpu = holders(await until('every model on a GPU tier', 10_000, async () => {
      const ss = await states();
      return models.every((m) => holders(ss, ['gpu']).has(m)) ? ss : null;
    }), ['gpu']);
    return { paths, onGpu };
  } finally {
    release();
  }
}

describe('several workers: demand spread, moves concurrent (CPU backend)', { skip: SKIP }, () => {
  it('three models hit at once load on three workers at the same time', { timeout: 60_000 }, async () => {
    await until('three workers registered', 10_000, async () => (await states()).length === WORKERS);
    const { paths, onGpu } = await together(FIRST, 'loading');
    assert.deepEqual(paths, ['cold', 'cold', 'cold']);
    assert.equal(new Set(FIRST.map((m) => onGpu.get(m)![0])).size, WORKERS, 'served from three workers');
  });

  it('then, parked in host RAM, three models swap in on their three workers at the same time', { timeout: 60_000 }, async () => {
    // Three other models take the GPU tiers (a, b, c are evicted to their workers' host pools)...
    assert.deepEqual(await Promise.all(SECOND.map((m) => ask(m))), ['cold', 'cold', 'cold']);
    const parked = await until('a, b, c parked in host RAM', 10_000, async () => {
      const h = holders(await states(), ['host']);
      return FIRST.every((m) => h.has(m)) ? h : null;
    });
    // ...and a, b, c hit together come back by swap, each on the worker holding its host copy, all three in flight at once.
    const { paths, onGpu } = await together(FIRST, 'swapping-in');
    assert.deepEqual(paths, ['swap', 'swap', 'swap']);
    for (const m of FIRST) assert.deepEqual(onGpu.get(m), parked.get(m), `${m} swapped in where it was parked`);
  });
});
