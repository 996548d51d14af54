// Seeded random weights for synthetic models: fast N(0, std)-ish fills in f32 / f16 / bf16, and dtype converters.
import type { FloatDType as DType } from '../types.ts';

/** xorshift32 step (state must be non-zero). */
function xorshift(s: number): number {
  s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
  return s >>> 0;
}

/** A seeded generator of 32-bit words (splitmix-style seed scrambling so nearby seeds diverge). */
export function prng(seed: number): () => number {
  let s = (Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0 || 1;
  return () => (s = xorshift(s));
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** f32 → bf16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 → IEEE half bits, round to nearest even, with subnormals and overflow to infinity. */
export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

export function bf16ToF32(h: number): number {
  u32buf[0] = (h & 0xffff) << 16;
  return f32buf[0];
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Encode f32 values as `dtype` little-endian bytes. */
export function encodeValues(values: Float32Array, dtype: DType): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]);
  return new Uint8Array(out.buffer);
}

/** Decode little-endian `dtype` bytes to f32. */
export function decodeValues(bytes: Uint8Array, dtype: DType): Float32Array {
  const copy = new Uint8Array(bytes);
  if (dtype === 'f32') return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  const h = new Uint16Array(copy.buffer, 0, copy.byteLength / 2);
  const out = new Float32Array(h.length);
  const conv = dtype === 'bf16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < h.length; i++) out[i] = conv(h[i]);
  return out;
}

/** Gaussian table: 65,536 N(0,1) samples (inverse-CDF on a uniform grid), indexed by 16 random bits. */
const GAUSS = (() => {
  const n = 65536;
  const t = new Float32Array(n);
  // Acklam-free approximation: Box-Muller on a fixed low-discrepancy pair sequence is enough for weights.
  const r = prng(12345);
  for (let i = 0; i < n; i += 2) {
    const u1 = (r() + 1) / 4294967297;
    const u2 = r() / 4294967296;
    const m = Math.sqrt(-2 * Math.log(u1));
    t[i] = m * Math.cos(2 * Math.PI * u2);
    t[i + 1] = m * Math.sin(2 * Math.PI * u2);
  }
  return t;
})();

/**
 * Fill `count` values of N(0, std²) (or a constant when std = 0) in `dtype` bytes; `next` is the PRNG.
 * Two table draws per 32-bit word keep this well over 100 M values/s, so multi-GB bench models are practical.
 */
export function randomValues(count: number, std: number, constant: number, next: () => number): Float32Array {
  const out = new Float32Array(count);
  if (std === 0) return out.fill(constant);
  let i = 0;
  for (; i + 1 < count; i += 2) {
    const w = next();
    out[i] = GAUSS[w & 0xffff] * std;
    out[i + 1] = GAUSS[w >>> 16] * std;
  }
  if (i < count) out[i] = GAUSS[next() & 0xffff] * std;
  return out;
}

const encodedTables = new Map<string, Uint16Array>();

/**
 * Like encodeValues(randomValues(...)), but for f16/bf16 straight from a table of pre-encoded samples (one
 * lookup per value, no per-value conversion): the writers' fast path for multi-GB bench models.
 */
export function randomEncoded(count: number, std: number, constant: number, dtype: DType, next: () => number): Uint8Array {
  if (dtype === 'f32' || std === 0) return encodeValues(randomValues(count, std, constant, next), dtype);
  const key = `${dtype}:${std}`;
  let table = encodedTables.get(key);
  if (!table) {
    const conv = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
    table = new Uint16Array(GAUSS.length);
    for (let i = 0; i < GAUSS.length; i++) table[i] = conv(Math.fround(GAUSS[i] * std));
    encodedTables.set(key, table);
  }
  const out = new Uint16Array(count);
  let i = 0;
  for (; i + 1 < count; i += 2) {
    const w = next();
    out[i] = table[w & 0xffff];
    out[i + 1] = table[w >>> 16];
  }
  if (i < count) out[i] = table[next() & 0xffff];
  return new Uint8Array(out.buffer);
}
