// A fleet replay's report: every policy over its knob's sweep, the frontier (fewest GPU-hours that reach 95 / 99 /
// 99.9% of requests within their TTFT SLO), the savings at the target, and the two pictures.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart } from './svg.ts';
import { PATHS, POLICIES, type PolicyName, type RunResult } from './run.ts';

export const TARGETS = [0.95, 0.99, 0.999];

export interface Frontier { policy: PolicyName; target: number; run: RunResult | null; bestAttainment: number }

export function frontier(runs: RunResult[]): Frontier[] {
  const out: Frontier[] = [];
  for (const policy of POLICIES) {
    const mine = runs.filter((r) => r.policy === policy);
    for (const target of TARGETS) {
      const ok = mine.filter((r) => r.sloAttainment >= target).sort((a, b) => a.gpuHours - b.gpuHours);
      out.push({ policy, target, run: ok[0] ?? null, bestAttainment: Math.max(0, ...mine.map((r) => r.sloAttainment)) });
    }
  }
  return out;
}

/** The run a policy is shown by at a target: its cheapest one reaching it, else its best attainment. */
export function representative(runs: RunResult[], policy: PolicyName, target: number): RunResult | undefined {
  const mine = runs.filter((r) => r.policy === policy);
  const ok = mine.filter((r) => r.sloAttainment >= target).sort((a, b) => a.gpuHours - b.gpuHours);
  return ok[0] ?? mine.sort((a, b) => b.sloAttainment - a.sloAttainment || a.gpuHours - b.gpuHours)[0];
}

export interface ReportMeta {
  command: string; date: string; commit: string; calibration: { file: string; gpu: string; source: string };
  fleet: string; mapping: Record<string, string | number>; replayHours: number; requests: number; targetAttainment: number;
}

const ms = (v: number): string => (!Number.isFinite(v) ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
const pctS = (v: number): string => `${(v * 100).toFixed(2)}%`;

export function savings(runs: RunResult[], target: number): { line: string; reduction: number | null } {
  const warm = runs.find((r) => r.policy === 'always-warm');
  const ours = representative(runs, 'swapserve', target);
  if (!warm || !ours) return { line: 'no always-warm or swapserve run', reduction: null };
  const reduction = 1 - ours.gpuHours / warm.gpuHours;
  const reached = ours.sloAttainment >= target;
  const others = (['scale-to-zero', 'lru-swap'] as const).map((p) => {
    const r = runs.filter((x) => x.policy === p && x.sloAttainment >= target).sort((a, b) => a.gpuHours - b.gpuHours)[0];
    return r ? `${p} ${r.gpuHours.toFixed(1)} GPU-h (${r.knob})` : `${p} never reaches ${pctS(target)}`;
  });
  return {
    reduction,
    line: `swapserve (${ours.knob}): ${ours.gpuHours.toFixed(1)} GPU-h at ${pctS(ours.sloAttainment)} within SLO ` +
      `${reached ? '' : `(target ${pctS(target)} NOT reached) `}vs always-warm ${warm.gpuHours.toFixed(1)} GPU-h: ` +
      `${(reduction * 100).toFixed(1)}% fewer GPU-hours; at the same target: ${others.join('; ')}.`,
  };
}

export function renderMarkdown(meta: ReportMeta, runs: RunResult[], pictures: { gpus: string; cdf: string }): string {
  const f = frontier(runs);
  const s = savings(runs, meta.targetAttainment);
  const lines = [
    `# Fleet replay — ${meta.calibration.gpu}`,
    '',
    `- **Command**: \`${meta.command}\``,
    `- **Date**: ${meta.date}; **commit** ${meta.commit}; CPU simulation (virtual clock), policy = the real \`decide()\`.`,
    `- **Calibration**: \`${meta.calibration.file}\` — ${meta.calibration.source}`,
    `- **Fleet**: ${meta.fleet}`,
    `- **Trace mapping** (every choice is a flag): ${Object.entries(meta.mapping).map(([k, v]) => `${k} = ${v}`).join('; ')}`,
    `- **Replay**: ${meta.requests} requests over ${meta.replayHours.toFixed(2)} simulated hours.`,
    '',
    `**Result at ${pctS(meta.targetAttainment)} within SLO**: ${s.line}`,
    '',
    '## Frontier: fewest GPU-hours reaching each share of requests within their TTFT SLO',
    '',
    `| policy | ${TARGETS.map((t) => `≥ ${pctS(t)}`).join(' | ')} | best reached |`,
    `| --- | ${TARGETS.map(() => '---:').join(' | ')} | ---: |`,
    ...POLICIES.map((p) => `| ${p} | ${TARGETS.map((t) => {
      const x = f.find((y) => y.policy === p && y.target === t)!;
      return x.run ? `${x.run.gpuHours.toFixed(1)} GPU-h (${x.run.knob})` : 'not reached';
    }).join(' | ')} | ${pctS(f.find((y) => y.policy === p)!.bestAttainment)} |`),
    '',
    '## What limits it',
    '',
    ...POLICIES.map((p) => {
      const r = representative(runs, p, meta.targetAttainment);
      if (!r) return '';
      const m = r.misses;
      const total = m.warm + m.swap + m.cold + m.unserved;
      return `- ${p} (${r.knob}): ${total} requests (${pctS(total / Math.max(1, r.requests))}) outside their SLO — cold ${m.cold}, swap ${m.swap}, warm (queued) ${m.warm}, unserved ${m.unserved}.`;
    }).filter((l) => l !== ''),
    '',
    '## Every run',
    '',
    '| policy | setting | GPU-h | peak GPUs | within SLO | TTFT p50 / p99 | warm n · p50 / p99 | swap n · p50 / p99 | cold n · p50 / p99 | swaps/h | disk loads/h | worker starts/h | host RAM peak |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...runs.map((r) => `| ${r.policy} | ${r.knob} | ${r.gpuHours.toFixed(1)} | ${r.peakGpus} | ${pctS(r.sloAttainment)} | ${ms(r.ttftP50Ms)} / ${ms(r.ttftP99Ms)} | ` +
      PATHS.map((p) => `${r.paths[p].n} · ${ms(r.paths[p].p50Ms)} / ${ms(r.paths[p].p99Ms)}`).join(' | ') +
      ` | ${r.swapsPerHour.toFixed(1)} | ${r.coldStartsPerHour.toFixed(1)} | ${r.workerStartsPerHour.toFixed(1)} | ${(r.peakHostBytes / 1e9).toFixed(0)} GB |`),
    '',
    `Paths as the worker names them (services/worker/residency.ts): warm = resident before the request arrived; swap = ` +
    'a host → GPU copy after it arrived; cold = a disk read (or page-cache read) or a worker start after it arrived. ' +
    '"Disk loads" count every read of weight files (page cache or disk). Host RAM = pinned host copies + page cache, peak over the replay.',
    '',
    `![GPUs in use](${pictures.gpus})`,
    '',
    `![TTFT CDF](${pictures.cdf})`,
    '',
  ];
  return lines.join('\n');
}

