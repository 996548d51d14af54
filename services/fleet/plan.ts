// `swapserve plan`: the cheapest mix of GPU types and groups for a workload, as a placement config fragment with its expected cost and SLOs.
import { stringify } from 'yaml';
import { loadCalibration, type Calibration } from './calibration.ts';
import { buildProblem, type PlanProblem } from './plan-capacity.ts';
import { solveIlp, type IlpSolution } from './plan-ilp.ts';
import type { LoadedPlanInput, PlanInput, PriceList } from './plan-input.ts';

/** One worker group of the plan: GPUs of one type serving a set of models. */
export interface PlanGroup {
  /** Worker group name (the `placement.groups[].name` of the config; workers started with `--group <name>`). */
  name: string;
  gpu: string;
  /** dedicated: the model's replicas stay on their GPUs; swap: one model at a time per GPU, the others parked in pinned host RAM. */
  mode: 'dedicated' | 'swap';
  gpus: number;
  /** GPUs one worker (one model instance) spans: > 1 only for models that fit no single GPU (tensor parallel, not in swapserve's engine yet). */
  gpusPerWorker: number;
  /** Workers on each GPU of the group: > 1 only for a swap group of a GPU type planned with `mps: true`. */
  workersPerGpu: number;
  /** Whether those workers share each GPU under the NVIDIA MPS daemon (`swapserve up --plan` starts it). */
  mps: boolean;
  models: string[];
  /** Load the plan puts on the group / its capacity inside the SLOs (≤ headroom). */
  utilization: number;
  costPerHourUsd: number;
}

export interface PlanModelReport {
  id: string;
  ratePerS: number;
  sloTtftMs: number;
  sloTpotMs: number;
  /** Share of the model's requests each group serves. */
  shares: Record<string, number>;
  /** Worst-bucket TTFT / TPOT on the warm path at the group's batch (ms), from the engine model. */
  warmTtftMs: number;
  warmTpotMs: number;
  /** Share of its requests that find the model swapped out (0 when it has no swap group), and their TTFT (ms). */
  swapShare: number;
  swapTtftMs: number | null;
  /** Requests expected inside the TTFT and TPOT SLOs at the mean rate (the capacity constraints make it 1; bursts are what `simulate` measures). */
  expectedAttainment: number;
}

export interface PlanResult {
  description: string;
  prices: { source: string; date: string };
  costPerHourUsd: number;
  gpus: Record<string, number>;
  groups: PlanGroup[];
  models: PlanModelReport[];
  /** Same workload, other plans: each GPU type alone, and no swap groups (what the mix and the swap groups save). */
  alternatives: Array<{ name: string; costPerHourUsd: number | null; note?: string }>;
  solver: Pick<IlpSolution, 'status' | 'gap' | 'solveS' | 'variables' | 'constraints'>;
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60) || 'model';

