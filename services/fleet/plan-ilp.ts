// The plan as an integer linear program (Mélange's bins and slices, plus swap groups), written in CPLEX LP form and solved with HiGHS.
import { setFlagsFromString } from 'node:v8';
import highsModule from 'highs';
import { FleetInputError } from './calibration.ts';
import type { PlanProblem } from './plan-capacity.ts';

/**
 * Mélange cuts each bucket's rate into S equal slices, each assigned to one GPU type. Slices of one bucket are
 * identical, so the program counts them instead of naming them (the same optimum, without the S! symmetric copies
 * a branch-and-bound would otherwise search; the brute-force test enumerates the slices one by one).
 * Variables (t: GPU type, m: model, b: one bucket of a model):
 *   x_m_t ∈ ℤ≥0     dedicated instances of model m on type t (each `instanceGpus[m][t]` GPUs)
 *   z_t   ∈ ℤ≥0     GPUs in type t's swap group (a GPU serves the members resident on it; the others are parked in pinned host RAM)
 *   d_b_t ∈ 0..S_b  slices of bucket b served by m's dedicated instances on t;  p_b_t ∈ 0..S_b  by t's swap group
 *   u_m_t ∈ {0,1}   model m belongs to t's swap group (its weights parked on every worker of the group)
 * minimise   Σ_t price_t · (Σ_m k_m_t · x_m_t + z_t)
 * subject to Σ_t (d_b_t + p_b_t) = S_b                                  every slice is served once
 *            Σ_{b of m} load_b_t · d_b_t ≤ headroom · x_m_t             dedicated instances carry their slices
 *            Σ_b poolLoad_b_t · p_b_t + Σ_m swapLoad_m_t · u_m_t ≤ headroom · z_t   the swap group carries its slices and swap-ins
 *            p_b_t ≤ S_b · u_m(b)_t                                      only members are served by the group
 *            Σ_m weightBytes_m · u_m_t ≤ hostBytesPerWorker_t            the group's models fit each worker's pinned host RAM
 *            Σ_m residentBytes_m_t · u_m_t ≤ usableGpuBytes_t · z_t      the members resident at a time fit the group's GPUs
 *            Σ_m k_m_t · x_m_t + z_t ≤ max_t                             availability (when given)
 * Options a type cannot serve (infinite load, not allowed to swap) get no variable.
 */
export interface IlpSolution {
  /** [model][type] dedicated instances. */
  dedicated: number[][];
  /** [type] GPUs in the swap group. */
  poolGpus: number[];
  /** [slice] where it goes. */
  sliceTo: Array<{ type: number; pool: boolean }>;
  /** [model][type] swap-group membership. */
  member: boolean[][];
  costPerHour: number;
  /** HiGHS status ("Optimal", or "Time limit reached" with the best plan found). */
  status: string;
  /** Relative MIP gap HiGHS reports (0 when proven optimal). */
  gap: number;
  solveS: number;
  variables: number;
  constraints: number;
}

/** Cost of a plan's GPUs (USD/h). */
export function planCost(p: PlanProblem, dedicated: number[][], poolGpus: number[]): number {
  let c = 0;
  p.types.forEach((t, ti) => {
    let gpus = poolGpus[ti];
    p.models.forEach((_, mi) => { gpus += dedicated[mi][ti] * p.instanceGpus[mi][ti]; });
    c += gpus * t.pricePerGpuHour;
  });
  return c;
}

const num = (v: number): string => {
  const s = Number(v.toPrecision(12)).toString();
  return s;
};

