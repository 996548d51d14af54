// `swapserve plan` input: the GPU price list, the GPU types with their calibration files, the models and their workload (zod, YAML or JSON).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { modelIdSchema } from '../../contracts/model-id.ts';
import { bytes } from '../config/config.ts';
import { FleetInputError } from './calibration.ts';

const positive = z.number().positive();
const count = z.number().int().positive();
const GiB = 1024 ** 3;

/** The price list: one hourly price per GPU type, with where it comes from and when. */
export const priceListSchema = z.object({
  source: z.string().min(1),
  /** When the prices were read (YYYY-MM-DD). */
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date like 2026-12-07'),
  currency: z.literal('USD'),
  prices: z.array(z.object({
    gpu: z.string().min(1),
    /** USD per GPU per hour (what the plan minimises). */
    perGpuHourUsd: z.number().nonnegative(),
    flexPerGpuHourUsd: z.number().nonnegative().optional(),
    listed: z.string().optional(),
  }).strict()).min(1),
}).strict();
export type PriceList = z.infer<typeof priceListSchema>;

/** One request-size bucket of a model's workload. */
export const bucketSchema = z.object({
  /** Prompt tokens (the bucket's representative size). */
  inputTokens: count,
  /** Generated tokens. */
  outputTokens: count,
  /** Mean arrival rate (requests/s). */
  ratePerS: positive,
}).strict();
export type Bucket = z.infer<typeof bucketSchema>;

export const planModelSchema = z.object({
  id: modelIdSchema,
  /** Shape, as in the fleet description (services/simulator/fleet-spec.ts) and calibration.ts `ModelShape`. */
  params: positive,
  weightBytes: positive,
  layers: count,
  kvBytesPerToken: positive,
  /** Time to first token SLO (ms). @defaultValue 2000 */
  sloTtftMs: positive.default(2000),
  /** Time per output token SLO (ms). @defaultValue 100 */
  sloTpotMs: positive.default(100),
  workload: z.array(bucketSchema).min(1),
}).strict();
export type PlanModel = z.infer<typeof planModelSchema>;

export const planGpuSchema = z.object({
  /** GPU type; must have a price in the price list. */
  type: z.string().min(1),
  /** Calibration file (bench/results/profiles/*.json), relative to the input file. */
  calibration: z.string().min(1),
  /** Most GPUs of this type available (optional). */
  max: count.optional(),
  /** GPUs per node and the node's RAM for pinned weights: each worker of a swap group parks its group's models in hostBytesPerNode / gpusPerNode. @defaultValue 8 GPUs, 1TiB */
  gpusPerNode: count.default(8),
  hostBytesPerNode: bytes.default(1024 * GiB),
  /** Overrides options.tensorParallelEfficiency for this type (e.g. lower for GPUs without NVLink). */
  tensorParallelEfficiency: z.number().gt(0).max(1).optional(),
  /** Co-locate the swap group's models under MPS, `mps.workers` workers per GPU (needs a measured `mps` section in the calibration). @defaultValue false */
  mps: z.boolean().default(false),
}).strict();
export type PlanGpu = z.infer<typeof planGpuSchema>;

/** Planner knobs, documented with their defaults and merged in one place. */
export const planOptionsSchema = z.object({
  /** A group is sized so its load is at most this share of its capacity (room for bursts). @defaultValue 0.9 */
  headroom: z.number().gt(0).max(1).default(0.9),
  /** Each bucket's rate is cut into this many equal slices that may go to different GPU types (Mélange's slices). @defaultValue 2 */
  slicesPerBucket: z.number().int().min(1).max(16).default(2),
  /** A model in a swap group stays on a GPU this long after a request (s): a request after a longer gap swaps it in. @defaultValue 30 */
  keepResidentS: z.number().nonnegative().default(30),
  /** GPUs per instance a model may use when its weights fit no single GPU (tensor parallel; swapserve's engine has none yet). @defaultValue [1, 2, 4, 8] */
  instanceSizes: z.array(count).min(1).default([1, 2, 4, 8]),
  /** Share of k GPUs' bandwidth and FLOP/s a k-GPU instance gets (assumed, not measured). @defaultValue 0.85 */
  tensorParallelEfficiency: z.number().gt(0).max(1).default(0.85),
  /** HiGHS time limit (s). @defaultValue 60 */
  timeLimitS: positive.default(60),
  /** HiGHS stops once its plan is proven within this relative gap of the optimum. @defaultValue 1e-4 */
  mipGap: z.number().nonnegative().max(0.1).default(1e-4),
}).strict();
export type PlanOptions = z.infer<typeof planOptionsSchema>;

export const planInputSchema = z.object({
  description: z.string().default(''),
  /** Price list file, relative to the input file. */
  prices: z.string().min(1),
  gpus: z.array(planGpuSchema).min(1),
  options: planOptionsSchema.prefault({}),
  models: z.array(planModelSchema).min(1),
}).strict().superRefine((p, ctx) => {
  const dup = (xs: string[], path: string, what: string) => {
    const seen = new Set<string>();
    xs.forEach((x, i) => {
      if (seen.has(x)) ctx.addIssue({ code: 'custom', path: [path, i], message: `duplicate ${what} "${x}"` });
      seen.add(x);
    });
  };
  dup(p.models.map((m) => m.id), 'models', 'model id');
  dup(p.gpus.map((g) => g.type), 'gpus', 'GPU type');
});
export type PlanInput = z.infer<typeof planInputSchema>;

function readStructured(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FleetInputError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new FleetInputError(`cannot parse ${what} ${path}: ${(e as Error).message}`);
  }
}

function check<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new FleetInputError(`invalid ${what}:\n${lines.join('\n')}`);
  }
  return r.data;
}

export const parsePlanInput = (raw: unknown, what = 'plan input'): PlanInput => check(planInputSchema, raw, what);
export const parsePriceList = (raw: unknown, what = 'price list'): PriceList => check(priceListSchema, raw, what);

/** A plan input with its price list read and its calibration paths made absolute. */
export interface LoadedPlanInput {
  input: PlanInput;
  prices: PriceList;
  /** Absolute calibration path per GPU type. */
  calibrationPaths: Record<string, string>;
}

/** Reads a plan input file and its price list (paths inside it are relative to it). */
export function loadPlanInput(path: string): LoadedPlanInput {
  const file = resolve(path);
  const input = parsePlanInput(readStructured(file, 'plan input'), `plan input ${file}`);
  const pricesPath = resolve(dirname(file), input.prices);
  const prices = parsePriceList(readStructured(pricesPath, 'price list'), `price list ${pricesPath}`);
  const calibrationPaths = Object.fromEntries(input.gpus.map((g) => [g.type, resolve(dirname(file), g.calibration)]));
  return { input, prices, calibrationPaths };
}
