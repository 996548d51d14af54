// GGUF block quantization: the writer's reference quantizers (error bounds), the CPU backend's dequantization
// against the TS scalar reference (native/ts/model/quant.ts dequantize), and its quantized matrix products against
// a float64 product of the dequantized weights.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { DTYPE_CODE } from '../../native/ts/engine-native.ts';
import { prng } from '../../native/ts/model/fill.ts';
import { dequantize, quantize, QUANT_BLOCK, QUANT_DTYPES } from '../../native/ts/model/quant.ts';
import { engineOps } from '../../native/ts/testing.ts';
import type { QuantDType } from '../../native/ts/types.ts';

const ops = engineOps();

/** Gaussian-ish values (sum of three uniforms), std ~0.025. */
function plain(n: number, seed: number): Float32Array {
  const r = prng(seed);
  const u = () => r() / 4294967296;
  return new Float32Array(n).map(() => (u() + u() + u() - 1.5) * 0.05);
}

/** Gaussian-ish values with some blocks all zero, all one sign, outliers and tiny magnitudes (edge cases). */
function values(n: number, seed: number): Float32Array {
  const r = prng(seed);
  const u = () => r() / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (u() + u() + u() - 1.5) * 0.05;
  const block = 32;
  for (let b = 0; b * block < n; b++) {
    const kind = b % 9;
    const s = out.subarray(b * block, (b + 1) * block);
    if (kind === 3) s.fill(0);
    if (kind === 5) s.forEach((v, i) => { s[i] = Math.abs(v); });
    if (kind === 6) s.forEach((v, i) => { s[i] = -Math.abs(v) - 0.01; });
    if (kind === 7) s[b % block] = 1.5;
    if (kind === 8) s.forEach((v, i) => { s[i] = v * 1e-6; });
  }
  return out;
}

/**
 * Worst relative RMS error of quantize→dequantize on Gaussian-ish values allowed per type (bits per weight 8.5,
 * 4.5, 4.5, 5.5, 6.56; measured 0.0050, 0.080, 0.068, 0.034, 0.017 on the 2-core dev box, bounds ~1.3x).
 */
const RMS_BOUND: Record<QuantDType, number> = { q8_0: 0.0065, q4_0: 0.1, q4_k: 0.09, q5_k: 0.045, q6_k: 0.022 };

