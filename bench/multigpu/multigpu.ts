// `swapserve bench multigpu` (issue 16): a host's GPUs swapping at once, through the whole stack that `swapserve up`
// starts on it (one worker per GPU, split host budgets, NUMA binding). Every number is read from the traces the system
// records; every N-GPU figure is compared with its one-GPU counterpart measured in the same run (report.ts has the bars):
//   1. swap rounds: 2N models (m-i, f-i; one file, each GPU tier holds one model, each host tier two): the m's and
//      the f's are spread over the N workers, then alternately one model is hit alone (a single swap-in) and all N
//      m's (or f's) are hit at the same moment (N swap-ins on N links) — aggregate GB/s and the slowest TTFT;
//   2. load replay (bench load's trace replay): m-0 alone on its GPU, then every m-i on its own GPU at once — goodput.
// `--tiny` runs the same harness on the CPU backend with N CPU workers (a dry run of the plumbing for CI); N = 1 on one
// GPU gives the single-link baselines.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import * as S from '../../contracts/semconv.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { startLocalRedis } from '../../services/dev/local-redis.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { probeHost } from '../../services/scheduler/host-probe.ts';
import { benchPrompts, ensureTokenizer, writeTinyModels, type BenchModel } from '../headline/models.ts';
import { postStream, sampleFrom } from '../headline/sample.ts';
import { SpanSink } from '../headline/span-sink.ts';
import { closeAgents } from '../load/client.ts';
import { runLoad, type LoadSpec, type LoadTarget } from '../load/run.ts';
import { loadTrace, tracesDir } from '../load/traces.ts';
import { renderReport, rounds, summarize, type LoadFigures, type SwapSample } from './report.ts';
import { UpStack } from './stack.ts';

export const USAGE = `usage: swapserve bench multigpu (--tiny | --model DIR) [options]
  --tiny              a tiny model written here, CPU backend, --gpus CPU workers (default 2): a dry run of the harness
  --model DIR         the model folder (e.g. bench/headline/make_models.py's llama8b); registered 2N times
  --gpus N            GPUs to use (default: every GPU nvidia-smi lists); 1 measures the single-link baselines
  --reps N            repetitions of the four swap rounds (default 3)
  --load-s S          seconds of each load replay run, 0 to skip (default 20)
  --rate R            load replay arrivals per second per GPU (default 1)
  --concurrency C     load replay as a closed loop of C streams per GPU instead (a capacity figure: goodput then
                      scales only if every GPU serves its own streams as fast as one GPU alone)
  --requests N        with --concurrency: requests per GPU (default 100)
  --max-input N       cap on replayed prompt lengths, tokens (default 1024; --tiny 64)
  --max-output N      cap on replayed output lengths, tokens (default 128; --tiny 8)
  --slo-ttft-ms MS    goodput's TTFT bound (default 2000; --tiny 60000)
  --slo-tpot-ms MS    goodput's TPOT bound (default 100; --tiny 10000)
  --deadline-s S      start no new round after S seconds (default 420)
  --out FILE          samples, rounds and the summary (JSON)
  --md FILE           the markdown tables
`;

const OPTIONS = {
  tiny: { type: 'boolean' }, model: { type: 'string' }, gpus: { type: 'string' }, reps: { type: 'string' }, 'load-s': { type: 'string' },
  rate: { type: 'string' }, concurrency: { type: 'string' }, requests: { type: 'string' }, 'max-input': { type: 'string' }, 'max-output': { type: 'string' }, 'slo-ttft-ms': { type: 'string' },
  'slo-tpot-ms': { type: 'string' }, 'deadline-s': { type: 'string' }, out: { type: 'string' }, md: { type: 'string' }, help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

function num(v: string | undefined, name: string, def: number, min: number, int = true): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min) throw new UsageError(`Expected ${int ? 'an integer' : 'a number'} >= ${min} for --${name} but received "${v}"`);
  return n;
}

