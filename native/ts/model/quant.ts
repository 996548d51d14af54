// GGUF block quantization (llama.cpp's layouts): Q8_0, Q4_0, Q4_K, Q5_K, Q6_K. Quantizers follow ggml's reference
// quantizers (quantize_row_*_ref in ggml-quants.c) step by step in float32 arithmetic (Math.fround), so a file
// written here holds what llama-quantize's reference path writes for the same values; dequantizers are the scalar
// references the native kernels are tested against.
import type { DType, QuantDType } from '../types.ts';
import { decodeValues, f16ToF32, f32ToF16 } from './fill.ts';

/** Block geometry per quantized dtype: elements per block, bytes per block, ggml type id. */
export const QUANT_BLOCK: Record<QuantDType, { elems: number; bytes: number; ggml: number; name: string }> = {
  q4_0: { elems: 32, bytes: 18, ggml: 2, name: 'Q4_0' },
  q8_0: { elems: 32, bytes: 34, ggml: 8, name: 'Q8_0' },
  q4_k: { elems: 256, bytes: 144, ggml: 12, name: 'Q4_K' },
  q5_k: { elems: 256, bytes: 176, ggml: 13, name: 'Q5_K' },
  q6_k: { elems: 256, bytes: 210, ggml: 14, name: 'Q6_K' },
};

export const QUANT_DTYPES = Object.keys(QUANT_BLOCK) as QuantDType[];

export function isQuant(d: string): d is QuantDType {
  return d in QUANT_BLOCK;
}

const fr = Math.fround;
const GROUP_MAX_EPS = 1e-15;

/** ggml's nearest_int: round half to even through the float32 magic-number add. */
function nearestInt(x: number): number {
  return fr(fr(x) + 12582912) - 12582912;
}

/** C roundf: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function putF16(out: Uint8Array, at: number, v: number): void {
  const h = f32ToF16(v);
  out[at] = h & 0xff;
  out[at + 1] = h >>> 8;
}

function getF16(b: Uint8Array, at: number): number {
  return f16ToF32(b[at] | (b[at + 1] << 8));
}

// ---------------------------------------------------------------- quantizers (one block each)

function quantQ8_0(x: Float32Array, o: number, out: Uint8Array, b: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]));
  const d = fr(amax / 127);
  const id = d ? fr(1 / d) : 0;
  putF16(out, b, d);
  for (let j = 0; j < 32; j++) out[b + 2 + j] = roundf(fr(x[o + j] * id)) & 0xff;
}

function quantQ4_0(x: Float32Array, o: number, out: Uint8Array, b: number): void {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[o + j];
    if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
  }
  const d = fr(max / -8);
  const id = d ? fr(1 / d) : 0;
  putF16(out, b, d);
  for (let j = 0; j < 16; j++) {
    const xi0 = Math.min(15, Math.trunc(fr(fr(x[o + j] * id) + 8.5)));
    const xi1 = Math.min(15, Math.trunc(fr(fr(x[o + 16 + j] * id) + 8.5)));
    out[b + 2 + j] = xi0 | (xi1 << 4);
  }
}

/** make_qkx2_quants: scale and (negated) min of an asymmetric n-level fit, weighted; L gets the levels. */
function makeQkx2(n: number, nmax: number, x: Float32Array, o: number, w: Float32Array, L: Uint8Array, lo: number,
  rmin: number, rdelta: number, nstep: number): { scale: number; min: number } {
  const Laux = new Uint8Array(n);
  let min = x[o], max = x[o];
  let sumW = w[0];
  let sumX = fr(sumW * x[o]);
  for (let i = 1; i < n; i++) {
    if (x[o + i] < min) min = x[o + i];
    if (x[o + i] > max) max = x[o + i];
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * x[o + i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return { scale: 0, min: -min };
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(fr(iscale * fr(x[o + i] - min)));
    L[lo + i] = Math.max(0, Math.min(nmax, l));
    const diff = fr(fr(fr(scale * L[lo + i]) + min) - x[o + i]);
    bestError = fr(bestError + fr(w[i] * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXl = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[o + i] - min)))));
      Laux[i] = l;
      sumL = fr(sumL + fr(w[i] * l));
      sumL2 = fr(sumL2 + fr(fr(w[i] * l) * l));
      sumXl = fr(sumXl + fr(fr(w[i] * l) * x[o + i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXl) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXl)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXl / sumL2);
      }
      let cur = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[o + i]);
        cur = fr(cur + fr(w[i] * fr(diff * diff)));
      }
      if (cur < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i];
        bestError = cur;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return { scale, min: -min };
}

