// One replay of a trace under one policy on the simulated cluster, and what it measured: GPU-hours, TTFT per path,
// SLO attainment, moves per hour, host RAM, and the series the pictures draw.
import type { PolicyConfig } from '../scheduler/policy.ts';
import type { ServePath } from '../../contracts/vocab.ts';
import type { Calibration } from '../fleet/calibration.ts';
import { SimCluster, type ClusterSettings, type Controller } from './cluster.ts';
import { EventQueue } from './events.ts';
import { shapeOf, type Fleet } from './fleet-spec.ts';
import { AlwaysWarmController, gpusFor, LruController, ScaleToZeroController, SwapserveController } from './policies.ts';
import type { Replay } from './trace.ts';

export const POLICIES = ['always-warm', 'scale-to-zero', 'lru-swap', 'swapserve'] as const;
export type PolicyName = (typeof POLICIES)[number];

/** One policy at one setting of its knob. */
export type RunSpec =
  | { policy: 'always-warm' }
  | { policy: 'scale-to-zero'; idleMs: number }
  | { policy: 'lru-swap'; workers: number }
  | { policy: 'swapserve'; config: Partial<PolicyConfig> };

export interface ClusterOptions {
  /** Context (tokens) per sequence when a replica's batch is sized from its free KV memory. @defaultValue 2048 */
  batchContextTokens: number;
  /** Pinned host RAM per GPU (bytes). @defaultValue 256e9 */
  hostBytesPerGpu: number;
  /** Re-reads of recently read files come from the page cache. @defaultValue true */
  pageCache: boolean;
  /** Policy tick period (ms), as the scheduler's `tickMs`. @defaultValue 1000 */
  tickMs: number;
}

export const CLUSTER_DEFAULTS: ClusterOptions = { batchContextTokens: 2048, hostBytesPerGpu: 256e9, pageCache: true, tickMs: 1000 };

export const PATHS: ServePath[] = ['warm', 'swap', 'cold'];

export interface RunResult {
  label: string;
  policy: PolicyName;
  knob: string;
  requests: number;
  served: number;
  gpuHours: number;
  /** Share of requests whose TTFT was within their model's SLO (unserved ones count as misses). */
  sloAttainment: number;
  paths: Record<ServePath, { n: number; p50Ms: number; p99Ms: number }>;
  ttftP50Ms: number;
  ttftP99Ms: number;
  /** Requests outside their SLO, by path (unserved ones under 'unserved'): what limits attainment. */
  misses: Record<ServePath | 'unserved', number>;
  swapsPerHour: number;
  coldStartsPerHour: number;
  workerStartsPerHour: number;
  peakHostBytes: number;
  peakGpus: number;
  /** GPUs held over time: [ms, gpus] at every change. */
  gpuSeries: [number, number][];
  /** Sorted TTFTs (ms), thinned to at most 500 points, for the CDF. */
  ttftCdf: number[];
  /** Policy decisions made (swapserve only) and the simulator's wall time (ms). */
  decisions: number;
  wallMs: number;
}

export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function describe(spec: RunSpec): string {
  switch (spec.policy) {
    case 'always-warm': return 'peak-sized';
    case 'scale-to-zero': return `idle ${spec.idleMs / 1000} s`;
    case 'lru-swap': return `${spec.workers} workers`;
    case 'swapserve': {
      const { maxWorkers, workerIdleMs, ...rest } = spec.config;
      return [maxWorkers !== undefined ? `≤ ${maxWorkers} workers` : '', workerIdleMs !== undefined ? `idle ${workerIdleMs / 1000} s` : '',
        ...Object.entries(rest).map(([k, v]) => `${k}=${v}`)].filter((x) => x !== '').join(', ') || 'defaults';
    }
  }
}

