// GPU calibration files (bench/results/profiles/*.json): zod schema, loader, and the roofline engine-time model fitted to measurements.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { SwapserveError } from '../../contracts/errors.ts';

/** A model as the fleet tools see it: enough to time its passes and its moves. */
export interface ModelShape {
  name: string;
  /** Parameter count (FLOPs per token ≈ 2 × params). */
  params: number;
  /** Bytes of weights moved by a swap and streamed by each decode step (bytes). */
  weightBytes: number;
  /** Transformer layers (per-layer launch overheads scale with it). */
  layers: number;
  /** KV cache bytes one token of context takes across all layers (bytes). */
  kvBytesPerToken: number;
}

export interface GpuCalibration {
  gpu: string;
  /** Where the numbers come from (measured file / datasheet-derived). */
  source: string;
  /** The GPU's memory (bytes). */
  gpuMemoryBytes: number;
  /** Pinned host → GPU copy rate (bytes/s). */
  swapBytesPerS: number;
  /** Disk → pinned host, page cache dropped, through swapserve's loader (bytes/s). */
  diskBytesPerS: number;
  /** Disk → pinned host, files in the page cache (bytes/s). */
  pageCacheBytesPerS: number;
  /** A worker started from zero: request → process start → ready → first load command (s). */
  workerStartS: number;
  /** On-demand list price of one GPU (USD/h); the plan's price file overrides it. */
  pricePerHourUsd?: number;
}

export interface EngineModel {
  /** One prompt's prefill (s). */
  prefillS(model: ModelShape, tokens: number): number;
  /** One decode step of `batch` sequences with `meanContextTokens` of context each (s). */
  decodeStepS(model: ModelShape, batch: number, meanContextTokens: number): number;
  /** Sequences of `contextTokens` whose KV cache fits beside the weights on this GPU (0: the weights do not fit). */
  maxBatch(model: ModelShape, contextTokens: number): number;
}

/** The fitted effective rates behind the engine model (what a report prints). */
export interface EngineFit {
  /** Rate at which weights and KV are streamed in a decode step (bytes/s). */
  bandwidthBytesPerS: number;
  /** Effective rate of the per-sequence work a decode step adds (FLOP/s). */
  decodeFlopsPerS: number;
  /** Effective rate of prefill (FLOP/s). */
  prefillFlopsPerS: number;
  /** Fixed cost per layer of a decode step: launches, synchronisation (s). */
  decodeLayerOverheadS: number;
  /** Fixed cost per layer of a prefill (s). */
  prefillLayerOverheadS: number;
  /** Share of GPU memory the engine may use for weights + KV (0..1). */
  memoryUtilization: number;
  /** Bytes kept back for activations and scratch (bytes). */
  activationReserveBytes: number;
  /** Most sequences one engine batches, whatever the memory. */
  maxBatchCap: number;
}

/**
 * Measured gain of co-locating small models under MPS: their loads add up times this factor (< 1 pays), with
 * `workers` engines sharing the GPU (what `swapserve up --plan` then starts per GPU of the group).
 */
export interface MpsCalibration { loadFactor: number; workers: number; source: string }

export type Calibration = GpuCalibration & EngineModel & { engine: EngineFit; file: string; mps?: MpsCalibration };

/** Bad calibration or plan input: the message names the file and the field. */
export class FleetInputError extends SwapserveError<'calibration_invalid'> {
  override name = 'FleetInputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('calibration_invalid', message, options);
  }
}

const positive = z.number().positive();
const src = z.string().min(1);

export const modelShapeSchema = z.object({
  name: z.string().min(1),
  params: positive,
  weightBytes: positive,
  layers: z.number().int().positive(),
  kvBytesPerToken: positive,
}).strict();

const datasheetSchema = z.object({
  /** Vendor HBM/GDDR bandwidth (bytes/s). */
  memoryBandwidthBytesPerS: positive,
  /** Vendor dense bf16 tensor rate, without sparsity (FLOP/s). */
  bf16FlopsPerS: positive,
  /** Host link's theoretical rate per direction, e.g. PCIe Gen5 x16 = 64e9 (bytes/s). */
  hostLinkBytesPerS: positive,
  source: src,
}).strict();

/** Defaults of the memory knobs, merged in one place. */
export const ENGINE_DEFAULTS = {
  /** @defaultValue 0.9 (vLLM's gpu_memory_utilization default) */
  memoryUtilization: 0.9,
  /** @defaultValue 2 GiB */
  activationReserveBytes: 2 * 1024 ** 3,
  /** @defaultValue 256 (vLLM's max_num_seqs default) */
  maxBatchCap: 256,
} as const;

const memoryKnobs = {
  memoryUtilization: z.number().gt(0).max(1).optional(),
  activationReserveBytes: z.number().nonnegative().optional(),
  maxBatchCap: z.number().int().positive().optional(),
};

