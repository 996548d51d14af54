// The weight shapes a CUDA worker warms at start (addon warmUp, native/src/engine/cuda/warmup.cc): every matrix product
// a prefill pass of its configured models runs, as [n, k, dtype] (W is n x k). Pure; the worker reads the configs.
import type { DType, ModelConfig } from './types.ts';

export type WarmShape = [number, number, 'bf16' | 'f16'];
/** [C, F, H, KVH, D, dtype]: a model shape the worker runs once through the engine at start (opt-in). */
export type WarmModel = [number, number, number, number, number, 'bf16' | 'f16'];

/** Most distinct shapes warmed (a worker with many model families warms the first ones; the rest pay at first use). */
export const MAX_WARM_SHAPES = 48;

/**
 * The products of one prefill pass (cuda/backend.cc): q|k|v fused and apart, o, gate|up fused and apart, down, the
 * head. Quantized weights are dequantized to bf16 for prefill, so their products are bf16 ones.
 */
export function warmShapes(models: ReadonlyArray<{ config: ModelConfig; dtype: DType }>): WarmShape[] {
  const seen = new Set<string>();
  const out: WarmShape[] = [];
  for (const { config: c, dtype } of models) {
    const t = dtype === 'f16' ? 'f16' : 'bf16';
    if (dtype === 'f32') continue; // fp32 models run their own products (no half-precision library kernels to warm)
    const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim, C = c.hiddenSize, F = c.intermediateSize;
    for (const [n, k] of [[qd + 2 * kd, C], [qd, C], [kd, C], [C, qd], [2 * F, C], [F, C], [C, F], [c.vocabSize, C]]) {
      const key = `${n}x${k}:${t}`;
      if (seen.has(key) || !(n > 0 && k > 0)) continue;
      seen.add(key);
      out.push([n, k, t]);
      if (out.length === MAX_WARM_SHAPES) return out;
    }
  }
  return out;
}

/** Most distinct model shapes run through the engine at start. */
export const MAX_WARM_MODELS = 8;

/**
 * The distinct engine shapes of the models (hidden, FFN, heads, KV heads, head size, activation type): one zero-weight
 * one-layer pass each loads the engine's own kernels for that shape (warmup.cc WarmEngine). Quantized models run bf16
 * activations, so they warm as bf16; fp32 models are left out.
 */
export function warmModels(models: ReadonlyArray<{ config: ModelConfig; dtype: DType }>): WarmModel[] {
  const seen = new Set<string>();
  const out: WarmModel[] = [];
  for (const { config: c, dtype } of models) {
    if (dtype === 'f32') continue;
    const m: WarmModel = [c.hiddenSize, c.intermediateSize, c.numHeads, c.numKvHeads, c.headDim, dtype === 'f16' ? 'f16' : 'bf16'];
    const key = m.join(':');
    if (seen.has(key) || !m.slice(0, 5).every((x) => Number.isInteger(x) && (x as number) > 0)) continue;
    seen.add(key);
    out.push(m);
    if (out.length === MAX_WARM_MODELS) break;
  }
  return out;
}