/** 6-bit scale j and min of a Q4_K/Q5_K super-block (get_scale_min_k4). */
export function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63];
  return [(q[at + j + 4] & 0xf) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)];
}

/** Q4_K and Q5_K share everything but the level count and the packing of the levels. */
function quantK45(x: Float32Array, o: number, out: Uint8Array, b: number, bits: 4 | 5): void {
  const nmax = bits === 4 ? 15 : 31;
  const L = new Uint8Array(256);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  const weights = new Float32Array(32);
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[o + 32 * j + l] * x[o + 32 * j + l]));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[o + 32 * j + l]));
    const r = bits === 4
      ? makeQkx2(32, 15, x, o + 32 * j, weights, L, 32 * j, -1, 0.1, 20)
      : makeQkx2(32, 31, x, o + 32 * j, weights, L, 32 * j, -0.5, 0.1, 15);
    scales[j] = r.scale;
    mins[j] = r.min;
    if (r.scale > maxScale) maxScale = scales[j];
    if (r.min > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sc = b + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[sc + j - 4] |= (ls >> 4) << 6;
      out[sc + j] |= (lm >> 4) << 6;
    }
  }
  putF16(out, b, fr(maxScale / 63));
  putF16(out, b + 2, fr(maxMin / 63));
  const dAll = getF16(out, b), dminAll = getF16(out, b + 2);
  for (let j = 0; j < 8; j++) {
    const [s, m] = scaleMinK4(j, out, sc);
    const d = fr(dAll * s);
    if (!d) continue;
    const dm = fr(dminAll * m);
    for (let ii = 0; ii < 32; ii++) {
      L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(fr(fr(x[o + 32 * j + ii] + dm) / d))));
    }
  }
  if (bits === 4) {
    for (let j = 0, q = b + 16; j < 256; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) out[q + l] = L[j + l] | (L[j + l + 32] << 4);
    }
  } else {
    const qh = b + 16;
    let m1 = 1, m2 = 2;
    for (let n = 0, ql = b + 48; n < 256; n += 64, ql += 32) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) { l1 -= 16; out[qh + j] |= m1; }
        if (l2 > 15) { l2 -= 16; out[qh + j] |= m2; }
        out[ql + j] = l1 | (l2 << 4);
      }
      m1 <<= 2; m2 <<= 2;
    }
  }
}

/** make_qx_quants with rmse_type 1 and no importance weights: a symmetric fit of 2*nmax levels. */
function makeQx(n: number, nmax: number, x: Float32Array, o: number, L: Int8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[o + i]);
    if (ax > amax) { amax = ax; max = x[o + i]; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[o + i]))));
    L[lo + i] = l + nmax;
    const w = fr(x[o + i] * x[o + i]);
    sumlx = fr(sumlx + fr(fr(w * x[o + i]) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(0.1 * is)) / max);
    sumlx = 0; suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[o + i]))));
      const w = fr(x[o + i] * x[o + i]);
      sumlx = fr(sumlx + fr(fr(w * x[o + i]) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[o + i]))));
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

function quantQ6_K(x: Float32Array, o: number, out: Uint8Array, b: number): void {
  const L = new Int8Array(256);
  const scales = new Float32Array(16);
  let maxScale = 0, maxAbs = 0;
  for (let ib = 0; ib < 16; ib++) {
    const s = makeQx(16, 32, x, o + 16 * ib, L, 16 * ib);
    scales[ib] = s;
    if (Math.abs(s) > maxAbs) { maxAbs = Math.abs(s); maxScale = s; }
  }
  if (maxAbs < GROUP_MAX_EPS) return; // the block stays all zero (d = 0)
  const iscale = fr(-128 / maxScale);
  putF16(out, b + 208, fr(1 / iscale));
  const sc = new Int8Array(out.buffer, out.byteOffset + b + 192, 16);
  for (let ib = 0; ib < 16; ib++) sc[ib] = Math.min(127, nearestInt(fr(iscale * scales[ib])));
  const dAll = getF16(out, b + 208);
  for (let j = 0; j < 16; j++) {
    const d = fr(dAll * sc[j]);
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(fr(x[o + 16 * j + ii] / d)))) + 32;
    }
  }
  for (let j = 0, ql = b, qh = b + 128; j < 256; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
      out[ql + l] = q1 | (q3 << 4);
      out[ql + l + 32] = q2 | (q4 << 4);
      out[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
    }
  }
}

