// `swapserve bench swap [--model DIR] [--size 1g] [--reps 3] [--baseline hf.json] [--json] [--out FILE]`:
// times every tier move on this machine and compares each, in the same run, with its floor (a plain pinned
// cudaMemcpyAsync of the same bytes, `cat` of the same files, page cache verified cold/warm with mincore) and,
// given --baseline (bench/swap/hf_baseline.py's output from the same machine), with what a transformers
// user gets. Progress goes to stderr; the table (or JSON) to stdout.
// `--resident 0,25,50,75` (with --model) measures the partial-residency curve instead (bench/swap/partial.ts): swap
// TTFT at `--prompt-tokens` (128) against the resident fraction, beside the copy floor of the bytes moved.
import { spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { progress } from '../../services/dev/progress.ts';
import { performance } from 'node:perf_hooks';

import { Runtime, type MoveResult } from '../../native/ts/runtime.ts';
import type { WeightLayout } from '../../native/ts/types.ts';
import { planModel, randomModel } from './plan.ts';
import { runPartial } from './partial.ts';

interface Args { model?: string; size: number; reps: number; baseline?: string; json: boolean; out?: string; backend: 'auto' | 'cpu' | 'cuda'; readThreads?: number; stagingBytes?: number; resident?: number[]; promptTokens: number }

function parseFractions(s: string): number[] {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x) || x < 0 || x > 100)) throw new Error(`Expected percentages in [0, 100] like 0,25,50,75 for --resident but received ${s}`);
  return xs.map((x) => x / 100);
}

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(s);
  if (!m) throw new Error(`Expected a size like 512m or 2g for --size but received ${s}`);
  return Math.round(Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g']);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { size: 0, reps: 3, json: false, backend: 'auto', promptTokens: 128 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--model') a.model = v();
    else if (k === '--size') a.size = parseSize(v());
    else if (k === '--reps') a.reps = Math.max(1, Number(v()) | 0);
    else if (k === '--baseline') a.baseline = v();
    else if (k === '--json') a.json = true;
    else if (k === '--out') a.out = v();
    else if (k === '--backend') a.backend = v() as Args['backend'];
    else if (k === '--read-threads') a.readThreads = Number(v());
    else if (k === '--staging') a.stagingBytes = parseSize(v());
    else if (k === '--resident') a.resident = parseFractions(v());
    else if (k === '--prompt-tokens') {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 2 || n > 8192) throw new Error(`Expected an integer in [2, 8192] for --prompt-tokens but received ${n}`);
      a.promptTokens = n;
    } else throw new Error(`unknown option ${k} (options: --model DIR, --size 1g, --reps 3, --baseline hf.json, --json, --out FILE, --backend auto|cpu|cuda, --read-threads N, --staging 512m, --resident 0,25,50,75, --prompt-tokens 128)`);
  }
  if (a.resident && !a.model) throw new Error('--resident needs --model DIR (a model the engine runs)');
  if (a.resident && (a.baseline || a.readThreads || a.stagingBytes || a.size)) throw new Error('--resident takes only --model, --reps, --prompt-tokens, --json, --out and --backend');
  if (!a.resident && a.promptTokens !== 128 && argv.includes('--prompt-tokens')) throw new Error('--prompt-tokens applies only with --resident');
  return a;
}

