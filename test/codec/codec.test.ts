// The weight codec (native/src/runtime/codec): bit-exact round trips on stories260K's real weights and on
// adversarial tensors, the stored-raw fallback, and corrupt containers giving a clear error, never a crash.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { llamaLike, randomBits } from '../../bench/codec/synth.ts';
import { readGguf } from '../../native/ts/model/gguf.ts';
import { f32ToBf16, f32ToF16, prng } from '../../native/ts/model/fill.ts';
import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { codec, type CodecDType } from '../../native/ts/testing.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';

const c = codec('cpu');
const CHUNK = 65536;

function roundTrip(data: Uint8Array, dtype: CodecDType): ReturnType<typeof c.encode> {
  const enc = c.encode(data, dtype);
  const dec = c.decode(enc.data);
  assert.equal(dec.data.length, data.length);
  assert.ok(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(dec.data), `${dtype} ${data.length} B round trip is bit-exact`);
  const info = c.inspect(enc.data);
  assert.equal(info.rawBytes, data.length);
  assert.equal(info.mode, enc.mode);
  return enc;
}

function bf16(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values.map(f32ToBf16)).buffer);
}

function assertCorrupt(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => SwapserveNativeError.is(e, 'invalid_argument') && /codec: corrupt/.test(e.message));
}

describe('codec round trips on stories260K (real pretrained float32 weights)', () => {
  const file = STORIES260K_GGUF;
  it('every tensor, as fp32 and as bf16/fp16 conversions, decodes bit-exact', { skip: !existsSync(file) && 'no shared data' }, async () => {
    const g = await readGguf(file);
    const bytes = readFileSync(file);
    let raw = 0;
    let coded = 0;
    let huff = 0;
    for (const t of g.tensors) {
      assert.equal(t.ggmlType, 0, `${t.name} is f32`);
      const f32 = new Float32Array(bytes.buffer.slice(bytes.byteOffset + t.fileOffset, bytes.byteOffset + t.fileOffset + t.bytes));
      const e32 = roundTrip(new Uint8Array(f32.buffer), 'fp32');
      const eb = roundTrip(new Uint8Array(Uint16Array.from(f32, f32ToBf16).buffer), 'bf16');
      roundTrip(new Uint8Array(Uint16Array.from(f32, f32ToF16).buffer), 'fp16');
      raw += t.bytes / 2;
      coded += eb.data.length;
      if (eb.mode === 'huffman') huff++;
      assert.ok(e32.entropyBits < 6, `${t.name}: exponent entropy ${e32.entropyBits.toFixed(2)} bits`);
    }
    // The large matrices compress as bf16; the norms (all ~1.0, tiny) may be stored raw.
    assert.ok(huff >= g.tensors.length / 2, `${huff}/${g.tensors.length} tensors coded`);
    assert.ok(coded / raw < 0.8, `bf16 stories260K at ${(coded / raw).toFixed(3)} of raw`);
  });
});