interface Args {
  tiny: boolean; model: string | null; gpus: number | null; reps: number; loadS: number; rate: number; concurrency: number | null; requests: number; maxInput: number; maxOutput: number;
  sloTtftMs: number; sloTpotMs: number; deadlineS: number; out: string | null; md: string | null;
}

export function parse(argv: string[]): Args | 'help' {
  const { values: v } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  if (!v.tiny === !v.model) throw new UsageError('give --tiny or --model DIR (one of them)');
  if (v.concurrency !== undefined && v.rate !== undefined) throw new UsageError('--concurrency (a closed loop) excludes --rate (arrivals)');
  if (v.requests !== undefined && v.concurrency === undefined) throw new UsageError('--requests counts a closed loop\'s requests: give --concurrency too');
  const tiny = !!v.tiny;
  return {
    tiny, model: v.model ?? null, gpus: v.gpus === undefined ? null : num(v.gpus, 'gpus', 0, 1), reps: num(v.reps, 'reps', 3, 1),
    loadS: num(v['load-s'], 'load-s', 20, 0, false), rate: num(v.rate, 'rate', 1, 0.001, false),
    concurrency: v.concurrency === undefined ? null : num(v.concurrency, 'concurrency', 0, 1), requests: num(v.requests, 'requests', 100, 1),
    maxInput: num(v['max-input'], 'max-input', tiny ? 64 : 1024, 1), maxOutput: num(v['max-output'], 'max-output', tiny ? 8 : 128, 1),
    sloTtftMs: num(v['slo-ttft-ms'], 'slo-ttft-ms', tiny ? 60_000 : 2000, 1), sloTpotMs: num(v['slo-tpot-ms'], 'slo-tpot-ms', tiny ? 10_000 : 100, 1),
    deadlineS: num(v['deadline-s'], 'deadline-s', 420, 1), out: v.out ?? null, md: v.md ?? null,
  };
}

const ids = (n: number, p: string): string[] => Array.from({ length: n }, (_, i) => `${p}-${i}`);