const log = (msg: string) => process.stderr.write(`[bench swap] ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const gb = (bytes: number, ms: number) => bytes / (ms * 1e6);

function filesOf(layout: WeightLayout): string[] {
  return [...new Set(layout.segments.map((s) => s.file))];
}

interface Row { what: string; ours: string; reference: string; ratio: string; target: string; ok: boolean | null }

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  if (args.resident && args.model) {
    const r = await runPartial({ model: args.model, fractions: args.resident, reps: args.reps, promptTokens: args.promptTokens, backend: args.backend });
    if (args.out) writeFileSync(args.out, JSON.stringify(r.results, null, 2) + '\n');
    process.stdout.write(args.json ? JSON.stringify(r.results, null, 2) + '\n' : r.table);
    if (!r.ok) log('CHECKSUM MISMATCH: a swap after a partial evict left other GPU bytes than the full swap');
    return r.ok ? 0 : 1;
  }
  let layout: WeightLayout;
  let planner = 'random file';
  let cleanup = () => {};
  const probe = Runtime.open({ backend: args.backend, hostBudgetBytes: 0, gpuBudgetBytes: 0, scratchBudgetBytes: 0, stagingBytes: 1 << 20, readThreads: 1 });
  const backend = probe.backend;
  await probe.close();
  if (args.model) {
    ({ layout, planner } = await planModel(args.model));
  } else {
    const size = args.size || (backend === 'cuda' ? 4 * 1024 ** 3 : 256 * 1024 ** 2);
    log(`writing a ${(size / 1024 ** 3).toFixed(2)} GiB random model file`);
    ({ layout, cleanup } = randomModel(size));
  }
  const files = filesOf(layout);
  const total = layout.totalBytes;
  const segBytes = layout.segments.reduce((n, s) => n + s.bytes, 0);
  log(`${(total / 1e9).toFixed(2)} GB arena, ${layout.groups.length} groups, ${layout.segments.length} segments in ${files.length} file(s) (${planner})`);

  const t0 = performance.now();
  const rt = Runtime.open({
    backend: args.backend, hostBudgetBytes: total + (1 << 20), gpuBudgetBytes: 2 * total + (1 << 20), scratchBudgetBytes: 0,
    ...(args.readThreads ? { readThreads: args.readThreads } : {}), ...(args.stagingBytes ? { stagingBytes: args.stagingBytes } : {}),
  });
  const addon = rt.addon;
  const results: Record<string, unknown> = { device: rt.deviceName, backend: rt.backend, date: new Date().toISOString(), readThreads: args.readThreads ?? 'default', stagingBytes: args.stagingBytes ?? 'default', bytes: total, segmentBytes: segBytes, groups: layout.groups.length, files: files.length, planner, reps: args.reps };
  try {
    await rt.hostReady;
    results.pinMs = performance.now() - t0;
    log(`host pool (${(total / 1024 ** 3).toFixed(2)} GiB) + staging pinned in ${(results.pinMs as number).toFixed(0)} ms, in the background of open()`);
    rt.register('A', layout);
    rt.register('B', layout);

    const cached = () => Math.min(...files.map((f) => addon.cachedFraction(f)));
    const dropCache = () => {
      for (const f of files) addon.dropPageCache(f);
      return Math.max(...files.map((f) => addon.cachedFraction(f)));
    };
    // cat / dd are timed inside the child shell: forking this process (15+ GiB pinned, a CUDA context) cost ~7 s on
    // the H200 machine, which a timer around spawnSync would wrongly charge to cat.
    const inChild = (cmd: string): number => {
      const script = `s=$(date +%s%N); ${cmd}; e=$(date +%s%N); echo $((e - s))`;
      const r = spawnSync('sh', ['-c', script, 'sh', ...files], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
      const ns = Number(r.stdout.trim().split('\n').at(-1));
      if (r.status !== 0 || !Number.isFinite(ns)) throw new Error(`${cmd} failed`);
      return ns / 1e6;
    };
    const cat = () => inChild('cat "$@" > /dev/null');
    const dd = () => inChild('for f in "$@"; do dd if="$f" of=/dev/null bs=64M 2>/dev/null || exit 1; done');
    const timed = async (fn: () => Promise<MoveResult>) => fn();
    // ms from the call to group 1 (embeddings + layer 0) landing: when an engine could start layer 0.
    const firstLayer = async (fn: (o: { onGroup: (g: number) => void }) => Promise<MoveResult>) => {
      const t = performance.now();
      let at = NaN;
      const r = await fn({ onGroup: (g) => { if (g === 1) at = performance.now() - t; } });
      return { r, firstLayerMs: at };
    };

    // Cold: page cache dropped (and checked) before each.
    const coldLeft1 = dropCache();
    const catCold = cat();
    log(`cat, cold (cached before: ${(coldLeft1 * 100).toFixed(1)}%): ${catCold.toFixed(0)} ms`);
    const coldLeft3 = dropCache();
    const ddCold = dd();
    log(`dd bs=64M, cold (cached before: ${(coldLeft3 * 100).toFixed(1)}%): ${ddCold.toFixed(0)} ms`);
    const coldLeft2 = dropCache();
    const ltgCold = await timed(() => rt.loadToGpu('A'));
    log(`loadToGpu, cold (cached before: ${(coldLeft2 * 100).toFixed(1)}%): ${ltgCold.wallMs.toFixed(0)} ms`);
    const sumCold = await rt.checksum('A', 'gpu');
    await rt.evict('A');
    Object.assign(results, { catColdMs: catCold, ddColdMs: ddCold, loadToGpuColdMs: ltgCold.wallMs, cachedBeforeCold: Math.max(coldLeft1, coldLeft2, coldLeft3) });

    // Warm: files in the page cache (checked).
    const warmFrac = cached();
    const catWarm = median(Array.from({ length: args.reps }, cat));
    const ddWarm = median(Array.from({ length: args.reps }, dd));
    const ltgWarm: MoveResult[] = [];
    const ltgFirst: number[] = [];
    for (let i = 0; i < args.reps; i++) {
      const { r, firstLayerMs } = await firstLayer((o) => rt.loadToGpu('A', o));
      ltgWarm.push(r);
      ltgFirst.push(firstLayerMs);
      await rt.evict('A');
    }
    const ltgWarmMs = median(ltgWarm.map((r) => r.wallMs));
    log(`warm (cached: ${(warmFrac * 100).toFixed(1)}%): cat ${catWarm.toFixed(0)} ms, dd ${ddWarm.toFixed(0)} ms, loadToGpu ${ltgWarmMs.toFixed(0)} ms (layer 0 ready at ${median(ltgFirst).toFixed(0)} ms)`);
    Object.assign(results, { cachedWarm: warmFrac, catWarmMs: catWarm, ddWarmMs: ddWarm, loadToGpuWarmMs: ltgWarmMs, loadToGpuWarmFirstLayerMs: median(ltgFirst) });

    // disk -> host (warm), then the bytes on every tier must agree.
    const load = await rt.load('A');
    const sumHost = await rt.checksum('A', 'host');
    log(`load (disk -> pinned host, warm): ${load.wallMs.toFixed(0)} ms`);
    results.loadWarmMs = load.wallMs;

    // host -> GPU: the floor (a plain cudaMemcpyAsync of the same pinned bytes), then swapIn.
    const swaps: MoveResult[] = [];
    const swapFirst: number[] = [];
    let sumSwap = '';
    // Progress over the repetitions only (nothing runs inside the timed moves).
    const swapBar = progress({ label: '[bench swap] swapIn', total: args.reps });
    for (let i = 0; i < args.reps; i++) {
      const { r, firstLayerMs } = await firstLayer((o) => rt.swapIn('A', o));
      swaps.push(r);
      swapFirst.push(firstLayerMs);
      if (i === 0) sumSwap = await rt.checksum('A', 'gpu');
      await rt.evict('A');
      swapBar.tick();
    }
    swapBar.finish();
    const floor = await rt.native.benchFloor('A', args.reps);
    const floorMs = median(floor);
    const swapMs = median(swaps.map((r) => r.wallMs));
    const swapDevMs = median(swaps.map((r) => r.deviceMs));
    log(`floor cudaMemcpyAsync ${floorMs.toFixed(1)} ms; swapIn ${swapMs.toFixed(1)} ms wall, ${swapDevMs.toFixed(1)} ms device`);
    Object.assign(results, { floorMs, floorAllMs: floor, swapInMs: swapMs, swapInDeviceMs: swapDevMs, swapInAllMs: swaps.map((r) => r.wallMs), swapInFirstLayerMs: median(swapFirst) });

    // swapIn of A while B's eviction happens (B was resident; evict is issued once A's copy is under way).
    const conc: number[] = [];
    for (let i = 0; i < args.reps; i++) {
      await rt.loadToGpu('B');
      const p = rt.swapIn('A');
      await rt.evict('B');
      conc.push((await p).wallMs);
      await rt.evict('A');
    }
    const concMs = median(conc);
    log(`swapIn while another model is evicted: ${concMs.toFixed(1)} ms`);
    Object.assign(results, { swapInDuringEvictMs: concMs });

    const verified = sumCold === sumHost && sumHost === sumSwap;
    results.checksums = { loadToGpuCold: sumCold, host: sumHost, swapIn: sumSwap, equal: verified };
    if (!verified) log(`CHECKSUM MISMATCH: loadToGpu ${sumCold}, host ${sumHost}, swapIn ${sumSwap}`);

    let hf: Record<string, number> | null = null;
    if (args.baseline) hf = JSON.parse(readFileSync(args.baseline, 'utf8')) as Record<string, number>;
    results.transformers = hf;

    const s = (ms: number) => `${(ms / 1000).toFixed(3)} s (${gb(total, ms).toFixed(1)} GB/s)`;
    const rows: Row[] = [
      { what: 'swapIn (pinned host -> GPU)', ours: s(swapMs), reference: `plain cudaMemcpyAsync ${s(floorMs)}`, ratio: `${((floorMs / swapMs) * 100).toFixed(1)}% of floor`, target: '>= 95%', ok: floorMs / swapMs >= 0.95 },
    ];
    if (hf?.toCudaPinnedS) rows.push({ what: 'swapIn', ours: s(swapMs), reference: `model.to('cuda', non_blocking=True), pinned: ${s(hf.toCudaPinnedS * 1000)}`, ratio: `${(swapMs / (hf.toCudaPinnedS * 1000)).toFixed(2)}x`, target: '<= 1x', ok: swapMs <= hf.toCudaPinnedS * 1000 });
    rows.push({ what: 'loadToGpu, page cache dropped', ours: s(ltgCold.wallMs), reference: `cat of the same files ${s(catCold)}`, ratio: `${(ltgCold.wallMs / catCold).toFixed(3)}x`, target: '<= 1.05x', ok: ltgCold.wallMs <= 1.05 * catCold });
    if (hf?.fromPretrainedColdS) rows.push({ what: 'loadToGpu, page cache dropped', ours: s(ltgCold.wallMs), reference: `from_pretrained(device_map='cuda') ${s(hf.fromPretrainedColdS * 1000)}`, ratio: `${(ltgCold.wallMs / (hf.fromPretrainedColdS * 1000)).toFixed(2)}x`, target: '<= 1x', ok: ltgCold.wallMs <= hf.fromPretrainedColdS * 1000 });
    rows.push({ what: 'loadToGpu, page cache dropped', ours: s(ltgCold.wallMs), reference: `dd bs=64M of the same files ${s(ddCold)}`, ratio: `${(ltgCold.wallMs / ddCold).toFixed(3)}x`, target: '(info)', ok: null });
    rows.push({ what: 'loadToGpu, files in page cache', ours: s(ltgWarmMs), reference: `dd bs=64M ${s(ddWarm)}; cat ${s(catWarm)}`, ratio: `${(ltgWarmMs / ddWarm).toFixed(2)}x dd`, target: '(info)', ok: null });
    if (hf?.fromPretrainedWarmS) rows.push({ what: 'loadToGpu, files in page cache', ours: s(ltgWarmMs), reference: `from_pretrained(device_map='cuda') ${s(hf.fromPretrainedWarmS * 1000)}`, ratio: `${((hf.fromPretrainedWarmS * 1000) / ltgWarmMs).toFixed(2)}x faster`, target: '>= 2x faster', ok: hf.fromPretrainedWarmS * 1000 >= 2 * ltgWarmMs });
    rows.push({ what: 'swapIn while another model is evicted', ours: s(concMs), reference: `swapIn alone ${s(swapMs)}`, ratio: `${(((concMs - swapMs) / swapMs) * 100).toFixed(1)}% slower`, target: '< 10%', ok: concMs < 1.1 * swapMs });
    rows.push({ what: 'first layer ready (group 1 landed), from the call', ours: `swapIn ${median(swapFirst).toFixed(1)} ms; loadToGpu (warm) ${median(ltgFirst).toFixed(1)} ms`, reference: `whole model: ${swapMs.toFixed(0)} ms; ${ltgWarmMs.toFixed(0)} ms`, ratio: '', target: '(info)', ok: null });
    rows.push({ what: 'load (disk -> pinned host), page cache warm', ours: s(load.wallMs), reference: `cat ${s(catWarm)}`, ratio: `${(load.wallMs / catWarm).toFixed(2)}x`, target: '(info)', ok: null });
    rows.push({ what: 'pinning the host pool + staging (background, once)', ours: `${((results.pinMs as number) / 1000).toFixed(2)} s`, reference: '', ratio: '', target: '(info)', ok: null });
    rows.push({ what: 'bytes identical on every tier (checksums)', ours: verified ? 'yes' : 'NO', reference: sumHost, ratio: '', target: 'yes', ok: verified });
    results.rows = rows;

    if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');
    if (args.json) {
      process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    } else {
      const lines = [
        `device: ${rt.deviceName} (${rt.backend} backend); ${(total / 1e9).toFixed(2)} GB in ${layout.groups.length} groups (${planner}); median of ${args.reps}; read threads ${args.readThreads ?? 'default'}, staging ${args.stagingBytes ?? 'default'}`,
        '',
        '| move | swapserve | reference (same run) | ratio | target | met |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows.map((r) => `| ${r.what} | ${r.ours} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.ok === null ? '' : r.ok ? 'yes' : 'NO'} |`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }
    return verified ? 0 : 1;
  } finally {
    await rt.close();
    cleanup();
  }
}