const measuredEngineSchema = z.object({
  kind: z.literal('measured'),
  /** Measured device-to-device copy rate: the stream rate of weights in a decode step (bytes/s). */
  memoryBandwidthBytesPerS: positive,
  bandwidthSource: src,
  datasheet: datasheetSchema,
  /** The model the points below were measured on. */
  referenceModel: modelShapeSchema,
  decode: z.array(z.object({ batch: z.number().int().positive(), contextTokens: positive, stepS: positive, source: src }).strict()).min(2),
  prefill: z.array(z.object({ tokens: z.number().int().positive(), s: positive, source: src }).strict()).min(2),
  ...memoryKnobs,
}).strict();

const derivedEngineSchema = z.object({
  kind: z.literal('datasheet-derived'),
  datasheet: datasheetSchema,
  /** A measured calibration file (relative to this one) whose efficiencies against its own datasheet are applied here. */
  efficiencyFrom: z.string().min(1),
  ...memoryKnobs,
}).strict();

export const calibrationFileSchema = z.object({
  gpu: z.string().min(1),
  source: src,
  gpuMemoryBytes: positive,
  /** Omitted in a datasheet-derived file: the reference's link efficiency × this GPU's host link. */
  swapBytesPerS: positive.optional(),
  /** Host-side rates and worker start: omitted → the reference file's (same kind of host assumed). */
  diskBytesPerS: positive.optional(),
  pageCacheBytesPerS: positive.optional(),
  workerStartS: z.number().nonnegative().optional(),
  pricePerHourUsd: z.number().nonnegative().optional(),
  /** Where each top-level number comes from, by field name. */
  sources: z.record(z.string(), src),
  /**
   * Only where measured (`swapserve bench mps` on this GPU type; no shipped profile has it yet): the load factor of
   * `workers` engines co-located under MPS. @defaultValue workers 2 (the pair bench mps measures)
   */
  mps: z.object({ loadFactor: z.number().gt(0).max(1), workers: z.number().int().min(2).max(8).default(2), source: src }).strict().optional(),
  engine: z.discriminatedUnion('kind', [measuredEngineSchema, derivedEngineSchema]),
}).strict();
export type CalibrationFile = z.infer<typeof calibrationFileSchema>;

/**
 * Least squares for y = a·x1 + b·x2 over rows [x1, x2, y] with a ≥ 0 (non-negative least squares: where the free fit
 * puts the fixed cost a below zero, the best fit with a = 0 is b = Σx2·y / Σx2²); b must come out positive. A measured
 * file's bandwidth is the batch-1 step's own rate, so its decode points leave no fixed cost at batch 1, and the free
 * fit's a lands just below zero (an H100 profile, 2026-12-07: −2.7 µs a layer).
 */
export function fit2(rows: Array<[number, number, number]>, what: string): [number, number] {
  let s11 = 0, s12 = 0, s22 = 0, s1y = 0, s2y = 0;
  for (const [x1, x2, y] of rows) { s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; s1y += x1 * y; s2y += x2 * y; }
  const det = s11 * s22 - s12 * s12;
  if (Math.abs(det) <= 1e-12 * s11 * s22) throw new FleetInputError(`${what}: the points cannot separate the fixed and the per-unit cost (give two different sizes)`);
  let a = (s1y * s22 - s2y * s12) / det;
  let b = (s2y * s11 - s1y * s12) / det;
  if (a < 0) { a = 0; b = s2y / s22; }
  if (!(a >= 0) || !(b > 0)) throw new FleetInputError(`${what}: the points give a negative or zero cost (fixed ${a}, per unit ${b}); check them`);
  return [a, b];
}

/** Fits the effective rates of a measured engine section. */
export function fitEngine(e: z.infer<typeof measuredEngineSchema>, file = 'calibration'): EngineFit {
  const m = e.referenceModel;
  const bw = e.memoryBandwidthBytesPerS;
  const flopsPerToken = 2 * m.params;
  // decode step − stream time = overheadPerLayer·layers + batch·flopsPerToken / decodeFlops
  const [decodeLayer, invDecodeFlops] = fit2(e.decode.map((p) => [m.layers, p.batch * flopsPerToken,
    p.stepS - (m.weightBytes + p.batch * p.contextTokens * m.kvBytesPerToken) / bw]), `${file}: engine.decode`);
  // prefill = overheadPerLayer·layers + tokens·flopsPerToken / prefillFlops
  const [prefillLayer, invPrefillFlops] = fit2(e.prefill.map((p) => [m.layers, p.tokens * flopsPerToken, p.s]), `${file}: engine.prefill`);
  return {
    bandwidthBytesPerS: bw, decodeFlopsPerS: 1 / invDecodeFlops, prefillFlopsPerS: 1 / invPrefillFlops,
    decodeLayerOverheadS: decodeLayer, prefillLayerOverheadS: prefillLayer,
    ...knobs(e),
  };
}