/** Writes the CPLEX LP text of the problem. */
export function writeLp(p: PlanProblem): { lp: string; variables: number; constraints: number; runs: SliceRun[] } {
  const T = p.types.length;
  const obj: string[] = [];
  const rows: string[] = [];
  const generals: string[] = [];
  const binaries: string[] = [];
  const bounds: string[] = [];
  const term = (c: number, v: string) => `${c < 0 ? '-' : '+'} ${num(Math.abs(c))} ${v}`;
  const row = (name: string, terms: string[], rel: string, rhs: number) => {
    if (terms.length === 0) return;
    const lines: string[] = [];
    for (let i = 0; i < terms.length; i += 8) lines.push(terms.slice(i, i + 8).join(' '));
    rows.push(` ${name}: ${lines.join('\n   ')} ${rel} ${num(rhs)}`);
  };
  const runs = sliceRuns(p);
  const xUsed = new Set<string>();
  const poolUsed = new Set<number>();
  const canPool = (r: SliceRun, t: number) => p.poolOk[r.model][t] && Number.isFinite(p.poolLoad[r.first][t]);
  // Buckets: all their slices served.
  runs.forEach((r, b) => {
    const opts: string[] = [];
    for (let t = 0; t < T; t++) {
      if (Number.isFinite(p.dedicatedLoad[r.first][t])) { opts.push(`d_${b}_${t}`); xUsed.add(`${r.model}_${t}`); }
      if (canPool(r, t)) { opts.push(`p_${b}_${t}`); poolUsed.add(t); }
    }
    if (opts.length === 0) throw new FleetInputError(`model "${p.models[r.model].id}": a bucket of its workload has no GPU type that serves it within its SLOs`);
    for (const v of opts) { generals.push(v); bounds.push(` 0 <= ${v} <= ${r.count}`); }
    row(`serve_${b}`, opts.map((v) => term(1, v)), '=', r.count);
  });
  // Dedicated instances.
  for (const key of xUsed) {
    const [m, t] = key.split('_').map(Number);
    generals.push(`x_${m}_${t}`);
    obj.push(term(p.types[t].pricePerGpuHour * p.instanceGpus[m][t], `x_${m}_${t}`));
    const terms: string[] = [];
    runs.forEach((r, b) => { if (r.model === m && Number.isFinite(p.dedicatedLoad[r.first][t])) terms.push(term(p.dedicatedLoad[r.first][t], `d_${b}_${t}`)); });
    terms.push(term(-p.headroom, `x_${m}_${t}`));
    row(`ded_${m}_${t}`, terms, '<=', 0);
    // Implied by the rows above for integer x, but it tightens the LP relaxation: a slice served needs an instance.
    runs.forEach((r, b) => { if (r.model === m && Number.isFinite(p.dedicatedLoad[r.first][t])) row(`dx_${b}_${t}`, [term(1, `d_${b}_${t}`), term(-r.count, `x_${m}_${t}`)], '<=', 0); });
  }
  // Swap groups.
  for (const t of poolUsed) {
    generals.push(`z_${t}`);
    obj.push(term(p.types[t].pricePerGpuHour, `z_${t}`));
    const load: string[] = [];
    const host: string[] = [];
    const mem: string[] = [];
    p.models.forEach((m, mi) => {
      if (!p.poolOk[mi][t]) return;
      binaries.push(`u_${mi}_${t}`);
      if (p.swapLoad[mi][t] > 0) load.push(term(p.swapLoad[mi][t], `u_${mi}_${t}`));
      host.push(term(m.weightBytes / 1e9, `u_${mi}_${t}`)); // GB, to keep coefficients near 1
      mem.push(term(p.residentBytes[mi][t] / 1e9, `u_${mi}_${t}`));
      row(`uz_${mi}_${t}`, [term(1, `u_${mi}_${t}`), term(-1, `z_${t}`)], '<=', 0); // a member needs a GPU (tightens the LP)
    });
    runs.forEach((r, b) => {
      if (!canPool(r, t)) return;
      load.push(term(p.poolLoad[r.first][t], `p_${b}_${t}`));
      row(`member_${b}_${t}`, [term(1, `p_${b}_${t}`), term(-r.count, `u_${r.model}_${t}`)], '<=', 0);
    });
    load.push(term(-p.headroom, `z_${t}`));
    row(`pool_${t}`, load, '<=', 0);
    row(`host_${t}`, host, '<=', p.types[t].hostBytesPerWorker / 1e9);
    mem.push(term(-p.types[t].usableGpuBytes / 1e9, `z_${t}`));
    row(`mem_${t}`, mem, '<=', 0);
  }
  // Availability.
  p.types.forEach((ty, t) => {
    if (ty.maxGpus === undefined) return;
    const terms: string[] = [];
    p.models.forEach((_, m) => { if (xUsed.has(`${m}_${t}`)) terms.push(term(p.instanceGpus[m][t], `x_${m}_${t}`)); });
    if (poolUsed.has(t)) terms.push(term(1, `z_${t}`));
    row(`max_${t}`, terms, '<=', ty.maxGpus);
  });
  const lp = ['Minimize', ` cost: ${obj.join('\n   ')}`, 'Subject To', ...rows, 'Bounds', ...bounds, 'Generals', ...generals.map((g) => ` ${g}`),
    'Binaries', ...binaries.map((b) => ` ${b}`), 'End', ''].join('\n');
  return { lp, variables: generals.length + binaries.length, constraints: rows.length, runs };
}

