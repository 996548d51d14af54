// The headline's markdown report: TTFT per path, the breakdown from the traces, worker starts, floors and
// alternatives from baselines.py, the bars (met / missed) and the published figures; medians of the samples.
import { cpus, totalmem } from 'node:os';
import type { BenchModel, Budgets, Prompt } from './models.ts';
import type { Mismatch, Sample } from './sample.ts';

/** Floors and transformers figures from bench/headline/baselines.py (seconds; GB/s), keyed by model folder. */
export interface Baseline {
  device?: string;
  torch?: string;
  transformers?: string;
  pinnedCopyGBps?: number;
  models?: Record<string, {
    bytes: number;
    catColdS?: number; catWarmS?: number; ddColdS?: number; ddWarmS?: number;
    toCudaPinnedS?: number; forwardS?: Record<string, number>;
    fromPretrainedWarmS?: number; fromPretrainedColdS?: number;
    cachedBeforeCold?: number;
  }>;
}

/** Everything one run measured, as the report reads it. */
export interface Results {
  argv: string[];
  /** ISO time the report was written. */
  date: string;
  device: string;
  budgets: Budgets;
  baseline: Baseline;
  models: BenchModel[];
  prompts: Prompt[];
  samples: Sample[];
  mismatches: Mismatch[];
}

