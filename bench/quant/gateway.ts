// Quantized models through the whole stack: private Redis, gateway, a scheduler that scales one worker from zero, the
// worker's runtime and engine; streamed /v1/completions requests, every number read from the traces the system
// records (the headline bench's harness: bench/headline/stack.ts, span-sink.ts, sample.ts). The GPU tier holds one
// model, the host tier all: after prep requests (a worker start, cold loads) each request to the model not resident
// is a swap, and one more to it right after is warm. The path of each sample is the one the system reports.
//   node --import tsx bench/quant/gateway.ts --models A.gguf,B.gguf [--prompt 128] [--reps 3] [--backend cuda|cpu]
//     [--md FILE (appended)]
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { startLocalRedis } from '../../services/dev/local-redis.ts';
import { postStream, sampleFrom, type Sample } from '../headline/sample.ts';
import { SpanSink } from '../headline/span-sink.ts';
import { PREFIX, Stack } from '../headline/stack.ts';

const t0 = Date.now();
const log = (s: string) => process.stderr.write(`[quant gateway +${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1] : NaN);
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '–');

export async function run(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: { models: { type: 'string' }, prompt: { type: 'string', default: '128' }, reps: { type: 'string', default: '3' }, backend: { type: 'string', default: 'cuda' }, md: { type: 'string' } },
  });
  const paths = (o.models ?? '').split(',').filter(Boolean);
  const P = Number(o.prompt), reps = Number(o.reps);
  if (paths.length < 2 || !(Number.isInteger(P) && P > 1) || !(Number.isInteger(reps) && reps >= 1)) throw new Error('give --models A,B (two or more), --prompt N > 1, --reps N >= 1');
  if (o.backend !== 'cuda' && o.backend !== 'cpu') throw new Error(`Expected cuda or cpu for --backend but received "${o.backend}"`);
  const models = await Promise.all(paths.map(async (path) => {
    const source = await openModel(path);
    return { id: basename(path).replace(/\.gguf$/, ''), path, bytes: source.layout.totalBytes, source };
  }));
  // A prompt text of exactly P tokens in the first model's tokenizer (the files share it): whole words, then one more.
  const tok = await loadTokenizer(models[0].source);
  const words = 'the cat sat on the mat and then it ran away from home'.split(' ');
  let text = '';
  for (let i = 0; tok.encode(`${text} ${words[i % words.length]}`, { addBos: true }).length <= P; i++) text = `${text}${i ? ' ' : ''}${words[i % words.length]}`;
  const promptTokens = tok.encode(text, { addBos: true }).length;
  log(`prompt: ${promptTokens} tokens (asked ${P})`);

  const sizes = models.map((m) => m.bytes);
  const largest = Math.max(...sizes), total = sizes.reduce((a, b) => a + b, 0);
  const gpuBytes = Math.min(Math.floor(largest * 1.01) + (1 << 20), total - 1);
  const work = mkdtempSync(join(tmpdir(), 'swapserve-quant-gw-'));
  const sink = new SpanSink();
  await sink.start();
  const redis = await startLocalRedis(join(work, 'redis'));
  const cfgFile = join(work, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({
    redisUrl: redis.url, prefix: PREFIX, modelRoots: [...new Set(paths.map((p) => dirname(p)))], dataDir: work,
    gateway: { port: 0, requestTimeoutMs: 120_000 }, worker: { concurrency: 1 },
    budgets: { hostBytes: total + (1 << 30), gpuBytes, scratchBytes: o.backend === 'cpu' ? '256MiB' : '6GiB' },
    models: models.map((m) => ({ id: m.id, path: m.path, contextLength: 4096, maxTokens: 64, sloTtftMs: 60_000 })),
  }, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env, REDIS_URL: redis.url, PORT: '0', OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '100',
    ...(o.backend === 'cpu' ? { SWAPSERVE_BACKEND: 'cpu' } : {}),
  };
  const stack = new Stack(cfgFile, env);
  stack.redis = redis;
  const samples: Sample[] = [];
  const send = async (m: (typeof models)[number], intended: string) => {
    const traceId = randomBytes(16).toString('hex');
    const r = await postStream(`${stack.url}/v1/completions`, { model: m.id, prompt: text, max_tokens: 2, temperature: 0, stream: true }, traceId);
    if (r.status !== 200 || !r.text.includes('[DONE]')) throw new Error(`request to ${m.id} failed: ${r.status} ${r.text.slice(0, 500)}`);
    const s = sampleFrom(await sink.complete(traceId), { model: m.id, prompt: P, promptTokens, intended, clientTtftMs: r.firstChunkMs, cachedBefore: null });
    samples.push(s);
    log(`${m.id} (${intended}): path ${s.path}, TTFT ${ms(s.ttftMs)} (client ${ms(s.clientTtftMs)}; queue ${ms(s.queueMs)}, load ${ms(s.loadMs)}, swap ${ms(s.swapMs)}${s.swapGBps ? ` at ${s.swapGBps.toFixed(1)} GB/s` : ''}, evict ${ms(s.evictMs)}, prefill ${ms(s.prefillMs)})`);
  };
  let code = 0;
  let device = '';
  try {
    await stack.start();
    log(`gateway ${stack.url}; GPU tier ${(gpuBytes / 1e9).toFixed(2)} GB (one model), host tier ${((total + (1 << 30)) / 1e9).toFixed(2)} GB`);
    // Prep: a worker start, then cold loads, until every model has been served twice (parked in the host tier).
    for (let round = 0; round < 2; round++) for (const m of models) await send(m, 'prep');
    device = (await stack.workers())[0]?.device ?? '';
    for (let r = 0; r < reps; r++) {
      for (const m of models) {
        await send(m, 'swap');
        await send(m, 'warm');
      }
    }
  } catch (e) {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    code = 1;
  } finally {
    await stack.stop().catch((e) => log(`stop: ${(e as Error).message}`));
    await redis.stop();
    await sink.close();
    rmSync(work, { recursive: true, force: true });
  }
  const cell = (id: string, path: string) => samples.filter((s) => s.model === id && s.intended === path && s.path === path);
  const mismatched = samples.filter((s) => s.intended !== 'prep' && s.intended !== s.path);
  const lines = [
    '',
    `### Through the whole stack (gateway, queue, scheduler, worker; TTFT from the traces), ${device || o.backend}, ${new Date().toISOString()}`,
    '',
    `Prompt ${promptTokens} tokens, 2 tokens asked, greedy; medians of up to ${reps} samples per cell (only samples the system reported as that path).`,
    '',
    '| model | swap TTFT | of which swap-in / prefill | swap-in GB/s | warm TTFT | samples (swap, warm) | Q4_K_M swap TTFT <= 0.12 s |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- |',
    ...models.map((m) => {
      const sw = cell(m.id, 'swap'), wa = cell(m.id, 'warm');
      const t = median(sw.map((s) => s.ttftMs));
      const q4km = /q4_k_m/i.test(m.id);
      return `| ${m.id} | ${ms(t)} | ${ms(median(sw.map((s) => s.swapMs)))} / ${ms(median(sw.map((s) => s.prefillMs)))} | ${median(sw.map((s) => s.swapGBps ?? NaN)).toFixed(1)} | ${ms(median(wa.map((s) => s.ttftMs)))} | ${sw.length}, ${wa.length} | ${q4km ? (t <= 120 ? 'yes' : 'NO') : ''} |`;
    }),
    '',
    `Samples set up as one path that the system reported as another: ${mismatched.length}${mismatched.length ? ` (${mismatched.map((s) => `${s.model} ${s.intended} -> ${s.path}`).join('; ')})` : ''}.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (o.md) appendFileSync(o.md, `${lines.join('\n')}\n`);
  return code || (samples.some((s) => s.intended === 'swap' && s.path === 'swap') ? 0 : 1);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  run(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(`${(e as Error).stack ?? e}\n`); process.exitCode = 1; });
}