/** Writes report.md, report.json and the two SVGs into `dir`; returns their paths. */
export function writeReport(dir: string, meta: ReportMeta, runs: RunResult[]): string[] {
  mkdirSync(dir, { recursive: true });
  const target = meta.targetAttainment;
  const shown = POLICIES.map((p) => representative(runs, p, target)).filter((r): r is RunResult => !!r);
  const gpus = lineChart(shown.map((r) => ({ name: `${r.policy} (${r.knob})`, step: true, points: r.gpuSeries.map(([t, g]) => [t / 3.6e6, g] as [number, number]) })), {
    title: `GPUs in use — ${meta.calibration.gpu}, each policy at its cheapest run ≥ ${pctS(target)} within SLO`, xLabel: 'simulated hours', yLabel: 'GPUs held',
  });
  const cdf = lineChart(shown.map((r) => ({ name: `${r.policy} (${r.knob})`, points: r.ttftCdf.map((v, i) => [Math.max(1, v), (i + 1) / r.ttftCdf.length] as [number, number]) })), {
    title: `TTFT CDF — ${meta.calibration.gpu}`, xLabel: 'TTFT (ms, log scale)', yLabel: 'share of requests', logX: true, yMax: 1,
  });
  const files = { gpus: 'gpus-in-use.svg', cdf: 'ttft-cdf.svg' };
  writeFileSync(join(dir, files.gpus), gpus);
  writeFileSync(join(dir, files.cdf), cdf);
  writeFileSync(join(dir, 'report.md'), renderMarkdown(meta, runs, files));
  const slim = runs.map(({ gpuSeries, ttftCdf, ...r }) => ({ ...r, gpuSeriesPoints: gpuSeries.length }));
  writeFileSync(join(dir, 'report.json'), `${JSON.stringify({ meta, frontier: frontier(runs).map((x) => ({ ...x, run: x.run?.label ?? null })), runs: slim }, null, 1)}\n`);
  return ['report.md', 'report.json', files.gpus, files.cdf].map((f) => join(dir, f));
}