describe('codec round trips on adversarial tensors', () => {
  it('sizes: empty, one element, not a multiple of the lane or chunk', () => {
    for (const dtype of ['bf16', 'fp16', 'fp32'] as const) {
      const eb = dtype === 'fp32' ? 4 : 2;
      for (const n of [0, 1, 2, 255, 257, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 300]) {
        const data = llamaLike(1, n, 0.02, dtype, n + 7);
        assert.equal(data.length, n * eb);
        const enc = roundTrip(data, dtype);
        assert.equal(c.inspect(enc.data).chunks, Math.ceil(n / CHUNK));
      }
    }
  });

  it('all exponents equal: a one-symbol code (1 bit per exponent), still bit-exact', () => {
    const next = prng(3);
    const v: number[] = [];
    for (let i = 0; i < 3 * CHUNK + 11; i++) v.push((i & 1 ? -1 : 1) * (1 + (next() & 0x7f) / 128));  // exponent 127 only
    const enc = roundTrip(bf16(v), 'bf16');
    assert.equal(enc.distinct, 1);
    assert.equal(enc.mode, 'huffman');
    assert.ok(enc.data.length < 0.6 * v.length * 2, `${enc.data.length} B for ${v.length * 2} B`);
  });

  it('uniform random bits do not compress and are stored raw (bf16, fp16, fp32)', () => {
    for (const dtype of ['bf16', 'fp16', 'fp32'] as const) {
      const data = randomBits(4 * CHUNK + 64, 11);
      const enc = roundTrip(data, dtype);
      assert.equal(enc.mode, 'raw', dtype);
      assert.ok(enc.entropyBits > 4.5, `${dtype}: ${enc.entropyBits}`);
      assert.ok(enc.data.length < data.length + 4096);
    }
  });

  it('NaN and Inf payloads, signed zeros and subnormals survive bit for bit', () => {
    const base = new Uint16Array(llamaLike(64, 1024, 0.02, 'bf16', 5).buffer);
    const specials16 = [0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x7fff, 0x8000, 0x0000, 0x0001, 0x807f];
    for (let i = 0; i < base.length; i += 97) base[i] = specials16[i % specials16.length];
    assert.equal(roundTrip(new Uint8Array(base.buffer), 'bf16').mode, 'huffman');
    const h = new Uint16Array(llamaLike(64, 1024, 0.02, 'fp16', 6).buffer);
    const specialsH = [0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfdff, 0x8000, 0x0001, 0x03ff];
    for (let i = 0; i < h.length; i += 89) h[i] = specialsH[i % specialsH.length];
    roundTrip(new Uint8Array(h.buffer), 'fp16');
    const f = new Uint32Array(llamaLike(64, 1024, 0.02, 'fp32', 7).buffer);
    const specials32 = [0x7f800000, 0xff800000, 0x7fc00000, 0x7fa5a5a5, 0xffffffff, 0x80000000, 0x00000001, 0x007fffff];
    for (let i = 0; i < f.length; i += 83) f[i] = specials32[i % specials32.length];
    roundTrip(new Uint8Array(f.buffer), 'fp32');
  });

  it('Llama-like synthetic bf16 (2.6 bits of exponent entropy) codes to under 70% of raw', () => {
    const data = llamaLike(512, 1024, 0.02, 'bf16', 9);
    const enc = roundTrip(data, 'bf16');
    assert.equal(enc.mode, 'huffman');
    assert.ok(enc.entropyBits > 2.4 && enc.entropyBits < 2.9, `entropy ${enc.entropyBits}`);
    assert.ok(enc.huffmanBits - enc.entropyBits < 0.1, `Huffman ${enc.huffmanBits} vs entropy ${enc.entropyBits}`);
    assert.ok(enc.data.length / data.length < 0.7, `ratio ${enc.data.length / data.length}`);
  });

  it('a byte count that is not whole elements is invalid_argument', () => {
    assert.throws(() => c.encode(new Uint8Array(3), 'bf16'), (e: unknown) => SwapserveNativeError.is(e, 'invalid_argument'));
    assert.throws(() => c.encode(new Uint8Array(6), 'fp32'), (e: unknown) => SwapserveNativeError.is(e, 'invalid_argument'));
    assert.throws(() => c.encode(new Uint8Array(4), 'int8' as CodecDType), (e: unknown) => SwapserveNativeError.is(e, 'invalid_argument'));
  });
});

describe('length-limited canonical Huffman', () => {
  it('Fibonacci frequencies (unbounded depth 25) are limited to 12 bits with a valid Kraft sum', () => {
    const f: number[] = [1, 1];
    while (f.length < 26) f.push(f[f.length - 1] + f[f.length - 2]);
    const lens = c.codeLengths(f, 12);
    assert.ok(Math.max(...lens) <= 12);
    assert.ok(lens.every((l) => l >= 1));
    const kraft = lens.reduce((s, l) => s + 2 ** -l, 0);
    assert.ok(kraft <= 1 && kraft > 0.99, `kraft ${kraft}`);
  });
  it('one used symbol gets a 1-bit code, unused symbols none', () => {
    assert.deepEqual(c.codeLengths([0, 5, 0], 12), [0, 1, 0]);
    assert.deepEqual(c.codeLengths([0, 0], 12), [0, 0]);
  });
});

describe('corrupt containers give a clear error, never a crash or wrong bytes', () => {
  const data = llamaLike(4, 40000, 0.02, 'bf16', 13);  // 160000 elements: 3 chunks, the last short
  const enc = c.encode(data, 'bf16');
  const good = Buffer.from(data.buffer, data.byteOffset, data.byteLength);

  it('truncated, extended, wrong magic, garbage', () => {
    assertCorrupt(() => c.decode(enc.data.subarray(0, 10)));
    assertCorrupt(() => c.decode(enc.data.subarray(0, enc.data.length - 1)));
    assertCorrupt(() => c.decode(Buffer.concat([enc.data, Buffer.alloc(1)])));
    const m = Buffer.from(enc.data);
    m[0] ^= 1;
    assertCorrupt(() => c.decode(m));
    assertCorrupt(() => c.decode(randomBits(4096, 1)));
  });

  it('every single-byte flip (header, tables, lanes, rest stream) is caught or decodes to the original bytes', () => {
    const next = prng(21);
    const info = c.inspect(enc.data);
    const positions = new Set<number>();
    for (let i = 0; i < info.payloadOffset; i += 7) positions.add(i);
    for (let k = 0; k < 400; k++) positions.add(info.payloadOffset + ((next() >>> 0) % (enc.data.length - info.payloadOffset)));
    let caught = 0;
    for (const p of positions) {
      const m = Buffer.from(enc.data);
      m[p] ^= 1 << ((next() >>> 0) % 8);
      try {
        const out = c.decode(m).data;
        assert.ok(out.equals(good), `flip at ${p} decoded to different bytes without an error`);
      } catch (e) {
        assert.ok(SwapserveNativeError.is(e, 'invalid_argument') && /codec: corrupt/.test((e as Error).message), String(e));
        caught++;
      }
    }
    assert.ok(caught > positions.size * 0.9, `${caught}/${positions.size} flips caught (the rest hit padding)`);
  });
});
