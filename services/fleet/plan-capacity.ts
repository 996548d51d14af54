// What one GPU instance of a type can serve of one model's request-size bucket inside its SLOs, and the planning problem built from it.
import { engineModel, FleetInputError, type Calibration, type EngineModel, type ModelShape } from './calibration.ts';
import type { Bucket, PlanInput, PlanModel, PriceList } from './plan-input.ts';

/**
 * Steady state of continuous batching with B sequences of a bucket (I prompt, O output tokens) on one instance:
 *   d(B)    = decodeStepS(B, I + O/2)                 one decode step (s)
 *   P       = prefillS(I)                             one prefill (s), which stalls the decode steps while it runs
 *   rate(B) = B / (O·d(B) + B·P)                      each request costs O/B decode steps plus its own prefill
 *   TPOT(B) = d(B) + B·P/O                            a step, plus the prefills of the B new requests spread over O steps
 *   TTFT(B) = P + d(B) + u·P / (2(1 − u)), u = rate·P the prefill, the step it waits for, M/D/1 queueing of prefills
 * The capacity is the largest rate(B) over 1 ≤ B ≤ maxBatch(I + O) with TPOT(B) ≤ the TPOT SLO and TTFT(B) ≤ the
 * TTFT SLO (0: not even B = 1 fits, or the weights do not fit).
 */
export interface BucketCapacity {
  /** Requests/s one instance serves inside the SLOs (0: cannot serve). */
  ratePerS: number;
  /** The batch size that gives it. */
  batch: number;
  tpotS: number;
  ttftS: number;
}

export function bucketCapacity(engine: EngineModel, model: ModelShape, b: Pick<Bucket, 'inputTokens' | 'outputTokens'>, sloTtftS: number, sloTpotS: number): BucketCapacity {
  const none: BucketCapacity = { ratePerS: 0, batch: 0, tpotS: Infinity, ttftS: Infinity };
  const maxB = engine.maxBatch(model, b.inputTokens + b.outputTokens);
  const P = engine.prefillS(model, b.inputTokens);
  const O = b.outputTokens;
  let best = none;
  for (let B = 1; B <= maxB; B++) {
    const d = engine.decodeStepS(model, B, b.inputTokens + O / 2);
    const rate = B / (O * d + B * P);
    const u = rate * P;
    const tpot = d + (B * P) / O;
    const ttft = P + d + (u < 1 ? (u * P) / (2 * (1 - u)) : Infinity);
    if (tpot > sloTpotS) break; // TPOT grows with B
    if (ttft <= sloTtftS && rate > best.ratePerS) best = { ratePerS: rate, batch: B, tpotS: tpot, ttftS: ttft };
  }
  return best;
}

/** A GPU type as the planner sees it: its price and calibration, scaled to k-GPU instances where a model needs them. */
export interface PlanGpuType {
  name: string;
  pricePerGpuHour: number;
  calibration: Calibration;
  maxGpus?: number;
  /** Pinned host RAM each worker of a swap group has for its group's models (bytes). */
  hostBytesPerWorker: number;
  /** MPS load factor for pooled models (1: off). */
  mpsLoadFactor: number;
  /** Workers per GPU of the type's swap group: the calibration's `mps.workers` when mps is on, else 1. @defaultValue 1 */
  mpsWorkers?: number;
  /** Share of k GPUs' rates a k-GPU instance gets. */
  tensorParallelEfficiency: number;
  /** GPU bytes one worker has for weights + KV (memoryUtilization × memory − activation reserve). */
  usableGpuBytes: number;
}

/** The planning problem, in the form both the ILP and the brute-force check read. */
export interface PlanProblem {
  types: PlanGpuType[];
  models: Array<{ id: string; weightBytes: number; ratePerS: number }>;
  /** A slice of one bucket's rate. */
  slices: Array<{ model: number; bucket: number; ratePerS: number }>;
  /** [model][type]: GPUs per dedicated instance (0: the model cannot be served on this type within its SLOs). */
  instanceGpus: number[][];
  /** [slice][type]: share of one dedicated instance the slice takes (Infinity: this type cannot serve it). */
  dedicatedLoad: number[][];
  /** [model][type]: whether the model may join the type's swap group (one GPU holds it, its swap TTFT fits its SLO). */
  poolOk: boolean[][];
  /** [slice][type]: share of one GPU of the swap group the slice takes. */
  poolLoad: number[][];
  /** [model][type]: share of one GPU its swap-ins take in the swap group (swaps/s × swap s). */
  swapLoad: number[][];
  /** [model][type]: GPU bytes a swap-group member holds on average: weights × share of time resident + KV of its requests in flight. */
  residentBytes: number[][];
  /** [model][type]: expected TTFT of a request that has to swap the model in (s). */
  swapTtftS: number[][];
  /** [model]: share of its requests that find it swapped out when in a swap group (Poisson arrivals). */
  swapShare: number[];
  headroom: number;
  /** [model][bucket][type]: the capacity behind the loads (for the report). */
  capacity: BucketCapacity[][][];
}