/** Consecutive identical slices (one bucket of one model): `first` slice index, `count` slices. */
export interface SliceRun { model: number; bucket: number; first: number; count: number }

export function sliceRuns(p: PlanProblem): SliceRun[] {
  const runs: SliceRun[] = [];
  p.slices.forEach((s, si) => {
    const last = runs[runs.length - 1];
    if (last && last.model === s.model && last.bucket === s.bucket) last.count++;
    else runs.push({ model: s.model, bucket: s.bucket, first: si, count: 1 });
  });
  return runs;
}

// highs ships CommonJS types for an ES module whose default export is the loader: take whichever form arrives.
type Loader = typeof highsModule.default;
const loadHighs: Loader = (highsModule as unknown as { default?: Loader }).default ?? (highsModule as unknown as Loader);
let highsPromise: ReturnType<Loader> | null = null;

/** Solves the problem with HiGHS; throws FleetInputError when no plan exists (e.g. the availability caps are too low). */
export async function solveIlp(p: PlanProblem, opts: { timeLimitS?: number; mipGap?: number } = {}): Promise<IlpSolution> {
  const { lp, variables, constraints, runs } = writeLp(p);
  if (!highsPromise) {
    // HiGHS is 3.5 MB of WebAssembly and `swapserve plan` a fresh process. Measured on the loaded 2-core dev machine
    // (load average ~30, 20-model instance): V8's default tiering 26 s for the first solve (solves after it: 3-5 s),
    // eager optimized compilation 36 s, baseline code only (--liftoff-only) 7.6 s. Set before the module compiles.
    setFlagsFromString('--liftoff-only');
    highsPromise = loadHighs();
  }
  const highs = await highsPromise;
  const t0 = performance.now();
  const r = highs.solve(lp, { output_flag: false, time_limit: opts.timeLimitS ?? 60, mip_rel_gap: opts.mipGap ?? 1e-4 });
  const solveS = (performance.now() - t0) / 1000;
  const hasPlan = r.Status === 'Optimal' || (r.Status === 'Time limit reached' && Number.isFinite(r.ObjectiveValue));
  if (!hasPlan) {
    const caps = p.types.filter((t) => t.maxGpus !== undefined).map((t) => `${t.name} ≤ ${t.maxGpus}`).join(', ');
    throw new FleetInputError(`no plan serves the workload (HiGHS: ${r.Status})${caps ? `; the GPU caps are ${caps}` : ''}`);
  }
  const val = (name: string): number => {
    const c = r.Columns[name] as { Primal?: number } | undefined;
    return c?.Primal ?? 0;
  };
  const T = p.types.length;
  const dedicated = p.models.map((_, m) => Array.from({ length: T }, (_, t) => Math.round(val(`x_${m}_${t}`))));
  const poolGpus = Array.from({ length: T }, (_, t) => Math.round(val(`z_${t}`)));
  // Members are the models the group serves slices of (a membership with none costs nothing and means nothing).
  const member = p.models.map((_, m) => Array.from({ length: T }, (_, t) => runs.some((r, b) => r.model === m && Math.round(val(`p_${b}_${t}`)) > 0)));
  // Slices of a bucket, in order, to the options the counts give.
  const sliceTo: IlpSolution['sliceTo'] = [];
  runs.forEach((r, b) => {
    for (let t = 0; t < T; t++) {
      for (let n = Math.round(val(`d_${b}_${t}`)); n > 0; n--) sliceTo.push({ type: t, pool: false });
      for (let n = Math.round(val(`p_${b}_${t}`)); n > 0; n--) sliceTo.push({ type: t, pool: true });
    }
    if (sliceTo.length !== r.first + r.count) throw new Error(`HiGHS returned ${sliceTo.length - r.first} of the ${r.count} slices of bucket ${b}`);
  });
  const gap = r.Status === 'Optimal' ? 0 : Number((r as { Info?: { mip_gap?: number } }).Info?.mip_gap ?? NaN);
  return { dedicated, poolGpus, sliceTo, member, costPerHour: planCost(p, dedicated, poolGpus), status: r.Status, gap, solveS, variables, constraints };
}
