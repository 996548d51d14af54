// Each CPU backend op against a plain scalar reference written here (float64, the textbook formula).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { encodeValues, decodeValues, prng } from '../../native/ts/model/fill.ts';
import type { FloatDType as DType } from '../../native/ts/types.ts';
import { engineOps } from '../../native/ts/testing.ts';

const ops = engineOps();
const CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = ((r() / 4294967296) * 2 - 1) * scale;
  return out;
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * (1 + Math.abs(expected[i])))) assert.fail(`${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

describe('CPU ops against scalar references', () => {
  for (const dt of ['f32', 'f16', 'bf16'] as DType[]) {
    it(`matmul ${dt}: y = x W^T + b over a batch, odd sizes`, () => {
      for (const [T, I, O] of [[1, 64, 64], [5, 37, 13], [3, 172, 7], [17, 8, 130]]) {
        const x = randn(T * I, 1 + T);
        const wBytes = encodeValues(randn(O * I, 2 + O), dt);
        const w = decodeValues(wBytes, dt); // the values the op sees
        const bBytes = encodeValues(randn(O, 3), dt);
        const b = decodeValues(bBytes, dt);
        for (const withBias of [false, true]) {
          const y = ops.matmul(x, wBytes, CODE[dt], withBias ? bBytes : null, CODE[dt], T, I, O);
          const ref = new Float64Array(T * O);
          for (let t = 0; t < T; t++) for (let o = 0; o < O; o++) {
            let s = withBias ? b[o] : 0;
            for (let i = 0; i < I; i++) s += x[t * I + i] * w[o * I + i];
            ref[t * O + o] = s;
          }
          close(y, ref, 1e-4, `matmul ${dt} ${T}x${I}x${O} bias=${withBias}`);
        }
      }
    });
  }

  it('f16 and bf16 conversion matches the bit-level definition (subnormals, infinities, signs)', () => {
    const halves = Uint16Array.from([0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0xfc00, 0x3555]);
    const f16 = ops.toF32(new Uint8Array(halves.buffer), 1);
    const ref = [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -1, 65504, Infinity, -Infinity, 0.333251953125];
    assert.deepEqual(Array.from(f16), ref);
    const bf = ops.toF32(new Uint8Array(Uint16Array.from([0x3f80, 0xc000, 0x7f80, 0x0001]).buffer), 2);
    assert.deepEqual(Array.from(bf), [1, -2, Infinity, 9.183549615799121e-41]);
  });

  it('rmsnorm', () => {
    const T = 3, C = 37, eps = 1e-5;
    const x = randn(T * C, 5, 3);
    const wBytes = encodeValues(randn(C, 6), 'bf16');
    const w = decodeValues(wBytes, 'bf16');
    const y = ops.rmsnorm(x, wBytes, 2, T, C, eps);
    const ref: number[] = [];
    for (let t = 0; t < T; t++) {
      let ss = 0;
      for (let i = 0; i < C; i++) ss += x[t * C + i] ** 2;
      const s = 1 / Math.sqrt(ss / C + eps);
      for (let i = 0; i < C; i++) ref.push(x[t * C + i] * s * w[i]);
    }
    close(y, ref, 1e-5, 'rmsnorm');
  });

  const base = { ropeTheta: 10000, ropeScaling: 0, ropeFactor: 1, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPositions: 8192 };

  it('rope inverse frequencies: plain, linear and llama3 scaling (Hugging Face formulas)', () => {
    const D = 128;
    const plain = Array.from({ length: D / 2 }, (_, i) => 1 / 500000 ** ((2 * i) / D));
    close(ops.ropeInvFreq({ ...base, headDim: D, ropeTheta: 500000 }), plain, 1e-6, 'plain');
    close(ops.ropeInvFreq({ ...base, headDim: D, ropeTheta: 500000, ropeScaling: 2, ropeFactor: 4 }), plain.map((f) => f / 4), 1e-6, 'linear');
    // Llama 3.1: factor 8, low 1, high 4, original 8192 (transformers' _compute_llama3_parameters).
    const factor = 8, low = 1, high = 4, old = 8192;
    const llama3 = plain.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < old / high) return f;
      if (wavelen > old / low) return f / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
    const got = ops.ropeInvFreq({ ...base, headDim: D, ropeTheta: 500000, ropeScaling: 1, ropeFactor: factor, ropeLowFreqFactor: low, ropeHighFreqFactor: high, ropeOriginalMaxPositions: old });
    close(got, llama3, 1e-6, 'llama3');
    // All three regimes occur for these parameters.
    assert.ok(llama3.some((f, i) => f === plain[i]) && llama3.some((f, i) => f === plain[i] / factor) && llama3.some((f, i) => f !== plain[i] && f !== plain[i] / factor));
  });

  for (const interleaved of [false, true]) {
    it(`rope ${interleaved ? 'interleaved (Meta/GGUF)' : 'half (HF rotate_half)'} rotates the right pairs`, () => {
      const heads = 3, D = 16;
      const pos = Int32Array.from([0, 1, 7, 1000]);
      const T = pos.length;
      const x = randn(T * heads * D, 9);
      const inv = ops.ropeInvFreq({ ...base, headDim: D });
      const y = ops.rope(x, pos, heads, D, inv, interleaved);
      const ref = new Float64Array(x.length);
      for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) {
        const v = x.subarray((t * heads + h) * D, (t * heads + h + 1) * D);
        for (let i = 0; i < D / 2; i++) {
          const a = pos[t] / 10000 ** ((2 * i) / D);
          const [i0, i1] = interleaved ? [2 * i, 2 * i + 1] : [i, i + D / 2];
          ref[(t * heads + h) * D + i0] = v[i0] * Math.cos(a) - v[i1] * Math.sin(a);
          ref[(t * heads + h) * D + i1] = v[i0] * Math.sin(a) + v[i1] * Math.cos(a);
        }
      }
      close(y, ref, 2e-4, 'rope');
      close(y.subarray(0, heads * D), x.subarray(0, heads * D), 0, 'position 0 is the identity');
    });
  }

  it('grouped-query attention, causal, with earlier positions in the cache', () => {
    for (const [T, pos0, H, KVH, D] of [[1, 0, 4, 4, 8], [1, 9, 8, 2, 16], [4, 3, 6, 3, 8], [5, 0, 4, 1, 12]]) {
      const n = pos0 + T;
      const q = randn(T * H * D, 11 + T), k = randn(n * KVH * D, 12 + n), v = randn(n * KVH * D, 13 + n);
      const out = ops.attention(q, k, v, T, pos0, H, KVH, D);
      const ref = new Float64Array(T * H * D);
      for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KVH));
        const len = pos0 + t + 1;
        const s = Array.from({ length: len }, (_, j) => {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(t * H + h) * D + i] * k[(j * KVH + g) * D + i];
          return d / Math.sqrt(D);
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < D; i++) {
          let o = 0;
          for (let j = 0; j < len; j++) o += (e[j] / z) * v[(j * KVH + g) * D + i];
          ref[(t * H + h) * D + i] = o;
        }
      }
      close(out, ref, 1e-5, `attention T=${T} pos0=${pos0} H=${H} KVH=${KVH}`);
    }
  });

  it('swiglu', () => {
    const g = randn(100, 21, 6), u = randn(100, 22);
    close(ops.swiglu(g, u), Array.from(g, (x, i) => (x / (1 + Math.exp(-x))) * u[i]), 1e-6, 'swiglu');
  });

  describe('sampler', () => {
    const logits = Float32Array.from([1, 3, 3, 0.5, 2.9, -4]);
    it('greedy takes the largest logit, the lowest id on ties, and leaves the PRNG alone', () => {
      assert.deepEqual(ops.sample(logits, 0, 1, 0, 42n), { token: 1, rng: 42n });
      assert.equal(ops.sample(logits, 5, 1, 1, 42n).token, 1); // top-k 1 is greedy at any temperature
    });
    it('is a pure function of (logits, params, rng state)', () => {
      const a = ops.sample(logits, 1, 0.9, 0, 7n), b = ops.sample(logits, 1, 0.9, 0, 7n);
      assert.deepEqual(a, b);
      assert.notEqual(a.rng, 7n);
    });
    it('follows softmax(logits / T) within the top-k / top-p set', () => {
      const draws = (temp: number, topP: number, topK: number) => {
        const counts = new Array(logits.length).fill(0);
        let rng = 1n;
        for (let i = 0; i < 20000; i++) {
          const r = ops.sample(logits, temp, topP, topK, rng);
          counts[r.token]++;
          rng = r.rng;
        }
        return counts.map((c) => c / 20000);
      };
      const p = draws(1, 1, 0);
      const z = Array.from(logits).reduce((a, l) => a + Math.exp(l), 0);
      for (let i = 0; i < logits.length; i++) assert.ok(Math.abs(p[i] - Math.exp(logits[i]) / z) < 0.015, `p[${i}] = ${p[i]}`);
      // top-k 2: only ids 1 and 2 (equal logits) — about half each.
      const k2 = draws(1, 1, 2);
      assert.equal(k2[0] + k2[3] + k2[4] + k2[5], 0);
      assert.ok(Math.abs(k2[1] - 0.5) < 0.02);
      // top-p 0.5: ids 1 and 2 hold ~0.63 together, id 1 alone ~0.32 < 0.5, so the nucleus is {1, 2}.
      const p5 = draws(1, 0.5, 0);
      assert.equal(p5[0] + p5[3] + p5[4] + p5[5], 0);
      // Low temperature concentrates on the maxima.
      const cold = draws(0.01, 1, 0); // id 4 (2.9) is 10 T below the maxima: p ~ 5e-5
      assert.ok(cold[1] + cold[2] > 0.99);
    });
    it('top-p over a large flat vocabulary keeps exactly the nucleus (far more than the first 64 candidates)', () => {
      const V = 5000;
      const flat = new Float32Array(V).fill(2);
      let rng = 9n;
      const seen = new Set<number>();
      for (let i = 0; i < 4000; i++) {
        const r = ops.sample(flat, 1, 0.5, 0, rng);
        rng = r.rng;
        seen.add(r.token);
        // Equal logits order by id, so the nucleus of mass 0.5 is ids 0 .. 2499.
        assert.ok(r.token < 2500, `token ${r.token} is outside the nucleus`);
      }
      assert.ok(seen.size > 1500 && Math.max(...seen) >= 2400, `${seen.size} distinct tokens up to ${Math.max(...seen)}: the nucleus was cut short`);
      // Without truncation every id can come out.
      const all = new Set<number>();
      for (let i = 0; i < 4000; i++) {
        const r = ops.sample(flat, 1, 1, 0, rng);
        rng = r.rng;
        all.add(r.token);
      }
      assert.ok([...all].some((t) => t >= 2500) && all.size > 2500);
    });
  });
});
