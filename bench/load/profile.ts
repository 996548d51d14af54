// `swapserve profile`: what a fleet planner needs to know about one GPU type (or this CPU), measured end to end:
//   - tier moves: disk → host (page cache dropped, and warm), host → GPU (swap), on the native runtime;
//   - engine step times: prefill by prompt length, decode step by batch size (and the decode roofline where the
//     device bandwidth is known);
//   - worker start: `swapserve worker` process start → ready;
//   - per request-size bucket (input × output tokens): the highest Poisson rate whose p99 TTFT and TPOT meet the
//     SLO, found by `bench load --sweep` through a real stack (local Redis, gateway and worker processes).
// Writes <out>/<device>.json (everything) and <out>/<device>.calibration.json (the measured calibration file
// services/fleet/calibration.ts loads: `swapserve simulate --calibration`, `swapserve plan`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { startLocalRedis } from '../../services/dev/local-redis.ts';
import { fitEngine, loadCalibration, parseCalibrationFile, type CalibrationFile, type ModelShape } from '../../services/fleet/calibration.ts';
import { isSwapserveError } from '../../contracts/errors.ts';
import { stopChild } from '../headline/stack.ts';
import { closeAgents } from './client.ts';
import { PromptBuilder } from './prompts.ts';
import { runLoad, sweep, type LoadTarget, type SweepResult } from './run.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const BIN = join(ROOT, 'bin', 'swapserve.js');

const USAGE = `usage: swapserve profile --model-path PATH [options]

Measures one device for the fleet planner and writes <out>/<device>.json plus <out>/<device>.calibration.json.
  --model-path PATH    model folder or .gguf to profile with (required)
  --device NAME        label for the device (default: the backend's device name); names the files
  --out DIR            where to write (default bench/results/profile)
  --backend B          auto | cpu | cuda (default auto)
  --host-bytes B --gpu-bytes B --scratch-bytes B   worker budgets (defaults: 2× the model, 1.5× the model, 1GiB)
  --context N          served context (default min(maxPositions, 4096))
  --inputs LIST        bucket prompt lengths (default 128,1024,4096)   --outputs LIST  (default 32,256)
  --batches LIST       decode batch sizes (default 1,2,4,8,16,32,64,128,256)
  --prefill LIST       prefill lengths (default 128,512,2048)
  --slo-ttft-ms MS     (default 2000)   --slo-tpot-ms MS (default 100)
  --duration-s S       each sweep run (default 10)   --sweep-steps N (default 3)   --start-rate R (default 1)
  --max-rate R         stop doubling the rate here (default 256)
  --deadline-s S       no sweep run starts S seconds after the start (the files are still written, the cut buckets
                       noted; a run started before it ends within --duration-s + max(60, 6 × duration) s)
  --datasheet-bw B/s --datasheet-flops F/s --datasheet-link B/s   vendor numbers (known for H100/H200)
  --threads N          CPU backend threads (default 0 = all)
  --reps N             repetitions of each tier move (default 3)
  --quick              CPU smoke run: tiny buckets, batches 1,2,4, short sweeps
`;

const OPTIONS = {
  'model-path': { type: 'string' }, device: { type: 'string' }, out: { type: 'string' }, backend: { type: 'string' },
  'host-bytes': { type: 'string' }, 'gpu-bytes': { type: 'string' }, 'scratch-bytes': { type: 'string' }, context: { type: 'string' },
  inputs: { type: 'string' }, outputs: { type: 'string' }, batches: { type: 'string' }, prefill: { type: 'string' },
  'slo-ttft-ms': { type: 'string' }, 'slo-tpot-ms': { type: 'string' }, 'duration-s': { type: 'string' }, 'sweep-steps': { type: 'string' },
  'start-rate': { type: 'string' }, 'max-rate': { type: 'string' }, 'deadline-s': { type: 'string' }, 'datasheet-bw': { type: 'string' }, 'datasheet-flops': { type: 'string' },
  'datasheet-link': { type: 'string' }, threads: { type: 'string' }, reps: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  // Internal: the child process that measures moves and engine steps writes them here as JSON (see measureInChild).
  'native-out': { type: 'string' },
} as const;

class UsageError extends Error {}

