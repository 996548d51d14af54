// A recorded simulator-vs-reality run (bench/fleet/replay.ts) simulated again: its calibration in the cluster's terms,
// its arrivals (as sent, with the token counts the engine saw) through the simulated cluster with the real decide(),
// and the per-path comparison. Shared by replay.ts and run14-reconstruct.ts.
import type { Calibration, ModelShape } from '../../services/fleet/calibration.ts';
import { PREFILL_CHUNK, SimCluster, type Served } from '../../services/simulator/cluster.ts';
import { EventQueue } from '../../services/simulator/events.ts';
import { fleetModelSchema } from '../../services/simulator/fleet-spec.ts';
import { measureRates, median, type MeasuredRates, type MeasuredRequest, type PassFit } from '../../services/simulator/measured-calibration.ts';
import { SwapserveController } from '../../services/simulator/policies.ts';
import type { SimRequest } from '../../services/simulator/trace.ts';

export type Path = 'warm' | 'swap' | 'cold';
export const PATHS: Path[] = ['warm', 'swap', 'cold'];

export interface Real extends MeasuredRequest { headerPath: string }

export type ReplayShape = ModelShape & { dir: string; arena: number };

/**
 * What the real run recorded (field `run` of sim-vs-real.json): enough to simulate it again (`--resimulate FILE`).
 * `warmup`: the requests sent before the measured ones (times negative) to a model of their own, replayed, not compared.
 */
export interface Recorded {
  device: string; compress: number; shapes: ReplayShape[]; gpuBytes: number; hostBytes: number; ids: string[];
  real: Real[]; failures: string[]; sent: SimRequest[]; warmup?: { shape: ReplayShape; real: Real[] };
}

/** The rates a replay simulates with (measured by measureRates, or as a report printed them). */
export interface ReplayRates {
  swapBytesPerS: number;
  diskBytesPerS: number;
  prefill: Map<string, PassFit>;
  step: Map<string, { s: number }>;
}

export function replayCalibration(label: string, gpuBytes: number, r: ReplayRates): Calibration {
  const need = <T>(m: Map<string, T>, name: string, what: string): T => {
    const x = m.get(name);
    if (x === undefined) throw new Error(`model ${name}: no ${what} in the replay's calibration`);
    return x;
  };
  return {
    gpu: label, source: 'measured in a replay run (Server-Timing of swap and cold requests; warm prefills and decodes that ran alone)',
    gpuMemoryBytes: gpuBytes, swapBytesPerS: r.swapBytesPerS, diskBytesPerS: r.diskBytesPerS, pageCacheBytesPerS: r.diskBytesPerS, workerStartS: 0,
    prefillS: (s, t) => { const f = need(r.prefill, s.name, 'prefill pass'); return f.passS + f.tokenS * t; },
    decodeStepS: (s) => need(r.step, s.name, 'decode step').s,
    maxBatch: () => 4,
    engine: { bandwidthBytesPerS: 0, decodeFlopsPerS: 0, prefillFlopsPerS: 0, decodeLayerOverheadS: 0, prefillLayerOverheadS: 0, memoryUtilization: 1, activationReserveBytes: 0, maxBatchCap: 4 },
    file: 'measured in this run',
  };
}

/**
 * The run's answered requests through the simulator: one worker up from the start, the same budgets, the real
 * decide(). Arrivals as sent (times x `timeScale`), tokens as the engine counted them. The worker is up (and its host
 * pool pinned) a while before the first request, as in the real run: arrivals + 2 s.
 */
export function simulateRun(run: Recorded, cal: Calibration, timeScale = 1): SimCluster {
  if (!(timeScale > 0)) throw new Error(`Expected a positive number for timeScale but received ${timeScale}`);
  const shapes = run.warmup ? [...run.shapes, run.warmup.shape] : run.shapes;
  const fleet = shapes.map((s) => fleetModelSchema.parse({ id: s.name, params: Math.round(s.params), weightBytes: s.arena, layers: s.layers, kvBytesPerToken: s.kvBytesPerToken, contextTokens: 2048, sloTtftMs: 60_000, concurrency: 4 }));
  const q = new EventQueue();
  const c = new SimCluster(q, { cal, shapes: new Map(shapes.map((s) => [s.name, s])), concurrency: new Map(shapes.map((s) => [s.name, 4])), weightsBytesPerGpu: run.gpuBytes, hostBytesPerGpu: run.hostBytes, pageCache: false, batchContextTokens: 1 });
  const ctl = new SwapserveController(c, fleet, { maxWorkers: 1, minWorkers: 1, workerIdleMs: 3_600_000 });
  c.controller = ctl;
  c.startWorker('local-0', 1, 0);
  const byId = new Map(run.sent.map((r) => [r.id, r]));
  const warm = run.warmup?.real ?? [];
  const zero = 2000 + Math.max(0, ...warm.map((r) => -r.at * timeScale));
  const sent = [
    ...warm.map((r) => ({ id: r.id, model: r.model, at: zero + r.at * timeScale, promptTokens: r.promptTokens, outputTokens: Math.max(1, r.outputTokens) })),
    ...run.real.map((r) => ({ ...byId.get(r.id)!, at: zero + r.at * timeScale, promptTokens: r.promptTokens, outputTokens: Math.max(1, r.outputTokens) })),
  ].sort((a, b) => a.at - b.at);
  for (const r of sent) q.at(r.at, () => c.arrive(r));
  const tick = (): void => { ctl.onTick(); if (q.now < sent[sent.length - 1].at + 60_000) q.after(1000, tick); };
  q.at(0, tick);
  q.run();
  return c;
}

