// Synthetic weights with Llama-like exponent statistics, for the codec's tests and benches (never a claim about a
// real model: stories260K is the only real pretrained model here).
//
// Model: each row is Gaussian with its own scale σ_row = σ · exp(0.3 · z), z ~ N(0, 1) (per-channel scale spread).
// A pure Gaussian's exponent entropy is 2.54 bits whatever σ is; the 0.3 log-normal row spread lifts it to
// ≈ 2.64 bits, calibrated to the ~2.6 bits of exponent entropy DFloat11 (Zhang et al. 2025, arXiv 2504.11651)
// reports for Llama-class bf16 weights (Llama-3.1-8B stored at 67.8%). Mantissas come out near-uniform, as
// ZipNN (Hershcovitch et al. 2024, arXiv 2411.05239) measures in real models. bench/codec/gpu_bench.cu uses the
// same model in C++.
import { f32ToBf16, f32ToF16, prng } from '../../native/ts/model/fill.ts';

export const ROW_SPREAD = 0.3;

function gaussian(next: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = ((next() >>> 0) + 1) / 4294967297;
    const v = (next() >>> 0) / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** rows × cols values with per-row log-normal scale, as bf16/fp16 bits (Uint16Array) or fp32 (Float32Array bytes). */
export function llamaLike(rows: number, cols: number, sigma: number, dtype: 'bf16' | 'fp16' | 'fp32', seed: number): Uint8Array {
  const g = gaussian(prng(seed));
  const n = rows * cols;
  if (dtype === 'fp32') {
    const out = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      const s = sigma * Math.exp(ROW_SPREAD * g());
      for (let c = 0; c < cols; c++) out[r * cols + c] = s * g();
    }
    return new Uint8Array(out.buffer);
  }
  const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const out = new Uint16Array(n);
  for (let r = 0; r < rows; r++) {
    const s = sigma * Math.exp(ROW_SPREAD * g());
    for (let c = 0; c < cols; c++) out[r * cols + c] = conv(s * g());
  }
  return new Uint8Array(out.buffer);
}

/** Uniform random bytes (what "random weights" in the bit sense look like: nothing to compress). */
export function randomBits(bytes: number, seed: number): Uint8Array {
  const next = prng(seed);
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = next() & 0xff;
  return out;
}