function knobs(e: { memoryUtilization?: number; activationReserveBytes?: number; maxBatchCap?: number }) {
  return {
    memoryUtilization: e.memoryUtilization ?? ENGINE_DEFAULTS.memoryUtilization,
    activationReserveBytes: e.activationReserveBytes ?? ENGINE_DEFAULTS.activationReserveBytes,
    maxBatchCap: e.maxBatchCap ?? ENGINE_DEFAULTS.maxBatchCap,
  };
}

/** The engine model of a fit on a GPU of `gpuMemoryBytes`. */
export function engineModel(fit: EngineFit, gpuMemoryBytes: number): EngineModel {
  return {
    prefillS: (m, tokens) => m.layers * fit.prefillLayerOverheadS + (2 * m.params * tokens) / fit.prefillFlopsPerS,
    decodeStepS: (m, batch, ctx) => m.layers * fit.decodeLayerOverheadS
      + (m.weightBytes + batch * ctx * m.kvBytesPerToken) / fit.bandwidthBytesPerS
      + (batch * 2 * m.params) / fit.decodeFlopsPerS,
    maxBatch: (m, ctx) => {
      const room = gpuMemoryBytes * fit.memoryUtilization - fit.activationReserveBytes - m.weightBytes;
      if (room <= 0) return 0;
      return Math.min(fit.maxBatchCap, Math.floor(room / (Math.max(1, ctx) * m.kvBytesPerToken)));
    },
  };
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FleetInputError(`cannot read calibration file ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FleetInputError(`calibration file ${path} is not JSON: ${(e as Error).message}`);
  }
}

/** Validates a parsed calibration object; the message lists every bad field with its path. */
export function parseCalibrationFile(raw: unknown, path: string): CalibrationFile {
  const r = calibrationFileSchema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new FleetInputError(`invalid calibration file ${path}:\n${lines.join('\n')}`);
  }
  return r.data;
}

/** Loads a calibration file (following a datasheet-derived file to its measured reference); throws FleetInputError. */
export function loadCalibration(path: string, seen: string[] = []): Calibration {
  const file = resolve(path);
  if (seen.includes(file)) throw new FleetInputError(`calibration file ${file}: efficiencyFrom loops (${[...seen, file].join(' → ')})`);
  const c = parseCalibrationFile(readJson(file), file);
  let fit: EngineFit;
  let swap = c.swapBytesPerS;
  let host = { diskBytesPerS: c.diskBytesPerS, pageCacheBytesPerS: c.pageCacheBytesPerS, workerStartS: c.workerStartS };
  if (c.engine.kind === 'measured') {
    fit = fitEngine(c.engine, `calibration file ${file}`);
    const missing = (['swapBytesPerS', 'diskBytesPerS', 'pageCacheBytesPerS', 'workerStartS'] as const).filter((k) => c[k] === undefined);
    if (missing.length) throw new FleetInputError(`calibration file ${file}: a measured file must give ${missing.join(', ')}`);
  } else {
    const refPath = resolve(dirname(file), c.engine.efficiencyFrom);
    const ref = loadCalibration(refPath, [...seen, file]);
    const refRaw = parseCalibrationFile(readJson(refPath), refPath);
    const refSheet = refRaw.engine.datasheet;
    const sheet = c.engine.datasheet;
    // Efficiencies measured on the reference GPU, applied to this GPU's datasheet; overheads per layer kept.
    fit = {
      ...ref.engine,
      bandwidthBytesPerS: sheet.memoryBandwidthBytesPerS * (ref.engine.bandwidthBytesPerS / refSheet.memoryBandwidthBytesPerS),
      decodeFlopsPerS: sheet.bf16FlopsPerS * (ref.engine.decodeFlopsPerS / refSheet.bf16FlopsPerS),
      prefillFlopsPerS: sheet.bf16FlopsPerS * (ref.engine.prefillFlopsPerS / refSheet.bf16FlopsPerS),
      ...knobs({ ...ref.engine, ...definedOnly(c.engine) }),
    };
    swap ??= sheet.hostLinkBytesPerS * (ref.swapBytesPerS / refSheet.hostLinkBytesPerS);
    host = {
      diskBytesPerS: host.diskBytesPerS ?? ref.diskBytesPerS,
      pageCacheBytesPerS: host.pageCacheBytesPerS ?? ref.pageCacheBytesPerS,
      workerStartS: host.workerStartS ?? ref.workerStartS,
    };
  }
  const base: GpuCalibration = {
    gpu: c.gpu, source: c.source, gpuMemoryBytes: c.gpuMemoryBytes, swapBytesPerS: swap!,
    diskBytesPerS: host.diskBytesPerS!, pageCacheBytesPerS: host.pageCacheBytesPerS!, workerStartS: host.workerStartS!,
    ...(c.pricePerHourUsd === undefined ? {} : { pricePerHourUsd: c.pricePerHourUsd }),
  };
  return { ...base, ...engineModel(fit, c.gpuMemoryBytes), engine: fit, file, ...(c.mps ? { mps: c.mps } : {}) };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