/** Vendor datasheet numbers of the GPUs we profile on (dense bf16, HBM, PCIe Gen5 x16). */
const DATASHEETS: { match: RegExp; bw: number; flops: number; link: number; source: string }[] = [
  { match: /H200/i, bw: 4.8e12, flops: 989e12, link: 63e9, source: 'NVIDIA H200 datasheet (SXM): 4.8 TB/s HBM3e, BF16 989 TFLOPS dense; PCIe Gen5 x16' },
  { match: /H100/i, bw: 3.35e12, flops: 989e12, link: 63e9, source: 'NVIDIA H100 datasheet (SXM): 3.35 TB/s HBM3, BF16 989 TFLOPS dense; PCIe Gen5 x16' },
];

export interface Profile {
  kind: 'swapserve-profile';
  v: 1;
  device: string;
  backend: 'cpu' | 'cuda';
  date: string;
  commit: string;
  command: string;
  model: ModelShape & { path: string; context: number };
  slo: { ttftMs: number; tpotMs: number };
  moves: { diskBytesPerS: number; pageCacheBytesPerS: number; swapBytesPerS: number; bytes: number; pageCacheDropped: boolean; reps: number };
  workerStartS: number;
  steps: {
    prefill: { tokens: number; s: number }[];
    decode: { batch: number; contextTokens: number; stepS: number; tokensPerS: number; rooflineTokensPerS: number | null }[];
  };
  buckets: { inputTokens: number; outputTokens: number; maxRate: number; capped: boolean; cut?: boolean; points: { rate: number; ttftP50Ms: number | null; ttftP99Ms: number | null; tpotP99Ms: number | null; failed: number; lost: number; meets: boolean }[] }[];
  /** The calibration file written beside it, and whether its engine fit held. */
  calibration: { file: string; fit: unknown; error: string | null };
  notes: string[];
}