/** Turns the ILP's answer into groups and per-model figures. */
export function describePlan(p: PlanProblem, input: PlanInput, prices: PriceList, sol: IlpSolution): PlanResult {
  const groups: PlanGroup[] = [];
  const gpus: Record<string, number> = {};
  const sliceLoad = (gi: (s: number) => boolean, t: number, pool: boolean) =>
    p.slices.reduce((a, _, si) => a + (gi(si) ? (pool ? p.poolLoad[si][t] : p.dedicatedLoad[si][t]) : 0), 0);
  const groupOf = new Map<string, string>(); // `${model}/${type}/${pool}` -> group name
  p.types.forEach((t, ti) => {
    p.models.forEach((m, mi) => {
      const n = sol.dedicated[mi][ti];
      if (n === 0) return;
      const k = p.instanceGpus[mi][ti];
      const name = `${slug(t.name)}-${slug(m.id)}`;
      groupOf.set(`${mi}/${ti}/false`, name);
      const load = sliceLoad((si) => p.slices[si].model === mi && sol.sliceTo[si].type === ti && !sol.sliceTo[si].pool, ti, false);
      groups.push({ name, gpu: t.name, mode: 'dedicated', gpus: n * k, gpusPerWorker: k, workersPerGpu: 1, mps: false, models: [m.id], utilization: load / n, costPerHourUsd: n * k * t.pricePerGpuHour });
    });
    if (sol.poolGpus[ti] > 0) {
      const name = `${slug(t.name)}-swap`;
      const members = p.models.flatMap((m, mi) => (sol.member[mi][ti] ? [m.id] : []));
      p.models.forEach((_, mi) => { if (sol.member[mi][ti]) groupOf.set(`${mi}/${ti}/true`, name); });
      let load = sliceLoad((si) => sol.sliceTo[si].type === ti && sol.sliceTo[si].pool, ti, true);
      p.models.forEach((_, mi) => { if (sol.member[mi][ti]) load += p.swapLoad[mi][ti]; });
      const workersPerGpu = t.mpsWorkers ?? 1;
      groups.push({ name, gpu: t.name, mode: 'swap', gpus: sol.poolGpus[ti], gpusPerWorker: 1, workersPerGpu, mps: workersPerGpu > 1, models: members, utilization: load / sol.poolGpus[ti], costPerHourUsd: sol.poolGpus[ti] * t.pricePerGpuHour });
    }
  });
  for (const g of groups) gpus[g.gpu] = (gpus[g.gpu] ?? 0) + g.gpus;
  const models: PlanModelReport[] = input.models.map((m, mi) => {
    const shares: Record<string, number> = {};
    let warmTtft = 0, warmTpot = 0, swapTtft: number | null = null, pooled = false;
    p.slices.forEach((s, si) => {
      if (s.model !== mi) return;
      const to = sol.sliceTo[si];
      const g = groupOf.get(`${mi}/${to.type}/${to.pool}`)!;
      shares[g] = (shares[g] ?? 0) + s.ratePerS / p.models[mi].ratePerS;
      const c = p.capacity[mi][s.bucket][to.type];
      warmTtft = Math.max(warmTtft, c.ttftS);
      warmTpot = Math.max(warmTpot, c.tpotS);
      if (to.pool) { pooled = true; swapTtft = Math.max(swapTtft ?? 0, p.swapTtftS[mi][to.type]); }
    });
    const swapShare = pooled ? p.swapShare[mi] * poolShare(shares, groups) : 0;
    const ok = warmTtft * 1000 <= m.sloTtftMs && warmTpot * 1000 <= m.sloTpotMs && (swapTtft === null || swapTtft * 1000 <= m.sloTtftMs);
    return {
      id: m.id, ratePerS: p.models[mi].ratePerS, sloTtftMs: m.sloTtftMs, sloTpotMs: m.sloTpotMs, shares,
      warmTtftMs: warmTtft * 1000, warmTpotMs: warmTpot * 1000, swapShare, swapTtftMs: swapTtft === null ? null : swapTtft * 1000,
      expectedAttainment: ok ? 1 : 0,
    };
  });
  return {
    description: input.description, prices: { source: prices.source, date: prices.date }, costPerHourUsd: sol.costPerHour, gpus, groups, models,
    alternatives: [], solver: { status: sol.status, gap: sol.gap, solveS: sol.solveS, variables: sol.variables, constraints: sol.constraints },
  };
}

function poolShare(shares: Record<string, number>, groups: PlanGroup[]): number {
  let s = 0;
  for (const [g, v] of Object.entries(shares)) if (groups.find((x) => x.name === g)?.mode === 'swap') s += v;
  return s;
}

/** The problem restricted: only some GPU types, or no swap groups. */
function restrict(p: PlanProblem, keepType: (t: number) => boolean, swap: boolean): PlanProblem {
  return {
    ...p,
    dedicatedLoad: p.dedicatedLoad.map((row) => row.map((v, t) => (keepType(t) ? v : Infinity))),
    poolOk: p.poolOk.map((row) => row.map((v, t) => v && swap && keepType(t))),
  };
}

/** Plans a loaded input: builds the problem from the calibrations, solves it, and prices the alternatives. */
export async function planFleet(loaded: LoadedPlanInput, calibrations?: Record<string, Calibration>): Promise<PlanResult> {
  const { input, prices } = loaded;
  const cals = calibrations ?? Object.fromEntries(Object.entries(loaded.calibrationPaths).map(([t, path]) => [t, loadCalibration(path)]));
  const problem = buildProblem(input, prices, cals);
  const sol = await solveIlp(problem, { timeLimitS: input.options.timeLimitS, mipGap: input.options.mipGap });
  const result = describePlan(problem, input, prices, sol);
  const tryCost = async (name: string, q: PlanProblem) => {
    try {
      result.alternatives.push({ name, costPerHourUsd: (await solveIlp(q, { timeLimitS: input.options.timeLimitS, mipGap: input.options.mipGap })).costPerHour });
    } catch (e) {
      result.alternatives.push({ name, costPerHourUsd: null, note: (e as Error).message.split('\n')[0] });
    }
  };
  for (let t = 0; t < problem.types.length; t++) {
    const only = restrict(problem, (x) => x === t, true);
    const serveable = problem.slices.every((s, si) => Number.isFinite(only.dedicatedLoad[si][t]) || only.poolOk[s.model][t]);
    if (serveable) await tryCost(`${problem.types[t].name} only`, only);
    else result.alternatives.push({ name: `${problem.types[t].name} only`, costPerHourUsd: null, note: 'some model cannot be served on it within its SLOs' });
  }
  await tryCost('no swap groups (each model on its own GPUs, Mélange)', restrict(problem, () => true, false));
  return result;
}