export async function run(argv: string[]): Promise<number> {
  let args: Args | 'help';
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`swapserve bench multigpu: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const a = args;
  const t0 = Date.now();
  const log = (s: string) => process.stderr.write(`[multigpu +${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);
  const timeLeft = () => a.deadlineS * 1000 - (Date.now() - t0);
  const detected = a.tiny ? Infinity : probeHost().gpus.length;
  const n = a.gpus ?? (a.tiny ? 2 : detected);
  if (n < 1 || n > detected) {
    process.stderr.write(`swapserve bench multigpu: ${a.tiny ? '' : `${detected} GPU(s) visible (nvidia-smi); `}--gpus ${n} cannot run\n`);
    return 2;
  }

  const work = mkdtempSync(join(tmpdir(), 'swapserve-multigpu-'));
  let dir = a.model!;
  if (a.tiny) {
    log('writing tiny models (CPU backend dry run)');
    await writeTinyModels(join(work, 'models'));
    dir = join(work, 'models', 'llama8b');
  }
  ensureTokenizer(dir);
  const source = await openModel(dir);
  const arena = source.layout.totalBytes;
  const tokenizer = await loadTokenizer(source);
  const [prompt] = await benchPrompts([{ dir } as BenchModel], [128]);
  const context = Math.min(source.config.maxPositions, 4096);
  const ms = ids(n, 'm');
  const fs = ids(n, 'f');

  const sink = new SpanSink();
  await sink.start();
  const redis = await startLocalRedis(join(work, 'redis'));
  const port = await freePort();
  const prefix = '{multigpu}';
  const cfgFile = join(work, 'config.json');
  // Each GPU tier holds one model (not two), each host tier two (its m and its f).
  const gpuBytes = Math.floor(arena * 1.01) + 2 ** 20;
  writeFileSync(cfgFile, JSON.stringify({
    redisUrl: redis.url, prefix, modelRoots: [dirname(dir)], dataDir: work,
    gateway: { port, requestTimeoutMs: 180_000 }, worker: { concurrency: 64 },
    budgets: { gpuBytes, hostBytes: 2 * arena + (a.tiny ? 16 * 2 ** 20 : 2 ** 30), scratchBytes: a.tiny ? '256MiB' : '8GiB' },
    ...(a.tiny ? {} : { host: { gpus: n } }),
    models: [...ms, ...fs].map((id) => ({ id, path: dir, contextLength: context, maxTokens: Math.max(64, a.maxOutput), sloTtftMs: 60_000, maxQueued: 100_000 })),
    log: { level: 'warn' },
  }, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env, REDIS_URL: redis.url, PORT: String(port),
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '100',
    ...(a.tiny ? { SWAPSERVE_BACKEND: 'cpu' } : {}),
  };
  const stack = new UpStack({ cfgFile, redisUrl: redis.url, prefix, port, env, cpuWorkers: a.tiny ? n : null, log });
  const samples: SwapSample[] = [];
  const load: { single: LoadFigures | null; all: LoadFigures | null } = { single: null, all: null };
  let device = '';
  let code = 0;

  /** Hits `models` at the same moment (streamed, max_tokens 2); each request's sample from its trace. */
  const hit = async (models: string[], round: number, kind: 'single' | 'all'): Promise<SwapSample[]> => {
    const out = await Promise.all(models.map(async (model) => {
      const traceId = randomBytes(16).toString('hex');
      const r = await postStream(`${stack.url}/v1/completions`, { model, prompt: prompt.text, max_tokens: 2, temperature: 0, stream: true }, traceId);
      if (r.status !== 200 || !r.text.includes('[DONE]')) throw new Error(`request to ${model} failed: ${r.status} ${r.text.slice(0, 400)}`);
      const spans = await sink.complete(traceId);
      const s = sampleFrom(spans, { model, prompt: prompt.n, promptTokens: prompt.tokens, intended: 'swap', clientTtftMs: r.firstChunkMs, cachedBefore: null });
      const sw = spans.find((x) => x.name === S.SPAN.swapIn && typeof x.attrs[S.ATTR_MOVE_BYTES] === 'number');
      return {
        round, kind, model, worker: await sink.servedBy(traceId), path: s.path, ttftMs: s.ttftMs,
        swap: sw ? { startMs: sw.startMs, endMs: sw.endMs, bytes: sw.attrs[S.ATTR_MOVE_BYTES] as number } : null,
      } satisfies SwapSample;
    }));
    log(`round ${round} (${kind}): ${out.map((s) => `${s.model}@${s.worker} ${s.path} TTFT ${s.ttftMs.toFixed(1)} ms${s.swap ? ` swap ${(s.swap.bytes / 1e6 / (s.swap.endMs - s.swap.startMs)).toFixed(2)} GB/s` : ''}`).join('; ')}`);
    return out;
  };

  const replay = async (models: string[]): Promise<LoadFigures> => {
    const trace = existsSync(join(tracesDir(), 'azure-llm-2023')) ? loadTrace('azure-conv').requests : [{ atS: 0, inputTokens: 512, outputTokens: 64 }];
    const reports = await Promise.all(models.map(async (model, i) => {
      const t: LoadTarget = { url: stack.url, model, endpoint: 'completions', tokenizer, context };
      const spec: LoadSpec = {
        lengths: trace, durationS: a.loadS, seed: 1 + i,
        ...(a.concurrency === null ? { rate: a.rate } : { concurrency: a.concurrency, maxRequests: a.requests }), maxInput: a.maxInput, maxOutput: a.maxOutput,
        sloTtftMs: a.sloTtftMs, sloTpotMs: a.sloTpotMs, ignoreEos: true, temperature: 0, timeoutS: 120,
      };
      return (await runLoad(t, spec)).report;
    }));
    const sum = (f: (r: (typeof reports)[number]) => number) => reports.reduce((x, r) => x + f(r), 0);
    const fig: LoadFigures = {
      gpus: models.length, goodputRps: sum((r) => r.goodput.requestsPerS), throughputRps: sum((r) => r.throughput.requestsPerS),
      ok: sum((r) => r.ok), failed: sum((r) => r.failed), lost: sum((r) => r.lost), ttftP99Ms: Math.max(...reports.map((r) => r.ttftMs?.p99 ?? NaN)),
    };
    log(`load replay on ${models.length} GPU(s): goodput ${fig.goodputRps.toFixed(2)} req/s, ${fig.ok} ok / ${fig.failed} failed / ${fig.lost} lost`);
    return fig;
  };

  try {
    log(`model ${dir}: arena ${(arena / 1e9).toFixed(3)} GB; ${n} ${a.tiny ? 'CPU workers' : 'GPUs'}; GPU tier ${(gpuBytes / 1e9).toFixed(3)} GB (one model)`);
    const ws = await stack.start(n);
    device = a.tiny ? `CPU (${cpus()[0]?.model ?? 'cpu'}), ${n} CPU workers, tiny model` : `${n} x ${ws[0]?.device ?? 'GPU'}`;
    log(`stack up: ${ws.map((w) => `${w.workerId} on ${w.device} (host ${(w.budgets.host / 1e9).toFixed(2)} GB)`).join(', ')}`);
    // Spread: the m's, then the f's, each set hit at once (cold loads; each f evicts its worker's m to the host tier).
    await hit(ms, 0, 'all');
    await hit(fs, 0, 'all');
    const parked = await stack.waitWorkers((w) => ms.every((m) => w.some((x) => x.models[m]?.residency === 'host')), 'every m parked in a host tier');
    // The single rounds alternate m-0 and the f that shares its worker (whichever f the scheduler put there).
    const w0 = parked.find((x) => x.models[ms[0]]?.residency === 'host')!;
    const f0 = fs.find((f) => w0.models[f]?.residency === 'gpu');
    if (!f0) throw new Error(`no f model on ${w0.workerId}'s GPU tier beside m-0: ${JSON.stringify(w0.models)}`);
    log(`spread: ${parked.map((x) => `${x.workerId}: ${Object.entries(x.models).map(([m, y]) => `${m} ${y.residency}`).join(', ')}`).join('; ')}`);
    let round = 1;
    for (let rep = 0; rep < a.reps && timeLeft() > (a.loadS * 2 + 30) * 1000; rep++) {
      samples.push(...await hit([ms[0]], round++, 'single'));
      samples.push(...await hit([f0], round++, 'single'));
      samples.push(...await hit(ms, round++, 'all'));
      samples.push(...await hit(fs, round++, 'all'));
    }
    if ((a.loadS > 0 || a.concurrency !== null) && timeLeft() > a.loadS * 2000) {
      await hit(ms, round++, 'all'); // every m on its own GPU (not a sample of the swap figures)
      load.single = await replay([ms[0]]);
      load.all = n > 1 ? await replay(ms) : load.single;
    }
  } catch (e) {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    code = 1;
  } finally {
    log('stopping the stack');
    await stack.stop().catch((e: unknown) => log(`stop: ${(e as Error).message}`));
    await redis.stop();
    await sink.close();
    closeAgents();
    if (a.tiny) rmSync(work, { recursive: true, force: true });
  }
  const summary = summarize(n, samples, load);
  const rs = rounds(samples);
  const date = new Date().toISOString();
  const md = renderReport({ date, device, argv, modelBytes: arena, summary, rounds: rs });
  process.stdout.write(`${md}\n`);
  if (a.md) writeFileSync(a.md, `${md}\n`);
  if (a.out) writeFileSync(a.out, JSON.stringify({ date, device, gpus: n, modelBytes: arena, summary, rounds: rs, samples, placement: stack.out.split('\n').filter((l) => /worker-\d+:|pinned host|NUMA/.test(l)) }, null, 2));
  return samples.length ? code : 1;
}