const list = (v: string | undefined, def: number[], name: string): number[] => {
  if (v === undefined) return def;
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < 1)) throw new UsageError(`--${name} must be a comma-separated list of positive integers, got ${JSON.stringify(v)}`);
  return xs;
};
const numArg = (v: string | undefined, name: string, def: number): number => {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number > 0, got ${JSON.stringify(v)}`);
  return n;
};
function bytesArg(v: string | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(v.trim());
  if (!m) throw new UsageError(`--${name} must be a size like 24GB or 512MiB, got ${JSON.stringify(v)}`);
  const k = m[3]?.toLowerCase() === 'ib' ? 1024 : 1000;
  return Math.round(Number(m[1]) * k ** ' kmgt'.indexOf(m[2].toLowerCase() || ' '));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const slug = (s: string) => s.toLowerCase().replace(/nvidia\s*/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'device';

/** The model's shape as the fleet tools see it (KV at 2 bytes on CUDA, 4 on the CPU backend). */
export function shapeOf(source: ModelSource, backend: 'cpu' | 'cuda'): ModelShape {
  const c = source.config;
  const params = source.layout.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  return {
    name: source.path.split('/').filter(Boolean).pop() ?? 'model', params, weightBytes: source.layout.totalBytes, layers: c.numLayers,
    kvBytesPerToken: 2 * c.numLayers * c.numKvHeads * c.headDim * (backend === 'cuda' ? 2 : 4),
  };
}

async function collect(it: AsyncIterable<GenerateEvent>): Promise<Extract<GenerateEvent, { type: 'done' }>> {
  return (await collectTimed(it)).done;
}

/** A generation's done event and the time (performance.now(), ms) each of its tokens arrived. */
async function collectTimed(it: AsyncIterable<GenerateEvent>): Promise<{ done: Extract<GenerateEvent, { type: 'done' }>; times: number[] }> {
  const times: number[] = [];
  for await (const e of it) {
    if (e.type === 'token') times.push(performance.now());
    else if (e.type === 'done') return { done: e, times };
  }
  throw new Error('generation ended without a done event');
}

/**
 * The steady decode step of a batch (s), or null when too few steps were shared: per sequence, the mean gap between
 * its tokens inside the window where every sequence was decoding (from the last first token to the first last one,
 * so no prompt of the batch was still being fed), and the median of those. A batch whose prompts take more than one
 * prefill pass (128 x 128 tokens at an 8,192-token chunk) starts decoding some sequences while others' prompts still
 * go in; their decode time then holds a prefill pass (H100, 2026-12-08: batch 128 read 14.2 ms a step that way).
 */
export function sharedDecodeStepS(runs: { times: number[] }[], minSteps = 8): number | null {
  if (runs.length === 0 || runs.some((r) => r.times.length < 2)) return null;
  const from = Math.max(...runs.map((r) => r.times[0])), to = Math.min(...runs.map((r) => r.times[r.times.length - 1]));
  const gaps: number[] = [];
  for (const r of runs) {
    const t = r.times.filter((x) => x >= from && x <= to);
    if (t.length - 1 < minSteps) return null;
    gaps.push((t[t.length - 1] - t[0]) / (t.length - 1));
  }
  return median(gaps) / 1000;
}

/** Tier moves and engine steps on the native runtime, in this process (before the stack starts). */
async function measureNative(o: Opts, source: ModelSource, tok: Tokenizer, log: (s: string) => void, notes: string[]) {
  const rt = Runtime.open({ backend: o.backend, hostBudgetBytes: o.hostBytes, gpuBudgetBytes: o.gpuBytes, scratchBudgetBytes: o.scratchBytes });
  const backend = rt.backend;
  const device = o.device ?? (backend === 'cpu' ? `cpu-${(await import('node:os')).cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown'}` : rt.deviceName);
  // Known GPUs: their vendor numbers (the roofline and the calibration's datasheet section).
  if (!o.datasheet && backend === 'cuda') {
    const d = DATASHEETS.find((x) => x.match.test(rt.deviceName) || x.match.test(device));
    if (d) o.datasheet = { bw: d.bw, flops: d.flops, link: d.link, source: d.source };
  }
  rt.pinHostPool();
  await rt.hostReady;
  const id = 'profile';
  rt.register(id, source.layout);
  const files = [...new Set(source.layout.segments.map((s) => s.file))];
  const addon = rt.addon as unknown as { dropPageCache?: (p: string) => void };
  const reps = o.reps;
  const disk: number[] = [], cache: number[] = [], swap: number[] = [];
  let dropped = typeof addon.dropPageCache === 'function';
  for (let i = 0; i < reps; i++) {
    if (dropped) {
      try { for (const f of files) addon.dropPageCache!(f); } catch { dropped = false; }
    }
    const cold = await rt.load(id);
    (dropped ? disk : cache).push(cold.bytes / (cold.wallMs / 1000));
    await rt.drop(id);
    const warm = await rt.load(id); // the files are in the page cache now
    cache.push(warm.bytes / (warm.wallMs / 1000));
    const s = await rt.swapIn(id);
    swap.push(s.bytes / (s.wallMs / 1000));
    await rt.evict(id);
    await rt.drop(id);
  }
  log(`moves: disk ${(median(disk.length ? disk : cache) / 1e9).toFixed(2)} GB/s${dropped ? '' : ' (page cache NOT dropped)'}, page cache ${(median(cache) / 1e9).toFixed(2)} GB/s, swap ${(median(swap) / 1e9).toFixed(2)} GB/s`);

  // Engine steps on the resident model.
  await rt.load(id);
  await rt.swapIn(id);
  const maxBatch = Math.max(...o.batches);
  const ctxTokens = Math.min(128, Math.floor(o.context / 4));
  // A prefill pass wide enough that a decode batch's prompts go in within a few steps (its decode steps are then
  // decode-only, not shared with the others' prefill chunks).
  const prefillChunk = Math.min(Math.max(512, maxBatch * ctxTokens), 8192);
  const engine = await Engine.create(rt, id, source, tok, { maxBatch, maxContext: o.context, prefillChunk, ...(backend === 'cpu' ? { threads: o.threads } : {}) });
  const pb = new PromptBuilder(tok, 'completions', Math.min(Math.max(...o.prefill), o.context - 2), 7);
  const req = (tokens: number, out: number, seed: number) => {
    const ids = tok.encode(pb.build(tokens, seed).text, { addBos: true }).slice(0, Math.max(1, tokens));
    return { prompt: ids, maxTokens: out, temperature: 0, topP: 1, topK: 0, ignoreEos: true };
  };
  const prefill: Profile['steps']['prefill'] = [];
  await collect(engine.generate(req(16, 2, 1))); // first use (kernels, heuristics)
  // One prompt at a time (three sent together share one pass: its time is not the length's), after a discarded
  // first pass of the length (a new pass width's first library product picks and loads its kernel: on an H100,
  // 2026-12-07, three concurrent 128-token prompts measured 57 ms against 47 ms for 512 tokens).
  for (const n of o.prefill.filter((n) => n < o.context - 1)) {
    await collect(engine.generate(req(n, 1, 9)));
    const ms: number[] = [];
    for (const k of [0, 1, 2]) ms.push((await collect(engine.generate(req(n, 1, 10 + k)))).prefillMs);
    prefill.push({ tokens: n, s: median(ms) / 1000 });
  }
  log(`prefill: ${prefill.map((p) => `${p.tokens} tok ${(p.s * 1000).toFixed(1)} ms`).join(', ')}`);
  const steps = o.quick ? 8 : 48;
  const decode: Profile['steps']['decode'] = [];
  const bw = o.datasheet?.bw ?? null;
  const shape = shapeOf(source, backend);
  for (const b of o.batches) {
    let runs: Awaited<ReturnType<typeof collectTimed>>[];
    try {
      // A discarded short run at this batch first: the batch's first decode steps make its CUDA graph and pick its
      // products' kernels, which are not the steady step this measures.
      await Promise.all(Array.from({ length: b }, (_, i) => collect(engine.generate(req(ctxTokens, 4, 1000 + i)))));
      runs = await Promise.all(Array.from({ length: b }, (_, i) => collectTimed(engine.generate(req(ctxTokens, steps + 1, 100 + i)))));
    } catch (e) {
      notes.push(`decode at batch ${b} failed (${(e as Error).message}); larger batches skipped`);
      log(`decode batch ${b} failed: ${(e as Error).message}`);
      break;
    }
    // The steps every sequence shared (sharedDecodeStepS); failing that (a short run), per sequence its decode time
    // over its decode steps, the median sequence's rate.
    const stepS = sharedDecodeStepS(runs, Math.min(8, steps - 1)) ?? median(runs.map(({ done: d }) => d.decodeMs / Math.max(1, d.completionTokens - 1))) / 1000;
    const meanCtx = ctxTokens + steps / 2;
    const roof = bw ? b / ((shape.weightBytes + b * meanCtx * shape.kvBytesPerToken) / bw) : null;
    decode.push({ batch: b, contextTokens: meanCtx, stepS, tokensPerS: b / stepS, rooflineTokensPerS: roof });
    log(`decode batch ${b}: ${(stepS * 1000).toFixed(2)} ms/step, ${(b / stepS).toFixed(0)} tok/s${roof ? ` (roofline ${roof.toFixed(0)} tok/s, ${(100 * b / stepS / roof).toFixed(0)}%)` : ''}`);
  }
  await engine.close();
  await rt.close();
  return {
    backend, device, decode, prefill,
    moves: { diskBytesPerS: median(disk.length ? disk : cache), pageCacheBytesPerS: median(cache), swapBytesPerS: median(swap), bytes: source.layout.totalBytes, pageCacheDropped: dropped, reps },
  };
}

interface Opts {
  modelPath: string; device?: string; out: string; backend: 'auto' | 'cpu' | 'cuda';
  hostBytes: number; gpuBytes: number; scratchBytes: number; context: number; threads: number;
  inputs: number[]; outputs: number[]; batches: number[]; prefill: number[];
  sloTtftMs: number; sloTpotMs: number; durationS: number; sweepSteps: number; startRate: number; maxRate: number;
  /** Epoch ms after which no sweep run starts. */
  deadline?: number;
  datasheet: { bw: number; flops: number; link: number; source: string } | null; quick: boolean; reps: number;
}

/** A child `swapserve` process; resolves once a stdout line matches `ready`. */
async function child(args: string[], ready: RegExp, env: NodeJS.ProcessEnv, log: (s: string) => void): Promise<{ p: ChildProcess; line: string }> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  p.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.length > 20000) err = err.slice(-10000); });
  const line = await new Promise<string>((res, rej) => {
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const l = out.split('\n').find((x) => ready.test(x));
      if (l) res(l);
      if (out.length > 20000) out = out.slice(-10000);
    });
    p.once('exit', (c) => rej(new Error(`${args[0]} exited (${c}) before ready:\n${out.slice(-2000)}\n${err.slice(-2000)}`)));
  });
  p.stdout!.removeAllListeners('data');
  p.stdout!.resume();
  log(line.slice(0, 200));
  return { p, line };
}