/** The swapserve config fragment of a plan: `placement.groups`, with the plan's figures as comments. */
export function planConfigFragment(r: PlanResult, from: string): string {
  const head = [
    `# Written by \`swapserve plan ${from}\`: ${r.description || 'a fleet plan'}.`,
    `# Expected cost ${usd(r.costPerHourUsd)}/h (${Object.entries(r.gpus).map(([g, n]) => `${n} x ${g}`).join(', ')}); prices: ${r.prices.source} (${r.prices.date}).`,
    '# Merge into the swapserve config: a model listed here runs only on workers of its groups (worker.group / --group),',
    '# or start a host from it: `swapserve up --config CONFIG --plan THIS_FILE` runs the groups of its GPU type, with their workers per GPU and MPS.',
    '# Check it under bursts with `swapserve simulate` (docs/plan-format.md).',
  ];
  const body = { placement: { groups: r.groups.map((g) => ({ name: g.name, gpu: g.gpu, mode: g.mode, gpus: g.gpus, gpusPerWorker: g.gpusPerWorker, workersPerGpu: g.workersPerGpu, mps: g.mps, models: g.models })) } };
  return `${head.join('\n')}\n${stringify(body, { lineWidth: 0 })}`;
}

const usd = (v: number): string => `$${v.toFixed(2)}`;
const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;

/** A markdown report of the plan: groups, per-model figures, alternatives, solver. */
export function planReport(r: PlanResult): string {
  const out: string[] = [];
  out.push(`# Fleet plan${r.description ? `: ${r.description}` : ''}`, '');
  out.push(`**Expected cost: ${usd(r.costPerHourUsd)}/h** — ${Object.entries(r.gpus).map(([g, n]) => `${n} × ${g}`).join(', ')} (prices: ${r.prices.source}, ${r.prices.date}).`, '');
  out.push('| group | GPU | mode | GPUs | GPUs/worker | workers/GPU | models | utilization | $/h |', '| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const g of r.groups) out.push(`| ${g.name} | ${g.gpu} | ${g.mode} | ${g.gpus} | ${g.gpusPerWorker} | ${g.workersPerGpu}${g.mps ? ' (MPS)' : ''} | ${g.models.join(', ')} | ${pct(g.utilization)} | ${usd(g.costPerHourUsd)} |`);
  out.push('', '| model | req/s | groups (share of requests) | warm TTFT / SLO (ms) | TPOT / SLO (ms) | swapped-out share | swap TTFT (ms) | expected in SLO |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const m of r.models) {
    const groups = Object.entries(m.shares).map(([g, s]) => `${g} ${pct(s)}`).join(', ');
    out.push(`| ${m.id} | ${m.ratePerS.toFixed(3)} | ${groups} | ${m.warmTtftMs.toFixed(0)} / ${m.sloTtftMs} | ${m.warmTpotMs.toFixed(1)} / ${m.sloTpotMs} | ${pct(m.swapShare)} | ${m.swapTtftMs === null ? '–' : m.swapTtftMs.toFixed(0)} | ${pct(m.expectedAttainment)} |`);
  }
  out.push('', '| alternative, same workload and SLOs | $/h | vs this plan |', '| --- | ---: | ---: |');
  for (const a of r.alternatives) {
    out.push(`| ${a.name} | ${a.costPerHourUsd === null ? `– (${a.note})` : usd(a.costPerHourUsd)} | ${a.costPerHourUsd === null ? '–' : `${pct(1 - r.costPerHourUsd / a.costPerHourUsd)} saved`} |`);
  }
  out.push('', `Solver: HiGHS ${r.solver.status}, gap ${r.solver.gap}, ${r.solver.variables} variables, ${r.solver.constraints} constraints, ${r.solver.solveS.toFixed(2)} s.`);
  return `${out.join('\n')}\n`;
}
