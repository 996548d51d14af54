// A fleet description (YAML or JSON): the models a deployment serves, each with its shape (from the model's config)
// and the same per-model settings as services/shared/config.ts, listed in order of expected popularity.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SwapserveError } from '../../contracts/errors.ts';
import { modelConfigSchema } from '../config/config.ts';
import type { ModelShape } from '../fleet/calibration.ts';

const count = z.number().int().positive();

/** One fleet model: its shape for the calibration's engine model, and the config settings the policy reads. */
export const fleetModelSchema = modelConfigSchema.pick({ id: true, sloTtftMs: true, keepWarm: true, gpuIdleMs: true, hostIdleMs: true, priority: true }).extend({
  /** Parameters (count), from the model card or config. */
  params: count,
  /** bf16 weight bytes (2 x params unless stated: tied embeddings are stored once). */
  weightBytes: count,
  /** Transformer layers. */
  layers: count,
  /** KV-cache bytes per token: layers x kv_heads x head_dim x 2 (K and V) x 2 bytes (bf16). */
  kvBytesPerToken: count,
  /** Longest context the model accepts (tokens); prompts are clamped to it. @defaultValue 32768 */
  contextTokens: count.default(32_768),
  /** Jobs one replica runs at once (continuous batching); capped by the calibration's KV capacity. @defaultValue 16 */
  concurrency: count.default(16),
});
export type FleetModel = z.infer<typeof fleetModelSchema>;

export const fleetSchema = z.object({
  /** What this fleet is, for the report. */
  description: z.string().default(''),
  /** Models in order of popularity: the trace's most requested model maps onto the first. */
  models: z.array(fleetModelSchema).min(1),
}).superRefine((f, ctx) => {
  const seen = new Set<string>();
  f.models.forEach((m, i) => {
    if (seen.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate model id "${m.id}"` });
    seen.add(m.id);
  });
});
export type Fleet = z.infer<typeof fleetSchema>;

export class FleetError extends SwapserveError<'fleet_invalid'> {
  override name = 'FleetError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('fleet_invalid', message, options);
  }
}

/** Reads and validates a fleet file; throws FleetError naming the file and each bad field. */
export function loadFleet(path: string): Fleet {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FleetError(`fleet ${path}: ${(e as Error).message}`);
  }
  const r = fleetSchema.safeParse(raw);
  if (!r.success) throw new FleetError(`fleet ${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

export const shapeOf = (m: FleetModel): ModelShape => ({ name: m.id, params: m.params, weightBytes: m.weightBytes, layers: m.layers, kvBytesPerToken: m.kvBytesPerToken });