type NativeResult = Awaited<ReturnType<typeof measureNative>>;

/**
 * measureNative in a child `swapserve profile --native-out FILE` (same arguments): its runtime, engine and CUDA context
 * end with that process, so the stack's worker started next gets the whole GPU whatever still held memory. In-process,
 * on an H100 (2026-12-07, bench/results/load/2026-12-07-h100-16ee34a/profile.log) cudaMalloc refused the worker's
 * budgets right after the measurement had closed its engine and runtime.
 */
async function measureInChild(argv: readonly string[], o: Opts, log: (s: string) => void, notes: string[]): Promise<NativeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-profile-native-'));
  const file = join(dir, 'native.json');
  try {
    const p = spawn(process.execPath, [BIN, 'profile', ...argv, '--native-out', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => {
      const t = d.toString();
      for (const l of t.split('\n')) if (l.startsWith('[profile] ')) log(l.slice('[profile] '.length));
      err = (err + t).slice(-4000);
    });
    const [code, signal] = (await once(p, 'exit')) as [number | null, NodeJS.Signals | null];
    if (code !== 0) throw new Error(`the measuring process exited (${signal ?? code}):\n${err}`);
    const r = JSON.parse(readFileSync(file, 'utf8')) as { nat: NativeResult; notes: string[]; datasheet: Opts['datasheet'] };
    notes.push(...r.notes);
    if (!o.datasheet && r.datasheet) o.datasheet = r.datasheet;
    return r.nat;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function profile(o: Opts, log: (s: string) => void, command: string, argv?: readonly string[]): Promise<Profile> {
  const source = await openModel(o.modelPath);
  const tok = await loadTokenizer(source);
  const notes: string[] = [];
  const nat = argv ? await measureInChild(argv, o, log, notes) : await measureNative(o, source, tok, log, notes);
  const shape = shapeOf(source, nat.backend);
  if (!nat.moves.pageCacheDropped) notes.push('the page cache could not be dropped: diskBytesPerS is the page-cache rate');

  // The stack: a private Redis, the gateway and one worker (process start → ready is the worker start time).
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-profile-'));
  const redis = await startLocalRedis(join(dir, 'redis'));
  let gateway: ChildProcess | undefined;
  let worker: ChildProcess | undefined;
  const buckets: Profile['buckets'] = [];
  let workerStartS = 0;
  try {
    const port = await freePort();
    const cfgFile = join(dir, 'config.json');
    const modelPath = resolve(o.modelPath);
    writeFileSync(cfgFile, JSON.stringify({
      redisUrl: redis.url, prefix: '{profile}', modelRoots: [resolve(modelPath, '..')],
      gateway: { port, host: '127.0.0.1' },
      budgets: { hostBytes: o.hostBytes, gpuBytes: o.gpuBytes, scratchBytes: o.scratchBytes },
      models: [{ id: 'profile', path: modelPath, contextLength: o.context, keepWarm: true, maxQueued: 100_000, maxTokens: o.context }],
      log: { level: 'warn' },
    }));
    gateway = (await child(['gateway', '--config', cfgFile], /listening on/, {}, log)).p;
    const t0 = performance.now();
    const w = await child(['worker', '--config', cfgFile, '--backend', nat.backend, ...(nat.backend === 'cpu' ? ['--threads', String(o.threads)] : [])], /^worker \S+ ready/, {}, log);
    worker = w.p;
    workerStartS = (performance.now() - t0) / 1000;
    const target: LoadTarget = { url: `http://127.0.0.1:${port}`, model: 'profile', endpoint: 'completions', tokenizer: tok, context: o.context };
    for (const inTok of o.inputs) {
      for (const outTok of o.outputs) {
        if (inTok + outTok > o.context) {
          notes.push(`bucket ${inTok}×${outTok} skipped: beyond the ${o.context}-token context`);
          continue;
        }
        if (o.deadline !== undefined && Date.now() > o.deadline) {
          notes.push(`bucket ${inTok}×${outTok} skipped: the --deadline-s had passed`);
          continue;
        }
        log(`bucket ${inTok} in × ${outTok} out`);
        // A discarded closed-loop run first (the model resident, the bucket's pass widths and decode batches used
        // once), so the search's first rate measures the steady state and not the stack's first requests: on an
        // H100 (2026-12-07) the first rate, 2 req/s, gave a p99 TTFT of 1,832 ms and the next, 4 req/s, 72 ms.
        const warm = await runLoad(target, {
          lengths: [{ atS: 0, inputTokens: inTok, outputTokens: Math.min(outTok, 16) }], durationS: o.durationS, seed: 1,
          concurrency: o.quick ? 2 : 16, maxRequests: o.quick ? 4 : 48, sloTtftMs: o.sloTtftMs, sloTpotMs: o.sloTpotMs,
          ignoreEos: true, temperature: 0, timeoutS: Math.max(60, o.durationS * 6), statusPollMs: 0,
        });
        if (warm.report.failed || warm.report.lost) {
          notes.push(`bucket ${inTok}×${outTok}: the warm-up run had ${warm.report.failed} failed and ${warm.report.lost} lost requests`);
        }
        const res: SweepResult = await sweep(target, {
          lengths: [{ atS: 0, inputTokens: inTok, outputTokens: outTok }], durationS: o.durationS, seed: inTok * 31 + outTok,
          sloTtftMs: o.sloTtftMs, sloTpotMs: o.sloTpotMs, ignoreEos: true, temperature: 0, timeoutS: Math.max(60, o.durationS * 6), statusPollMs: 0,
          maxRequests: Math.max(2, Math.ceil(o.maxRate * o.durationS)),
        }, { startRate: o.startRate, maxRate: o.maxRate, steps: o.sweepSteps, minRate: o.startRate / 8, log: (s) => log(`  ${s}`), ...(o.deadline !== undefined ? { deadline: o.deadline } : {}) });
        if (res.cut) notes.push(`bucket ${inTok}×${outTok}: the --deadline-s cut its search: ${res.maxRate.toFixed(3)} req/s is a lower bound`);
        buckets.push({
          inputTokens: inTok, outputTokens: outTok, maxRate: res.maxRate, capped: res.capped, ...(res.cut ? { cut: true } : {}),
          points: res.points.map((p) => ({ rate: p.rate, ttftP50Ms: p.report.ttftMs?.p50 ?? null, ttftP99Ms: p.report.ttftMs?.p99 ?? null, tpotP99Ms: p.report.tpotMs?.p99 ?? null, failed: p.report.failed, lost: p.report.lost, meets: p.meets })),
        });
      }
    }
  } finally {
    closeAgents();
    await stopChild(worker);
    await stopChild(gateway);
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  // The calibration file the fleet tools load (measured engine section).
  const name = slug(nat.device);
  mkdirSync(o.out, { recursive: true });
  const calFile = join(o.out, `${name}.calibration.json`);
  const b1 = nat.decode.find((d) => d.batch === 1) ?? nat.decode[0];
  const effBw = (shape.weightBytes + b1.batch * b1.contextTokens * shape.kvBytesPerToken) / b1.stepS;
  const sheet = o.datasheet ?? {
    bw: effBw, link: nat.moves.swapBytesPerS,
    flops: Math.max(...nat.prefill.map((p) => (2 * shape.params * p.tokens) / p.s)),
    source: `no datasheet for ${nat.device}: measured stand-ins (bandwidth = bytes a batch-1 decode step reads / its time; link = the swap rate; FLOP/s = the fastest prefill's)`,
  };
  const cal: CalibrationFile = parseCalibrationFile({
    gpu: nat.device,
    source: `measured by \`swapserve profile\` on ${nat.device} (${nat.backend} backend), ${new Date().toISOString().slice(0, 10)}, model ${shape.name}`,
    gpuMemoryBytes: o.gpuBytes + o.scratchBytes,
    swapBytesPerS: nat.moves.swapBytesPerS, diskBytesPerS: nat.moves.diskBytesPerS, pageCacheBytesPerS: nat.moves.pageCacheBytesPerS, workerStartS,
    sources: {
      gpuMemoryBytes: 'the profile run\'s GPU weights + scratch budgets (not the card\'s memory: set it from nvidia-smi for planning)',
      swapBytesPerS: `measured: pinned host -> GPU swap of ${shape.name} (${(nat.moves.bytes / 1e9).toFixed(3)} GB), median of ${nat.moves.reps}`,
      diskBytesPerS: nat.moves.pageCacheDropped ? 'measured: disk -> pinned host, page cache dropped (posix_fadvise DONTNEED)' : 'page cache could not be dropped: the page-cache rate',
      pageCacheBytesPerS: 'measured: disk -> pinned host, files in the page cache',
      workerStartS: 'measured: `swapserve worker` process start -> ready line',
    },
    engine: {
      kind: 'measured', memoryBandwidthBytesPerS: effBw,
      bandwidthSource: 'effective: bytes a batch-1 decode step reads (weights + KV) / its measured time',
      datasheet: { memoryBandwidthBytesPerS: sheet.bw, bf16FlopsPerS: sheet.flops, hostLinkBytesPerS: sheet.link, source: sheet.source },
      referenceModel: shape,
      decode: nat.decode.map((d) => ({ batch: d.batch, contextTokens: d.contextTokens, stepS: d.stepS, source: 'measured: engine decode step' })),
      prefill: nat.prefill.map((p) => ({ tokens: p.tokens, s: p.s, source: 'measured: engine prefill' })),
    },
  }, calFile);
  writeFileSync(calFile, `${JSON.stringify(cal, null, 2)}\n`);
  let fit: unknown = null;
  let fitError: string | null = null;
  try {
    fit = fitEngine(cal.engine as Parameters<typeof fitEngine>[0], calFile);
    loadCalibration(calFile);
  } catch (e) {
    fitError = (e as Error).message;
    notes.push(`the calibration's engine fit failed (${fitError}): the planner cannot use this file until the points are re-measured`);
  }
  let commit = 'unknown';
  const g = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (g.status === 0) commit = g.stdout.trim();
  const prof: Profile = {
    kind: 'swapserve-profile', v: 1, device: nat.device, backend: nat.backend, date: new Date().toISOString(), commit, command,
    model: { ...shape, path: o.modelPath, context: o.context },
    slo: { ttftMs: o.sloTtftMs, tpotMs: o.sloTpotMs },
    moves: nat.moves, workerStartS,
    steps: { prefill: nat.prefill, decode: nat.decode },
    buckets,
    calibration: { file: calFile, fit, error: fitError },
    notes,
  };
  const file = join(o.out, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(prof, null, 2)}\n`);
  log(`wrote ${file} and ${calFile}`);
  return prof;
}

export function profileTable(p: Profile): string {
  const f = (x: number | null, d = 1) => (x === null ? '-' : x.toFixed(d));
  return [
    `### profile: ${p.device} (${p.backend}), model ${p.model.name}, ${p.date.slice(0, 10)}, commit ${p.commit}`, '',
    `swap ${(p.moves.swapBytesPerS / 1e9).toFixed(2)} GB/s, disk ${(p.moves.diskBytesPerS / 1e9).toFixed(2)} GB/s${p.moves.pageCacheDropped ? '' : ' (page cache not dropped)'}, page cache ${(p.moves.pageCacheBytesPerS / 1e9).toFixed(2)} GB/s, worker start ${p.workerStartS.toFixed(2)} s`, '',
    '| batch | decode step (ms) | tokens/s | roofline tokens/s | % of roofline |', '| --- | --- | --- | --- | --- |',
    ...p.steps.decode.map((d) => `| ${d.batch} | ${f(d.stepS * 1000, 2)} | ${f(d.tokensPerS, 0)} | ${f(d.rooflineTokensPerS, 0)} | ${d.rooflineTokensPerS ? f((100 * d.tokensPerS) / d.rooflineTokensPerS, 0) : '-'} |`),
    '', '| prefill tokens | ms |', '| --- | --- |', ...p.steps.prefill.map((x) => `| ${x.tokens} | ${f(x.s * 1000, 1)} |`),
    '', `| input × output tokens | max rate inside SLO (TTFT p99 <= ${p.slo.ttftMs} ms, TPOT p99 <= ${p.slo.tpotMs} ms) | p99 TTFT at that rate (ms) |`, '| --- | --- | --- |',
    ...p.buckets.map((b) => {
      const at = b.points.find((x) => x.rate === b.maxRate);
      return `| ${b.inputTokens} × ${b.outputTokens} | ${b.capped || b.cut ? '>= ' : ''}${b.maxRate.toFixed(3)} req/s${b.capped ? ' (search cap)' : b.cut ? ' (cut by --deadline-s)' : ''} | ${f(at?.ttftP99Ms ?? null, 0)} |`;
    }),
    ...p.notes.map((n) => `\nnote: ${n}`), '',
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    process.stderr.write(`swapserve profile: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) { process.stdout.write(USAGE); return 0; }
  try {
    const modelPath = v['model-path'] as string | undefined;
    if (!modelPath) throw new UsageError('--model-path is required');
    const backend = (v.backend as string | undefined) ?? 'auto';
    if (!['auto', 'cpu', 'cuda'].includes(backend)) throw new UsageError(`--backend must be auto, cpu or cuda, got ${JSON.stringify(backend)}`);
    const quick = v.quick === true;
    for (const k of ['inputs', 'outputs', 'batches', 'prefill'] as const) list(v[k] as string | undefined, [1], k);
    const source = await openModel(modelPath);
    const w = source.layout.totalBytes;
    const context = v.context !== undefined ? numArg(v.context as string, 'context', 0) : Math.min(source.config.maxPositions, 4096);
    if (!Number.isInteger(context) || context > source.config.maxPositions) throw new UsageError(`--context must be an integer <= the model's ${source.config.maxPositions} positions`);
    const bw = v['datasheet-bw'], fl = v['datasheet-flops'], li = v['datasheet-link'];
    const o: Opts = {
      modelPath, ...(v.device ? { device: v.device as string } : {}), out: (v.out as string | undefined) ?? join(ROOT, 'bench', 'results', 'profile'),
      backend: backend as Opts['backend'],
      hostBytes: bytesArg(v['host-bytes'] as string, 'host-bytes', Math.max(2 * w, 16 * 2 ** 20)),
      gpuBytes: bytesArg(v['gpu-bytes'] as string, 'gpu-bytes', Math.max(Math.ceil(1.5 * w), 8 * 2 ** 20)),
      scratchBytes: bytesArg(v['scratch-bytes'] as string, 'scratch-bytes', 2 ** 30),
      context, threads: v.threads !== undefined ? Number(v.threads) : 0,
      inputs: list(v.inputs as string, quick ? [16, 64] : [128, 1024, 4096], 'inputs'),
      outputs: list(v.outputs as string, quick ? [8] : [32, 256], 'outputs'),
      batches: list(v.batches as string, quick ? [1, 2, 4] : [1, 2, 4, 8, 16, 32, 64, 128, 256], 'batches'),
      prefill: list(v.prefill as string, quick ? [16, 64] : [128, 512, 2048], 'prefill'),
      sloTtftMs: numArg(v['slo-ttft-ms'] as string, 'slo-ttft-ms', 2000), sloTpotMs: numArg(v['slo-tpot-ms'] as string, 'slo-tpot-ms', 100),
      durationS: numArg(v['duration-s'] as string, 'duration-s', quick ? 1.5 : 10), sweepSteps: numArg(v['sweep-steps'] as string, 'sweep-steps', quick ? 1 : 3),
      startRate: numArg(v['start-rate'] as string, 'start-rate', quick ? 4 : 1), maxRate: numArg(v['max-rate'] as string, 'max-rate', quick ? 16 : 256),
      datasheet: null, quick, reps: numArg(v.reps as string, 'reps', quick ? 2 : 3),
      ...(v['deadline-s'] !== undefined ? { deadline: Date.now() + 1000 * numArg(v['deadline-s'] as string, 'deadline-s', 0) } : {}),
    };
    if (bw || fl || li) {
      if (!(bw && fl && li)) throw new UsageError('--datasheet-bw, --datasheet-flops and --datasheet-link go together');
      o.datasheet = { bw: numArg(bw as string, 'datasheet-bw', 0), flops: numArg(fl as string, 'datasheet-flops', 0), link: numArg(li as string, 'datasheet-link', 0), source: 'given on the command line' };
    }
    const log = (s: string) => process.stderr.write(`[profile] ${s}\n`);
    const nativeOut = v['native-out'] as string | undefined;
    if (nativeOut) {  // the child of measureInChild: only the in-process measurement, as JSON
      const notes: string[] = [];
      const nat = await measureNative(o, source, await loadTokenizer(source), log, notes);
      writeFileSync(nativeOut, JSON.stringify({ nat, notes, datasheet: o.datasheet }));
      return 0;
    }
    const p = await profile(o, log, `swapserve profile ${argv.join(' ')}`, argv);
    process.stdout.write(profileTable(p));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`swapserve profile: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (isSwapserveError(e)) { // a model file that cannot be read, a bad config, no redis-server
      process.stderr.write(`swapserve profile: ${e.message} (${e.code})\n`);
      return 2;
    }
    throw e;
  }
}