describe('GGUF block quantization', () => {
  for (const dt of QUANT_DTYPES) {
    const q = QUANT_BLOCK[dt];
    it(`${q.name}: ${q.elems} values per ${q.bytes}-byte block; quantize → dequantize within ${RMS_BOUND[dt]} relative RMS`, () => {
      const x = plain(8192, 3);
      const bytes = quantize(x, dt);
      assert.equal(bytes.byteLength, (8192 / q.elems) * q.bytes);
      const y = dequantize(bytes, dt);
      let se = 0, ss = 0;
      for (let i = 0; i < x.length; i++) { se += (x[i] - y[i]) ** 2; ss += x[i] ** 2; }
      const rel = Math.sqrt(se / ss);
      assert.ok(rel < RMS_BOUND[dt], `relative RMS error ${rel}`);
      // A zero block stays exactly zero; the quantizer is deterministic.
      const zeros = quantize(new Float32Array(q.elems), dt);
      assert.ok(dequantize(zeros, dt).every((v) => v === 0));
      assert.deepEqual(quantize(x, dt), bytes);
      // Edge blocks (zeros, one sign, an outlier, tiny values): every value within one quantization step of its block.
      const e = values(q.elems * 18, 5);
      const ey = dequantize(quantize(e, dt), dt);
      for (let b = 0; b < e.length / q.elems; b++) {
        let amax = 0, worst = 0;
        for (let i = b * q.elems; i < (b + 1) * q.elems; i++) { amax = Math.max(amax, Math.abs(e[i])); worst = Math.max(worst, Math.abs(e[i] - ey[i])); }
        assert.ok(worst <= amax * (dt === 'q8_0' ? 1 / 127 : dt === 'q6_k' ? 1 / 16 : 1 / 4) + 1e-6 /* f16 scales underflow below ~6e-8 */, `${q.name} block ${b}: error ${worst} with |x| up to ${amax}`);
      }
    });

    it(`${q.name}: the CPU backend's dequantization equals the scalar reference`, () => {
      for (const seed of [1, 2, 3]) {
        const bytes = quantize(values(q.elems * 24, seed), dt);
        // Random bytes too (any bit pattern is a valid block, except f16 scales that are NaN/inf: keep them finite).
        const rnd = new Uint8Array(q.bytes * 8);
        const r = prng(seed + 100);
        for (let i = 0; i < rnd.length; i++) rnd[i] = r() & 0xff;
        const halves = dt === 'q6_k' ? [208] : dt === 'q4_k' || dt === 'q5_k' ? [0, 2] : [0];
        for (let b = 0; b < 8; b++) for (const h of halves) rnd[b * q.bytes + h + 1] &= 0x3b; // exponent < 0x1f
        for (const src of [bytes, rnd]) {
          const ref = dequantize(src, dt);
          const got = ops.toF32(src, DTYPE_CODE[dt]);
          assert.equal(got.length, ref.length);
          for (let i = 0; i < ref.length; i++) {
            // Same operations in the same order; a fused multiply-add (-march=native) may round d*q - m once.
            const tol = 2 ** -22 * Math.max(Math.abs(ref[i]), 1e-30) + 1e-30;
            if (!(Math.abs(got[i] - ref[i]) <= Math.max(tol, Math.abs(ref[i]) * 2 ** -20 + 2 ** -40))) {
              assert.fail(`${q.name} element ${i}: native ${got[i]}, reference ${ref[i]}`);
            }
          }
        }
      }
    });

    it(`${q.name}: the GPU kernels' lane split (engine/quant_blocks.h, run on the CPU) covers every value exactly as the reference`, () => {
      for (const seed of [4, 5]) {
        const bytes = quantize(values(q.elems * 16, seed), dt);
        const ref = dequantize(bytes, dt);
        const got = ops.toF32Lanes(bytes, DTYPE_CODE[dt]);
        assert.equal(got.length, ref.length);
        for (let i = 0; i < ref.length; i++) {
          // NaN where no lane wrote; otherwise the reference value (up to one FMA rounding).
          if (!(Math.abs(got[i] - ref[i]) <= Math.abs(ref[i]) * 2 ** -20 + 2 ** -40)) assert.fail(`${q.name} element ${i}: lanes ${got[i]}, reference ${ref[i]}`);
        }
      }
    });

    it(`${q.name}: quantized matmul (T = 1, 3, 5, 9) equals a float64 product of the dequantized weights`, () => {
      const I = q.elems * 2, O = 37;
      const wq = quantize(values(O * I, 11), dt);
      const w = dequantize(wq, dt);
      for (const T of [1, 3, 5, 9]) {
        const x = values(T * I, 20 + T).map((v) => v * 20);
        const bias = new Float32Array(O).map((_, i) => i * 0.01);
        const y = ops.matmul(x, wq, DTYPE_CODE[dt], new Uint8Array(bias.buffer), 0, T, I, O);
        for (let t = 0; t < T; t++) {
          for (let o = 0; o < O; o++) {
            let s = bias[o], mag = Math.abs(bias[o]);
            for (let i = 0; i < I; i++) { s += w[o * I + i] * x[t * I + i]; mag += Math.abs(w[o * I + i] * x[t * I + i]); }
            assert.ok(Math.abs(y[t * O + o] - s) <= 1e-5 * mag + 1e-7, `${q.name} T=${T} y[${t},${o}] = ${y[t * O + o]}, expected ${s}`);
          }
        }
      }
    });
  }

  it('a quantized matmul rejects rows that are not whole blocks', () => {
    const wq = quantize(new Float32Array(256 * 2), 'q4_k');
    assert.throws(() => ops.matmul(new Float32Array(128), wq, DTYPE_CODE.q4_k, null, 0, 1, 128, 4), /not a multiple of the weight type's block size/);
  });
});