export function runOnce(spec: RunSpec, fleet: Fleet, replay: Replay, cal: Calibration, o: ClusterOptions): RunResult {
  const t0 = performance.now();
  const q = new EventQueue();
  const settings: ClusterSettings = {
    cal, shapes: new Map(fleet.models.map((m) => [m.id, shapeOf(m)])), concurrency: new Map(fleet.models.map((m) => [m.id, m.concurrency])),
    weightsBytesPerGpu: cal.gpuMemoryBytes * cal.engine.memoryUtilization - cal.engine.activationReserveBytes,
    batchContextTokens: o.batchContextTokens, hostBytesPerGpu: o.hostBytesPerGpu, pageCache: o.pageCache,
  };
  const c = new SimCluster(q, settings);
  let ctl: Controller;
  if (spec.policy === 'always-warm') ctl = new AlwaysWarmController(c, fleet.models, replay.requests);
  else if (spec.policy === 'scale-to-zero') ctl = new ScaleToZeroController(c, fleet.models, spec.idleMs);
  else if (spec.policy === 'lru-swap') ctl = new LruController(c, fleet.models, spec.workers, Math.max(...fleet.models.map((m) => gpusFor(c, m.id))));
  else ctl = new SwapserveController(c, fleet.models, spec.config);
  c.controller = ctl;
  const reqs = replay.requests;
  let next = 0;
  const arrive = (): void => {
    c.arrive(reqs[next++]);
    if (next < reqs.length) q.at(reqs[next].at, arrive);
  };
  if (reqs.length > 0) q.at(reqs[0].at, arrive);
  // Ticks while anything is held or waiting; an empty cluster sleeps until the next arrival.
  const tick = (): void => {
    ctl.onTick();
    let waiting = false;
    for (const m of c.queues.keys()) if (c.waitingOf(m).waiting + c.waitingOf(m).active > 0) waiting = true;
    if (next >= reqs.length && !waiting && (c.workers.size === 0 || q.now > replay.spanMs)) return;
    if (c.workers.size === 0 && !waiting && next < reqs.length) q.at(Math.max(q.now + o.tickMs, reqs[next].at), tick);
    else q.after(o.tickMs, tick);
  };
  q.at(0, tick);
  q.run();

  const end = replay.spanMs;
  const slo = new Map(fleet.models.map((m) => [m.id, m.sloTtftMs]));
  let gpuMs = 0;
  const edges: [number, number][] = [];
  for (const w of c.history) {
    const a = Math.min(w.startedAt, end), b = Math.min(w.releasedAt, end);
    gpuMs += w.gpus * Math.max(0, b - a);
    edges.push([w.startedAt, w.gpus], [Math.min(w.releasedAt, end), -w.gpus]);
  }
  edges.sort((x, y) => x[0] - y[0]);
  const gpuSeries: [number, number][] = [];
  let g = 0, peakGpus = 0;
  for (const [t, d] of edges) {
    if (t > end) break;
    g += d;
    peakGpus = Math.max(peakGpus, g);
    if (gpuSeries.length > 0 && gpuSeries[gpuSeries.length - 1][0] === t) gpuSeries[gpuSeries.length - 1][1] = g;
    else gpuSeries.push([t, g]);
  }
  let within = 0;
  const byPath = new Map<ServePath, number[]>(PATHS.map((p) => [p, []]));
  const all: number[] = [];
  const misses: RunResult['misses'] = { warm: 0, swap: 0, cold: 0, unserved: reqs.length - c.served.length };
  for (const s of c.served) {
    if (s.ttftMs <= slo.get(s.model)!) within++;
    else misses[s.path]++;
    byPath.get(s.path)!.push(s.ttftMs);
    all.push(s.ttftMs);
  }
  const sorted = Float64Array.from(all).sort();
  const paths = {} as RunResult['paths'];
  for (const [p, l] of byPath) {
    const s = Float64Array.from(l).sort();
    paths[p] = { n: s.length, p50Ms: pct(s, 50), p99Ms: pct(s, 99) };
  }
  const hours = end / 3.6e6;
  const step = Math.max(1, Math.floor(sorted.length / 500));
  const ttftCdf: number[] = [];
  for (let i = 0; i < sorted.length; i += step) ttftCdf.push(sorted[i]);
  if (sorted.length > 0) ttftCdf.push(sorted[sorted.length - 1]);
  return {
    label: `${spec.policy} (${describe(spec)})`, policy: spec.policy, knob: describe(spec), requests: reqs.length, served: c.served.length,
    gpuHours: gpuMs / 3.6e6, sloAttainment: reqs.length ? within / reqs.length : 1, paths,
    ttftP50Ms: pct(sorted, 50), ttftP99Ms: pct(sorted, 99), misses,
    swapsPerHour: c.moves.swap_in / hours, coldStartsPerHour: (c.moves.load + c.moves.load_to_gpu) / hours, workerStartsPerHour: c.moves.workerStarts / hours,
    peakHostBytes: c.peakHostBytes, peakGpus, gpuSeries, ttftCdf,
    decisions: ctl instanceof SwapserveController ? ctl.decisions : 0, wallMs: performance.now() - t0,
  };
}
