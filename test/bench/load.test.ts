// `bench load` end to end on the CPU backend: a real Redis, the gateway and a worker (in this process, so the test
// can read the engine's KV stats), stories260K, streamed HTTP requests in the OpenAI wire format.
//  - 64 concurrent streams: 0 failed, 0 lost, and every greedy text equals the same request run alone;
//  - 2,000 requests: RSS and KV-block use flat, nothing left held by the worker;
//  - a burst larger than the worker's capacity waits (in the queue / the engine) and completes.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { closeAgents, stream } from '../../bench/load/client.ts';
import { runLoad, sweep, type LoadSpec, type LoadTarget } from '../../bench/load/run.ts';
import { loadTrace } from '../../bench/load/traces.ts';
import { table } from '../../bench/load/load.ts';
import { Engine } from '../../native/ts/engine.ts';
import type { EngineStats } from '../../services/worker/admission.ts';
import { DATA_MODELS, STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';

const MODEL = 'story';
/** Whether this build's engine reports KV capacity (the paged KV cache); without it, admission holds one batch. */
const HAS_STATS = typeof (Engine.prototype as { stats?: unknown }).stats === 'function';
const MiB = 1024 * 1024;

describe('bench load (CPU, stories260K, real gateway + worker)', { skip: needsData(), timeout: 900_000 }, () => {
  let redis: TestRedis;
  let config: Config;
  let backend: NativeBackend;
  let worker: SwapWorker;
  let gateway: Gateway;
  let t: LoadTarget;
  const base = (): Omit<LoadSpec, 'lengths'> => ({
    durationS: 60, seed: 3, sloTtftMs: 60_000, sloTpotMs: 10_000, ignoreEos: true, temperature: 0, timeoutS: 120, statusPollMs: 200,
  });
  let conv: LoadSpec['lengths'];

  before(async () => {
    redis = await startRedis();
    config = parseConfig({
      prefix: redis.prefix(), modelRoots: [DATA_MODELS], gateway: { port: 0 },
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '256MiB' },
      worker: { concurrency: 32 },
      models: [{ id: MODEL, path: 'stories260K/stories260K.gguf' }],
      log: { level: 'warn' },
    }, { REDIS_URL: redis.url });
    backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
    worker = new SwapWorker({ config, backend });
    await worker.start();
    gateway = await startGateway(config);
    const source = await openModel(STORIES260K_GGUF);
    t = { url: gateway.url, model: MODEL, endpoint: 'chat', tokenizer: await loadTokenizer(source), context: Math.min(source.config.maxPositions, 4096) };
    conv = loadTrace('azure-conv').requests;
  });

  after(async () => {
    closeAgents();
    await gateway?.close();
    await worker?.close();
    await redis?.stop();
  });

  it('sweep past its deadline: the first run only, the result marked cut (a lower bound)', async () => {
    const res = await sweep(t, { ...base(), durationS: 1, lengths: conv, maxInput: 48, maxOutput: 4 }, { startRate: 2, steps: 3, deadline: Date.now() });
    assert.equal(res.points.length, 1);
    assert.equal(res.points[0].rate, 2);
    assert.equal(res.cut, true);
    assert.equal(res.capped, false);
    assert.equal(res.maxRate, res.points[0].meets ? 2 : 0);
  });

  it('64 concurrent streams: 0 failed, 0 lost; each greedy text equals the request run alone', async () => {
    const texts = new Map<number, { prompt: string; text: string; maxTokens: number }>();
    const { report } = await runLoad(t, {
      ...base(), lengths: conv, concurrency: 64, maxRequests: 64, maxInput: 96, maxOutput: 24,
      onResult: (r) => { texts.set(r.index, { prompt: r.promptText, text: r.text, maxTokens: r.outputTokens }); },
    });
    process.stderr.write(table(report, '64 streams'));
    assert.equal(report.failed, 0, JSON.stringify(report.errors));
    assert.equal(report.lost, 0, JSON.stringify(report.errors));
    assert.equal(report.ok, 64);
    assert.ok(report.ttftMs && report.tpotMs, 'percentiles reported');
    assert.ok(report.memory && report.memory.gpuPeakBytes > 0, 'memory in use read from the status endpoint');
    assert.equal(texts.size, 64);
    // The same request alone (nothing else in flight): the batched greedy text must be identical.
    for (const [i, x] of texts) {
      const alone = await stream(t.url, { model: MODEL, endpoint: 'chat', text: x.prompt, maxTokens: x.maxTokens, ignoreEos: true, temperature: 0 }, 60_000);
      assert.equal(alone.outcome, 'ok');
      assert.equal(alone.text, x.text, `request ${i}: batched text differs from the same request alone`);
    }
  });

  it('2,000 requests leave RSS and KV-block use flat, and nothing held by the worker', async () => {
    const statsOf = () => backend.capacity('story')?.stats ?? null;
    const tiny = { ...base(), lengths: conv, concurrency: 32, maxInput: 16, maxOutput: 3, statusPollMs: 0 };
    /** Memory after a full collection: RSS (native leaks show here) and the JS heap. */
    const gc = (() => { setFlagsFromString('--expose-gc'); return runInNewContext('gc') as () => void; })();
    const mem = () => { gc(); gc(); const m = process.memoryUsage(); return { rss: m.rss, heap: m.heapUsed }; };
    // Warm-up (allocator pools, the engine, JIT), then two halves of 1,000: the second must not grow like a leak.
    const warm = await runLoad(t, { ...tiny, maxRequests: 200, seed: 11 });
    assert.equal(warm.report.failed + warm.report.lost, 0, JSON.stringify(warm.report.errors));
    const m0 = mem();
    const kv0 = statsOf();
    let ok = 0;
    for (const seed of [12, 13]) {
      const { report } = await runLoad(t, { ...tiny, maxRequests: 1000, seed });
      assert.equal(report.ok, 1000, JSON.stringify(report.errors));
      ok += report.ok;
      if (seed === 13) process.stderr.write(table(report, 'requests 1,001-2,000'));
    }
    const m1 = mem();
    const kv1 = statsOf();
    process.stderr.write(`after warm-up -> after 2,000: RSS ${(m0.rss / MiB).toFixed(1)} -> ${(m1.rss / MiB).toFixed(1)} MiB, JS heap ${(m0.heap / MiB).toFixed(1)} -> ${(m1.heap / MiB).toFixed(1)} MiB; KV ${JSON.stringify(kv0)} -> ${JSON.stringify(kv1)}\n`);
    assert.equal(ok, 2000);
    // A leak of one stories260K KV cache per sequence (≥ 0.6 MiB at 256 tokens) would be > 1 GiB over 2,000; a leak
    // of a few KiB of JS per request (a map entry, a listener) would show in the collected heap.
    assert.ok(m1.rss - m0.rss < 48 * MiB, `RSS grew by ${((m1.rss - m0.rss) / MiB).toFixed(1)} MiB over 2,000 requests`);
    assert.ok(m1.heap - m0.heap < 8 * MiB, `the JS heap grew by ${((m1.heap - m0.heap) / MiB).toFixed(1)} MiB over 2,000 requests`);
    if (HAS_STATS) {
      assert.ok(kv0 && kv1);
      assert.equal(kv1.active + kv1.waiting, 0, 'no sequence left in the engine');
      assert.equal(kv1.blocksFree, kv1.blocksTotal, 'every KV block free once idle');
      assert.equal(kv1.blocksTotal, kv0.blocksTotal);
    }
    // Every job's admission slot was given back; the tier manager holds no active job. (A client has its last token
    // before the worker's job is moved to completed, so give that a moment.)
    const w = worker as unknown as { admission: { total(): number } };
    for (let i = 0; i < 200 && (w.admission.total() !== 0 || worker.state().models[MODEL].activeJobs !== 0); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(w.admission.total(), 0);
    assert.equal(worker.state().models[MODEL].activeJobs, 0);
  });
});

describe('bench load: a burst larger than the capacity waits and completes', { skip: needsData(), timeout: 600_000 }, () => {
  let redis: TestRedis;
  let backend: NativeBackend;
  let worker: SwapWorker;
  let gateway: Gateway;
  let t: LoadTarget;

  before(async () => {
    redis = await startRedis();
    // With KV stats: a small scratch budget (the KV cache holds a few sequences) and a high cap, so the KV cache is
    // the limit; without: a cap of 4 (one batch of the contiguous-KV engine) is.
    const config = parseConfig({
      prefix: redis.prefix(), modelRoots: [DATA_MODELS], gateway: { port: 0 },
      budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: HAS_STATS ? '6MiB' : '64MiB' },
      worker: { concurrency: HAS_STATS ? 64 : 4 },
      models: [{ id: MODEL, path: 'stories260K/stories260K.gguf', contextLength: 256 }],
      log: { level: 'warn' },
    }, { REDIS_URL: redis.url });
    backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
    worker = new SwapWorker({ config, backend });
    await worker.start();
    gateway = await startGateway(config);
    const source = await openModel(STORIES260K_GGUF);
    t = { url: gateway.url, model: MODEL, endpoint: 'completions', tokenizer: await loadTokenizer(source), context: 256 };
  });

  after(async () => {
    closeAgents();
    await gateway?.close();
    await worker?.close();
    await redis?.stop();
  });

  it('48 requests at once: none fails, the worker never holds more than it can admit', async () => {
    let peakHeld = 0;
    let peakActive = 0;
    let minFree = Infinity;
    const w = worker as unknown as { admission: { total(): number } };
    const watch = setInterval(() => {
      peakHeld = Math.max(peakHeld, w.admission.total());
      const s: EngineStats | null = backend.capacity(MODEL)?.stats ?? null;
      if (s) { peakActive = Math.max(peakActive, s.active); minFree = Math.min(minFree, s.blocksFree); }
    }, 2);
    // Every request at t ≈ 0 (a Poisson burst: 48 arrivals within ~10 ms).
    const { report } = await runLoad(t, {
      lengths: [{ atS: 0, inputTokens: 100, outputTokens: 48 }], durationS: 0.01, rate: 5000, maxRequests: 48, seed: 5,
      sloTtftMs: 60_000, sloTpotMs: 10_000, ignoreEos: true, temperature: 0, timeoutS: 180, statusPollMs: 0,
    }).finally(() => clearInterval(watch));
    process.stderr.write(table(report, 'burst'));
    process.stderr.write(`peak held ${peakHeld}, peak active ${peakActive}, min free blocks ${minFree}\n`);
    assert.equal(report.requests, 48);
    assert.equal(report.ok, 48, JSON.stringify(report.errors));
    if (HAS_STATS) {
      assert.ok(peakActive < 48, `the KV cache held all ${peakActive} sequences at once: the burst did not exceed it (make the budget smaller)`);
      assert.ok(minFree >= 0);
    } else {
      assert.ok(peakHeld <= 4, `the worker held ${peakHeld} jobs with a cap of 4`);
    }
  });
});