/** The engine of a k-GPU instance: bandwidth, FLOP/s and memory × k × efficiency (tensor parallel, assumed). */
export function instanceEngine(c: Calibration, k: number, efficiency: number): EngineModel {
  if (k === 1) return c;
  const f = k * efficiency;
  return engineModel({ ...c.engine, bandwidthBytesPerS: c.engine.bandwidthBytesPerS * f, decodeFlopsPerS: c.engine.decodeFlopsPerS * f,
    prefillFlopsPerS: c.engine.prefillFlopsPerS * f, activationReserveBytes: c.engine.activationReserveBytes * k }, c.gpuMemoryBytes * k);
}

const shapeOf = (m: PlanModel): ModelShape => ({ name: m.id, params: m.params, weightBytes: m.weightBytes, layers: m.layers, kvBytesPerToken: m.kvBytesPerToken });

/** Builds the planning problem; throws FleetInputError naming the GPU type or the model that makes it impossible. */
export function buildProblem(input: PlanInput, prices: PriceList, calibrations: Record<string, Calibration>): PlanProblem {
  const o = input.options;
  const types: PlanGpuType[] = input.gpus.map((g) => {
    const price = prices.prices.find((p) => p.gpu === g.type);
    if (!price) throw new FleetInputError(`GPU type "${g.type}" has no price in the price list (it lists ${prices.prices.map((p) => p.gpu).join(', ')})`);
    const calibration = calibrations[g.type];
    if (!calibration) throw new FleetInputError(`GPU type "${g.type}" has no calibration`);
    let mpsLoadFactor = 1, mpsWorkers = 1;
    if (g.mps) {
      if (!calibration.mps) throw new FleetInputError(`GPU type "${g.type}": mps is on but its calibration ${calibration.file} has no measured mps section (measure co-location on this GPU type first: swapserve bench mps, then add its load factor as the calibration's mps section)`);
      mpsLoadFactor = calibration.mps.loadFactor;
      mpsWorkers = calibration.mps.workers;
    }
    const usableGpuBytes = calibration.gpuMemoryBytes * calibration.engine.memoryUtilization - calibration.engine.activationReserveBytes;
    return { name: g.type, pricePerGpuHour: price.perGpuHourUsd, calibration, maxGpus: g.max, hostBytesPerWorker: g.hostBytesPerNode / g.gpusPerNode,
      mpsLoadFactor, mpsWorkers, usableGpuBytes, tensorParallelEfficiency: g.tensorParallelEfficiency ?? o.tensorParallelEfficiency };
  });
  const sizes = [...new Set(o.instanceSizes)].sort((a, b) => a - b);
  const models = input.models.map((m) => ({ id: m.id, weightBytes: m.weightBytes, ratePerS: m.workload.reduce((s, b) => s + b.ratePerS, 0) }));
  const slices: PlanProblem['slices'] = [];
  input.models.forEach((m, mi) => m.workload.forEach((b, bi) => {
    for (let k = 0; k < o.slicesPerBucket; k++) slices.push({ model: mi, bucket: bi, ratePerS: b.ratePerS / o.slicesPerBucket });
  }));
  const instanceGpus: number[][] = [];
  const capacity: BucketCapacity[][][] = [];
  const poolOk: boolean[][] = [];
  const swapLoad: number[][] = [];
  const swapTtftS: number[][] = [];
  const residentBytes: number[][] = [];
  const swapShare = models.map((m) => Math.exp(-m.ratePerS * o.keepResidentS));
  input.models.forEach((m, mi) => {
    const shape = shapeOf(m);
    const ttft = m.sloTtftMs / 1000, tpot = m.sloTpotMs / 1000;
    instanceGpus[mi] = []; capacity[mi] = m.workload.map(() => []);
    poolOk[mi] = []; swapLoad[mi] = []; swapTtftS[mi] = []; residentBytes[mi] = [];
    types.forEach((t, ti) => {
      // The fewest GPUs per instance that serve every bucket of the model inside its SLOs.
      let k = 0, caps: BucketCapacity[] = [];
      for (const size of sizes) {
        const eng = instanceEngine(t.calibration, size, t.tensorParallelEfficiency);
        caps = m.workload.map((b) => bucketCapacity(eng, shape, b, ttft, tpot));
        if (caps.every((c) => c.ratePerS > 0)) { k = size; break; }
      }
      instanceGpus[mi][ti] = k;
      m.workload.forEach((_, bi) => { capacity[mi][bi][ti] = k > 0 ? caps[bi] : { ratePerS: 0, batch: 0, tpotS: Infinity, ttftS: Infinity }; });
      // A swap group is one GPU per worker: the model swaps in whole over that GPU's host link.
      const swapS = m.weightBytes / t.calibration.swapBytesPerS;
      const worst = Math.max(...m.workload.map((b) => t.calibration.prefillS(shape, b.inputTokens) + t.calibration.decodeStepS(shape, 1, b.inputTokens)));
      swapTtftS[mi][ti] = swapS + worst;
      const fitsHost = m.weightBytes <= t.hostBytesPerWorker;
      poolOk[mi][ti] = k === 1 && swapTtftS[mi][ti] <= ttft && fitsHost;
      swapLoad[mi][ti] = models[mi].ratePerS * swapShare[mi] * swapS;
      // Little's law: sequences in flight = rate × time in the system (TTFT + output × TPOT), each holding its context's KV.
      const kv = m.workload.reduce((a, b, bi) => {
        const c = capacity[mi][bi][ti];
        return c.ratePerS > 0 ? a + b.ratePerS * (c.ttftS + b.outputTokens * c.tpotS) * (b.inputTokens + b.outputTokens) * m.kvBytesPerToken : a;
      }, 0);
      residentBytes[mi][ti] = m.weightBytes * (1 - swapShare[mi]) + kv;
    });
    if (instanceGpus[mi].every((k) => k === 0)) {
      const why = types.map((t) => `${t.name}: ${whyNot(t, m, sizes)}`).join('; ');
      throw new FleetInputError(`model "${m.id}" cannot be served within its SLOs (TTFT ${m.sloTtftMs} ms, TPOT ${m.sloTpotMs} ms) on any GPU type: ${why}`);
    }
  });
  const dedicatedLoad = slices.map((s) => types.map((_, ti) => {
    const c = capacity[s.model][s.bucket][ti];
    return c.ratePerS > 0 ? s.ratePerS / c.ratePerS : Infinity;
  }));
  const poolLoad = slices.map((s) => types.map((t, ti) => {
    const c = capacity[s.model][s.bucket][ti]; // a swap group's GPU serves one model at a time, as a dedicated one
    return poolOk[s.model][ti] && c.ratePerS > 0 ? (s.ratePerS / c.ratePerS) * t.mpsLoadFactor : Infinity;
  }));
  return { types, models, slices, instanceGpus, dedicatedLoad, poolOk, poolLoad, swapLoad, residentBytes, swapTtftS, swapShare, headroom: o.headroom, capacity };
}

function whyNot(t: PlanGpuType, m: PlanModel, sizes: number[]): string {
  const shape = shapeOf(m);
  const k = sizes[sizes.length - 1];
  const eng = instanceEngine(t.calibration, k, t.tensorParallelEfficiency);
  const b = m.workload.reduce((a, x) => (x.inputTokens + x.outputTokens > a.inputTokens + a.outputTokens ? x : a));
  if (eng.maxBatch(shape, b.inputTokens + b.outputTokens) === 0) return `weights + KV of ${b.inputTokens + b.outputTokens} tokens do not fit ${k} GPU(s)`;
  const P = eng.prefillS(shape, b.inputTokens), d = eng.decodeStepS(shape, 1, b.inputTokens + b.outputTokens / 2);
  return `on ${k} GPU(s) a lone ${b.inputTokens}/${b.outputTokens}-token request takes TTFT ${(1000 * (P + d)).toFixed(0)} ms, TPOT ${(1000 * (d + P / b.outputTokens)).toFixed(1)} ms`;
}