export const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** A duration in ms as `1.23 s`, `45.6 ms` or `7.89 ms`; `–` when not measured. */
export const fmtS = (ms: number): string => (Number.isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`) : '–');
const stat = (xs: Sample[], f: (s: Sample) => number) => median(xs.map(f));

const PATH_ROWS = [
  { key: 'warm', label: 'warm (resident on the GPU)' },
  { key: 'swap', label: 'swap (pinned host RAM -> GPU, another model resident)' },
  { key: 'cold:disk_load@cache', label: 'cold, page cache (in no tier, files cached)' },
  { key: 'cold:disk_load@disk', label: 'cold, disk (page cache dropped)' },
  { key: 'cold:worker_start@disk', label: 'cold, worker start (scale from zero, page cache dropped)' },
] as const;

/** The samples of one cell: set up as `key` (path@cache state) and reported as that path by the system. */
function cell(r: Results, model: string, prompt: number, key: string): Sample[] {
  return r.samples.filter((s) => s.model === model && s.prompt === prompt &&
    (key === 'warm' || key === 'swap' ? s.path === key && s.intended === key : s.intended === key && s.path === key.split('@')[0]));
}

/** Appends a markdown section: `### title`, an optional paragraph, the table (numbers right-aligned, except `left` columns). */
function pushTable(lines: string[], title: string, intro: string | null, headers: string[], left: number[], rows: string[][]): void {
  lines.push('', `### ${title}`, '');
  if (intro) lines.push(intro, '');
  lines.push(`| ${headers.join(' | ')} |`, `| ${headers.map((_, i) => (i === 0 || left.includes(i) ? '---' : '---:')).join(' | ')} |`);
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
}

function header(r: Results): string[] {
  const { baseline: b, budgets } = r;
  const lines = [
    `- **Device**: ${r.device || 'unknown'}${b.device ? ` (transformers baseline on ${b.device}, torch ${b.torch}, transformers ${b.transformers})` : ''}; ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
    `- **Date**: ${r.date}`,
    `- **Command**: \`node bin/swapserve.js bench headline ${r.argv.join(' ')}\``,
    `- Budgets: GPU weights tier ${(budgets.gpuBytes / 1e9).toFixed(2)} GB (one model at a time), pinned host tier ${(budgets.hostBytes / 1e9).toFixed(2)} GB (all three, ${(budgets.totalBytes / 1e9).toFixed(2)} GB). Prompts: ${r.prompts.map((p) => `${p.tokens} tokens`).join(', ')}; max_tokens 2, streamed.`,
    `- Every TTFT below is the gateway span's \`gen_ai.response.time_to_first_chunk\` (request arrival at the gateway to the first SSE chunk), and every breakdown column the worker's spans of the same trace, as received over OTLP/HTTP by the bench. Cells are medians (n = samples).`,
  ];
  const cachedBefore = (suffix: string) => r.samples.filter((s) => s.intended.endsWith(suffix) && s.cachedBefore !== null).map((s) => s.cachedBefore!);
  const coldDisk = cachedBefore('@disk');
  const coldCache = cachedBefore('@cache');
  if (coldDisk.length || coldCache.length) {
    lines.push(`- Page cache (mincore, before each cold sample): ${coldDisk.length ? `at most ${(Math.max(...coldDisk) * 100).toFixed(1)}% of the files cached before the "disk" samples (dropped with fdatasync + posix_fadvise DONTNEED)` : ''}${coldDisk.length && coldCache.length ? '; ' : ''}${coldCache.length ? `at least ${(Math.min(...coldCache) * 100).toFixed(1)}% before the "page cache" samples` : ''}.`);
  }
  return lines;
}

function ttftTable(r: Results, lines: string[]): void {
  const { models, prompts } = r;
  lines.push('', '### TTFT per path (median, from the traces)', '');
  lines.push(`| path | ${models.map((m) => prompts.map((p) => `${m.id} ${p.n} tok`).join(' | ')).join(' | ')} |`);
  lines.push(`| --- | ${models.map(() => prompts.map(() => '---:').join(' | ')).join(' | ')} |`);
  for (const row of PATH_ROWS) {
    const cells = models.flatMap((m) => prompts.map((p) => {
      const xs = cell(r, m.id, p.n, row.key);
      return xs.length ? `${fmtS(stat(xs, (s) => s.ttftMs))} (n=${xs.length})` : '–';
    }));
    lines.push(`| ${row.label} | ${cells.join(' | ')} |`);
  }
}

function breakdownTable(r: Results, lines: string[]): void {
  const rows: string[][] = [];
  for (const m of r.models) {
    for (const p of r.prompts) {
      for (const row of PATH_ROWS) {
        const xs = cell(r, m.id, p.n, row.key);
        if (!xs.length) continue;
        const rest = stat(xs, (s) => s.ttftMs - s.loadMs - s.swapMs - s.prefillMs - s.evictMs);
        const g = (f: (s: Sample) => number | null) => {
          const v = xs.map(f).filter((x): x is number => x !== null);
          return v.length ? median(v).toFixed(1) : '–';
        };
        const phases = [(s: Sample) => s.ttftMs, (s: Sample) => s.queueMs, (s: Sample) => s.loadMs, (s: Sample) => s.swapMs, (s: Sample) => s.prefillMs];
        rows.push([m.id, String(p.tokens), row.key, ...phases.map((f) => fmtS(stat(xs, f))), fmtS(rest), g((s) => s.loadGBps), g((s) => s.swapGBps)]);
      }
    }
  }
  pushTable(lines, 'Breakdown from the traces (median ms: queue wait / disk load / swap-in / prefill / rest)', null,
    ['model', 'prompt', 'path', 'TTFT', 'queue wait', 'load', 'swap-in', 'prefill', 'rest', 'load GB/s', 'swap GB/s'], [2], rows);
  lines.push('');
  lines.push('"queue wait" is enqueue to the worker taking the job (the worker starts consuming once the scheduler\'s move to the GPU is under way, so it covers a disk load that comes before a swap-in, not the swap-in); "prefill" runs from when the last layer landed to the first token; "rest" = TTFT − load − swap-in − prefill: HTTP, enqueue, scheduling, commands, consumer start, stream.');
}

function workerStartTable(r: Results, lines: string[]): void {
  const starts = r.samples.filter((s) => s.path === 'cold:worker_start' && s.workerStart);
  if (!starts.length) return;
  const rows: string[][] = [];
  for (const m of r.models) {
    for (const p of r.prompts) {
      const xs = starts.filter((s) => s.model === m.id && s.prompt === p.n);
      if (!xs.length) continue;
      const w = (f: (x: NonNullable<Sample['workerStart']>) => number) => fmtS(stat(xs, (s) => f(s.workerStart!)));
      rows.push([m.id, String(p.tokens), String(xs.length), fmtS(stat(xs, (s) => s.ttftMs)), w((x) => x.spawnMs), w((x) => x.readyMs), w((x) => x.toLoadMs), fmtS(stat(xs, (s) => s.loadMs))]);
    }
  }
  pushTable(lines, 'Worker start, from the traces (median ms)',
    'The wait before a scale from zero\'s load, split with the worker\'s `swapserve.worker_start` span: request arrival → worker process start (scheduling, spawn), process start → ready (imports, runtime open, registration), ready → the load\'s start (placement command, model files opened).',
    ['model', 'prompt', 'n', 'TTFT', 'arrival → process start', 'process start → ready', 'ready → load start', 'load'], [], rows);
}

function floorsTable(r: Results, lines: string[]): void {
  const { baseline } = r;
  if (!baseline.models) return;
  lines.push('', '### Floors and alternatives (same call, separate process, stack not running)', '');
  lines.push('| model | bytes | pinned copy (floor) | cat, cached | cat, dropped | dd bs=64M, cached | dd, dropped | transformers `.to(cuda)` pinned | + forward 128 | + forward 2048 | from_pretrained(cuda), cached | from_pretrained(cuda), dropped |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const s = (x?: number) => (x === undefined ? '–' : `${x.toFixed(3)} s`);
  for (const m of r.models) {
    const b = baseline.models[m.key];
    if (!b) continue;
    const floor = baseline.pinnedCopyGBps ? b.bytes / baseline.pinnedCopyGBps / 1e9 : undefined;
    lines.push(`| ${m.id} | ${(b.bytes / 1e9).toFixed(2)} GB | ${s(floor)} | ${s(b.catWarmS)} | ${s(b.catColdS)} | ${s(b.ddWarmS)} | ${s(b.ddColdS)} | ${s(b.toCudaPinnedS)} | ${s(b.forwardS?.['128'])} | ${s(b.forwardS?.['2048'])} | ${s(b.fromPretrainedWarmS)} | ${s(b.fromPretrainedColdS)} |`);
  }
  if (baseline.pinnedCopyGBps) lines.push(`\nPinned copy floor: ${baseline.pinnedCopyGBps.toFixed(1)} GB/s (torch, one pinned buffer, cudaMemcpyAsync, CUDA events), times = bytes / that rate.`);
}

/** The bars of the 8B shape: [name, measured ms, limit ms (undefined: no reference measured), note]. */
function bars(r: Results): [string, number, number | undefined, string][] {
  const b8 = r.baseline.models?.[r.models[0].key];
  const ttft = (prompt: number, key: string) => stat(cell(r, r.models[0].id, prompt, key), (s) => s.ttftMs);
  const out: [string, number, number | undefined, string][] = [];
  const p128 = r.prompts[0].n;
  const swap128 = ttft(p128, 'swap');
  const hfSwap = b8?.toCudaPinnedS !== undefined && b8.forwardS?.['128'] !== undefined ? (b8.toCudaPinnedS + b8.forwardS['128']) * 1000 : undefined;
  out.push(['swap, 8B, 128 tok: TTFT <= 0.35 s', swap128, 350, '']);
  if (hfSwap !== undefined) out.push(['swap, 8B, 128 tok: <= transformers pinned .to(cuda) + forward', swap128, hfSwap, `(${fmtS(hfSwap)})`]);
  const catCold = b8?.catColdS !== undefined ? b8.catColdS * 1000 : undefined;
  for (const p of r.prompts) {
    const disk = ttft(p.n, 'cold:disk_load@disk');
    if (catCold !== undefined) out.push([`cold, disk, 8B, ${p.n} tok: <= 1.05 x cat + 0.5 s`, disk, catCold * 1.05 + 500, `(cat ${fmtS(catCold)})`]);
    const fp = b8?.fromPretrainedWarmS !== undefined ? b8.fromPretrainedWarmS * 1000 : undefined;
    if (fp !== undefined) out.push([`cold, page cache, 8B, ${p.n} tok: <= 0.5 x from_pretrained(cuda) cached`, ttft(p.n, 'cold:disk_load@cache'), fp / 2, `(from_pretrained ${fmtS(fp)})`]);
    out.push([`cold, worker start, 8B, ${p.n} tok: <= disk case + 1.5 s`, ttft(p.n, 'cold:worker_start@disk'), Number.isFinite(disk) ? disk + 1500 : undefined, `(disk case ${fmtS(disk)})`]);
  }
  out.push(['warm, 8B, 128 tok: TTFT <= 20 ms', ttft(p128, 'warm'), 20, '']);
  return out;
}

function barsTable(r: Results, lines: string[]): void {
  lines.push('', '### Bars (Llama-3.1-8B shape)', '');
  lines.push('| bar | measured (median, traces) | limit | met |');
  lines.push('| --- | ---: | ---: | --- |');
  for (const [name, got, lim, note] of bars(r)) {
    const met = lim === undefined || !Number.isFinite(got) ? 'not measured' : got <= lim ? 'met' : 'missed';
    lines.push(`| ${name} | ${fmtS(got)} | ${lim === undefined ? '–' : fmtS(lim)} ${note} | ${met} |`);
  }
}

function publishedFigures(lines: string[]): void {
  lines.push('', '### Published figures (the seeds; other hardware, their own methods)', '');
  lines.push('| source | warm | swap from host RAM | engine reload / from zero | new instance |');
  lines.push('| --- | --- | --- | --- | --- |');
  lines.push('| ClearML on an L40S | 0.51–1.4 s | 2.42–9.03 s | engine reload 27.5–34 s | 263–280 s |');
  lines.push('| NVIDIA Run:ai (Llama-3.1-8B with Mistral-7B or Falcon-11B) | – | 2–3 s | 140–200+ s from zero | – |');
  lines.push('| vLLM sleep mode, level-1 wake, 8B model | – | ≈ 2.2 s | – | – |');
}

/** The whole report as markdown. */
export function renderReport(r: Results): string {
  const lines = header(r);
  ttftTable(r, lines);
  breakdownTable(r, lines);
  workerStartTable(r, lines);
  floorsTable(r, lines);
  barsTable(r, lines);
  publishedFigures(lines);
  if (r.mismatches.length) {
    lines.push('', `Path mismatches (set up one path, the system reported another; such samples are left out of the cells): ${r.mismatches.map((x) => `${x.model} ${x.prompt} tok intended ${x.intended}, got ${x.got}`).join('; ')}`);
  }
  return lines.join('\n');
}