const QUANTIZERS: Record<QuantDType, (x: Float32Array, o: number, out: Uint8Array, b: number) => void> = {
  q8_0: quantQ8_0,
  q4_0: quantQ4_0,
  q4_k: (x, o, out, b) => quantK45(x, o, out, b, 4),
  q5_k: (x, o, out, b) => quantK45(x, o, out, b, 5),
  q6_k: quantQ6_K,
};

/** Bytes of `elems` values in a quantized dtype (elems must be a multiple of the block size). */
export function quantBytes(dtype: QuantDType, elems: number): number {
  const q = QUANT_BLOCK[dtype];
  if (elems % q.elems !== 0) throw new RangeError(`Expected a multiple of ${q.elems} values for ${q.name} but received ${elems}`);
  return (elems / q.elems) * q.bytes;
}

/** Quantize f32 values (row-major, rows a multiple of the block size) with ggml's reference quantizer. */
export function quantize(values: Float32Array, dtype: QuantDType): Uint8Array {
  const q = QUANT_BLOCK[dtype];
  const out = new Uint8Array(quantBytes(dtype, values.length));
  const f = QUANTIZERS[dtype];
  for (let i = 0, n = values.length / q.elems; i < n; i++) f(values, i * q.elems, out, i * q.bytes);
  return out;
}

// ---------------------------------------------------------------- scalar dequantizers (the tests' reference)

/** Dequantize `bytes` (whole blocks) of a quantized dtype to f32, one element at a time as ggml's reference does. */
export function dequantize(bytes: Uint8Array, dtype: QuantDType): Float32Array {
  const q = QUANT_BLOCK[dtype];
  if (bytes.byteLength % q.bytes !== 0) throw new RangeError(`Expected whole ${q.name} blocks of ${q.bytes} bytes but received ${bytes.byteLength} bytes`);
  const nb = bytes.byteLength / q.bytes;
  const y = new Float32Array(nb * q.elems);
  const i8 = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < nb; i++) {
    const b = i * q.bytes, o = i * q.elems;
    switch (dtype) {
      case 'q8_0': {
        const d = getF16(bytes, b);
        for (let j = 0; j < 32; j++) y[o + j] = d * i8[b + 2 + j];
        break;
      }
      case 'q4_0': {
        const d = getF16(bytes, b);
        for (let j = 0; j < 16; j++) {
          y[o + j] = ((bytes[b + 2 + j] & 0xf) - 8) * d;
          y[o + j + 16] = ((bytes[b + 2 + j] >> 4) - 8) * d;
        }
        break;
      }
      case 'q4_k':
      case 'q5_k': {
        const d = getF16(bytes, b), dmin = getF16(bytes, b + 2);
        const five = dtype === 'q5_k';
        const qh = b + 16;
        let ql = five ? b + 48 : b + 16;
        for (let j = 0, is = 0, u = 1; j < 256; j += 64, is += 2, ql += 32, u <<= 2) {
          const [s1, m1] = scaleMinK4(is, bytes, b + 4);
          const [s2, m2] = scaleMinK4(is + 1, bytes, b + 4);
          const d1 = fr(d * s1), mm1 = fr(dmin * m1), d2 = fr(d * s2), mm2 = fr(dmin * m2);
          for (let l = 0; l < 32; l++) {
            const hi1 = five && (bytes[qh + l] & u) ? 16 : 0;
            const hi2 = five && (bytes[qh + l] & (u << 1)) ? 16 : 0;
            y[o + j + l] = fr(d1 * ((bytes[ql + l] & 0xf) + hi1)) - mm1;
            y[o + j + l + 32] = fr(d2 * ((bytes[ql + l] >> 4) + hi2)) - mm2;
          }
        }
        break;
      }
      case 'q6_k': {
        const d = getF16(bytes, b + 208);
        for (let n = 0, ql = b, qh = b + 128, sc = b + 192; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
            y[o + n + l] = fr(d * i8[sc + is]) * q1;
            y[o + n + l + 32] = fr(d * i8[sc + is + 2]) * q2;
            y[o + n + l + 64] = fr(d * i8[sc + is + 4]) * q3;
            y[o + n + l + 96] = fr(d * i8[sc + is + 6]) * q4;
          }
        }
        break;
      }
    }
  }
  return y;
}

/** Decode a tensor's bytes of any dtype (float or quantized) to f32. */
export function decodeTensor(bytes: Uint8Array, dtype: DType): Float32Array {
  return isQuant(dtype) ? dequantize(bytes, dtype) : decodeValues(bytes, dtype);
}
