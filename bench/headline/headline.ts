// `swapserve bench headline`: TTFT per serving path, end to end through the gateway and the queue, on the whole stack
// (private Redis, gateway, scheduler that scales workers from zero, one worker), with every number read from the
// traces the system records (an OTLP/HTTP JSON receiver in this process; OTEL_EXPORTER_OTLP_ENDPOINT points every
// service at it). Paths, per model and prompt length (128 and 2,048 tokens):
//   warm          the model is resident on the GPU
//   swap          the model is parked in the pinned host tier, another model is resident
//   cold, cache   the model is in no tier (dropped from host), its files are in the page cache
//   cold, disk    the same with the page cache dropped (posix_fadvise DONTNEED, verified with mincore)
//   cold, start   no worker runs (drained): the scheduler starts one, which loads from disk
// The bench only arranges state, the system decides (measure.ts). Each sample is binned by the path the system
// itself reports (swapserve.path / swapserve.cold_reason on the gateway's span), and a sample whose reported path
// differs from the one set up is counted as a mismatch.
// Floors and alternatives come from bench/headline/baselines.py (a separate process, run before the stack holds
// memory): pinned copy of the same bytes, cat / dd of the same files, transformers `.to('cuda')` from pinned CPU
// tensors + forward, `from_pretrained(device_map='cuda')` from page cache and from disk.
// `--tiny` writes three tiny models here and runs the same harness on the CPU backend (a dry run of the plumbing).
// This file wires the parts: args.ts, models.ts, span-sink.ts, stack.ts, measure.ts (the paths), report.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAddon, resolveBackend } from '../../native/ts/addon.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { startLocalRedis, type LocalRedis } from '../../services/dev/local-redis.ts';
import { isSwapserveError } from '../../contracts/errors.ts';
import { parse, USAGE, type Args } from './args.ts';
import { Measure } from './measure.ts';
import { benchModels, benchPrompts, budgetsFor, writeTinyModels, type BenchModel, type Budgets } from './models.ts';
import { renderReport, type Baseline } from './report.ts';
import { SpanSink } from './span-sink.ts';
import { PREFIX, Stack } from './stack.ts';

type Log = (line: string) => void;

/** The models (tiny ones written under `work` with --tiny), their prompts and the tier budgets. */
async function prepare(args: Args, work: string, log: Log) {
  const root = args.tiny ? join(work, 'models') : args.modelsDir!;
  if (args.tiny) {
    log('writing three tiny models (CPU backend dry run)');
    await writeTinyModels(root);
  }
  const models = benchModels(root);
  const arenas = await Promise.all(models.map(async (m) => (await openModel(m.dir)).layout.totalBytes));
  const prompts = await benchPrompts(models, args.prompts);
  for (const p of prompts) log(`prompt of ${p.n} tokens: ${p.tokens} tokens (${p.text.length} chars)`);
  const budgets = budgetsFor(arenas);
  log(`budgets: GPU ${(budgets.gpuBytes / 1e9).toFixed(2)} GB (one model), host ${(budgets.hostBytes / 1e9).toFixed(2)} GB (all three: ${(budgets.totalBytes / 1e9).toFixed(2)} GB)`);
  return { root, models, arenas, prompts, budgets };
}

/** The config file every service of the stack reads, and their environment (traces to the bench's receiver). */
function stackConfig(args: Args, work: string, root: string, models: BenchModel[], budgets: Budgets, redis: LocalRedis, sink: SpanSink) {
  const cfgFile = join(work, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({
    redisUrl: redis.url, prefix: PREFIX, modelRoots: [root], dataDir: work, gateway: { port: 0, requestTimeoutMs: 90_000 },
    worker: { concurrency: 1 },
    budgets: { hostBytes: budgets.hostBytes, gpuBytes: budgets.gpuBytes, scratchBytes: args.tiny ? '256MiB' : '6GiB' },
    models: models.map((m) => ({ id: m.id, path: m.dir, contextLength: 4096, maxTokens: 64, sloTtftMs: 60_000 })),
  }, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env, REDIS_URL: redis.url, PORT: '0',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '100',
    ...(args.tiny ? { SWAPSERVE_BACKEND: 'cpu' } : {}),
  };
  return { cfgFile, env };
}

/** Parses the arguments; on a usage error or --help prints the usage and returns the exit code (2, or 0). */
function parseOrUsage(argv: string[]): Args | number {
  try {
    return parse(argv);
  } catch (e) {
    process.stderr.write(`${isSwapserveError(e, 'usage') && e.message ? `swapserve bench headline: ${e.message}\n\n` : ''}${USAGE}`);
    return isSwapserveError(e, 'usage') && !e.message ? 0 : 2;
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseOrUsage(argv);
  if (typeof args === 'number') return args;
  const t0 = Date.now();
  const log: Log = (s) => process.stderr.write(`[headline +${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}\n`);
  const work = mkdtempSync(join(tmpdir(), 'swapserve-headline-'));
  const addon = loadAddon(args.tiny ? 'cpu' : resolveBackend());
  const { root, models, arenas, prompts, budgets } = await prepare(args, work, log);
  const baseline: Baseline = args.baseline && existsSync(args.baseline) ? JSON.parse(readFileSync(args.baseline, 'utf8')) as Baseline : {};

  const sink = new SpanSink();
  await sink.start();
  const redis = await startLocalRedis(join(work, 'redis'));
  const { cfgFile, env } = stackConfig(args, work, root, models, budgets, redis, sink);
  const stack = new Stack(cfgFile, env);
  stack.redis = redis;
  const measure = new Measure({ stack, sink, addon, log, timeLeft: () => args.deadlineS * 1000 - (Date.now() - t0) });
  if (args.tiny) measure.device = `CPU (${cpus()[0]?.model ?? 'cpu'}), tiny models`;

  let code = 0;
  try {
    await stack.start();
    log(`gateway ${stack.url}; scheduler up; no worker yet (scale from zero)`);
    await measure.all(models, prompts, args);
  } catch (e) {
    log(`FAILED: ${(e as Error).stack ?? e}`);
    code = 1;
  } finally {
    log('stopping the stack');
    await stack.stop().catch((e) => log(`stop: ${(e as Error).message}`));
    await redis.stop();
    await sink.close();
    if (args.tiny) rmSync(work, { recursive: true, force: true });
  }

  const { samples, mismatches, device } = measure;
  const date = new Date().toISOString();
  const md = renderReport({ argv, date, device, budgets, baseline, models, prompts, samples, mismatches });
  process.stdout.write(`${md}\n`);
  if (args.md) writeFileSync(args.md, `${md}\n`);
  if (args.out) writeFileSync(args.out, JSON.stringify({ date, device, budgets: { gpuBytes: budgets.gpuBytes, hostBytes: budgets.hostBytes }, models: models.map((m, i) => ({ id: m.id, bytes: m.bytes, arena: arenas[i] })), prompts, samples, mismatches, baseline }, null, 2));
  return samples.length ? code : 1;
}