export interface PathRow { path: Path; realN: number; simN: number; realMedianMs: number; simMedianMs: number; medianDiff: number; countDiff: number; pass: boolean }

/** Per path: counts and TTFT medians (simulated ones + `overheadMs`, what the simulator does not model), against the bars. */
export function comparePaths(real: { path: Path; n: number; medianMs: number }[], sim: Served[], overheadMs: number): PathRow[] {
  return PATHS.map((p) => {
    const r = real.find((x) => x.path === p) ?? { n: 0, medianMs: NaN };
    const ss = sim.filter((s) => s.path === p);
    const ms = median(ss.map((s) => s.ttftMs + (Number.isFinite(overheadMs) ? overheadMs : 0)));
    const dMed = Math.abs(ms - r.medianMs) / r.medianMs, dN = Math.abs(ss.length - r.n) / Math.max(1, r.n);
    return { path: p, realN: r.n, simN: ss.length, realMedianMs: r.medianMs, simMedianMs: ms, medianDiff: dMed, countDiff: dN, pass: dMed <= 0.15 && dN <= 0.10 };
  });
}

/** Per path, over requests both put on it: the median |simulated - real| TTFT (ms) and how many there were. */
export function perRequestError(real: Real[], sim: Served[], overheadMs: number): Record<Path, { n: number; medianAbsMs: number }> {
  const byId = new Map(sim.map((s) => [s.id, s]));
  const out = {} as Record<Path, { n: number; medianAbsMs: number }>;
  for (const p of PATHS) {
    const d = real.filter((r) => r.path === p && byId.get(r.id)?.path === p).map((r) => Math.abs(byId.get(r.id)!.ttftMs + overheadMs - r.ttftMs));
    out[p] = { n: d.length, medianAbsMs: median(d) };
  }
  return out;
}

export const tableLines = (rows: PathRow[]): string[] => {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
  return ['| path | real n | sim n | count diff | real TTFT median | sim TTFT median | median diff | within bars (15% / 10%) |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.path} | ${r.realN} | ${r.simN} | ${(r.countDiff * 100).toFixed(1)}% | ${f(r.realMedianMs)} ms | ${f(r.simMedianMs)} ms | ${(r.medianDiff * 100).toFixed(1)}% | ${r.pass ? 'yes' : 'NO'} |`)];
};

/** What `resimulate` found: the rates the run measured, the calibration and cluster it simulated with, the comparison. */
export interface Resimulated {
  rates: MeasuredRates; cal: Calibration; cluster: SimCluster; overheadMs: number; rows: PathRow[];
  perRequest: Record<Path, { n: number; medianAbsMs: number }>;
}

/**
 * A recorded run against the simulator: the calibration measured from its own rows (windows in which only the priced
 * work ran: services/simulator/measured-calibration.ts), its arrivals (warm-up included) through the simulated
 * cluster, and the per-path comparison of its measured requests (the warm-up's left out).
 * @throws Error when the run cannot calibrate a model (no request of it ran alone).
 */
export function resimulate(run: Recorded, label: string): Resimulated {
  const rates = measureRates(run.real, run.shapes, PREFILL_CHUNK);
  // The warm-up model (two layers of the same widths) is priced as the shallowest measured model, per layer: it only
  // decides when the warm-up's own requests end, a second before the measured arrivals.
  const w = run.warmup;
  if (w) {
    const ref = [...run.shapes].sort((a, b) => a.layers - b.layers)[0];
    const k = w.shape.layers / ref.layers, pf = rates.prefill.get(ref.name)!;
    rates.prefill.set(w.shape.name, { passS: pf.passS * k, tokenS: pf.tokenS * k, samples: 0 });
    rates.step.set(w.shape.name, { s: rates.step.get(ref.name)!.s * k, samples: 0 });
  }
  const cal = replayCalibration(label, run.gpuBytes, rates);
  const cluster = simulateRun(run, cal);
  // What the simulator does not model: gateway, enqueue, the worker's pickup and the first chunk's way back. Measured
  // on the run's warm requests (client TTFT - the server's own TTFT) and added to every simulated TTFT.
  const overheadMs = median(run.real.filter((r) => r.path === 'warm').map((r) => r.ttftMs - (r.timing.ttft_ms ?? 0)));
  const served = cluster.served.filter((x) => x.model !== w?.shape.name);
  const real = (p: Path) => run.real.filter((r) => r.path === p);
  const rows = comparePaths(PATHS.map((p) => ({ path: p, n: real(p).length, medianMs: median(real(p).map((r) => r.ttftMs)) })), served, overheadMs);
  return { rates, cal, cluster, overheadMs, rows, perRequest: perRequestError(run.real, served, overheadMs) };
}
