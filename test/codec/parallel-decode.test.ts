// The CPU swap-in's parallel decode (codec::DecodeEntries, the runtime's compressed swap-in on the CPU backend): the
// chunks of every entry of a group decode on a pool of threads, bit-exact with the sequential decoder, and a corrupt
// image reports exactly the error the sequential decode (Decode over the entries in order) meets first.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { llamaLike, randomBits } from '../../bench/codec/synth.ts';
import { prng } from '../../native/ts/model/fill.ts';
import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { codec } from '../../native/ts/testing.ts';

const c = codec('cpu');

/** The first error a sequential decode of the entries in order throws (as the swap-in did before), or null. */
function sequentialError(containers: Uint8Array[]): string | null {
  for (const k of containers) {
    try {
      c.decode(k);
    } catch (e) {
      assert.ok(SwapserveNativeError.is(e, 'invalid_argument'), String(e));
      return (e as Error).message;
    }
  }
  return null;
}

function parallelError(containers: Uint8Array[], raw: number[], threads: number): string | null {
  try {
    c.decodeEntries(containers, raw, threads);
    return null;
  } catch (e) {
    assert.ok(SwapserveNativeError.is(e, 'invalid_argument'), String(e));
    return (e as Error).message;
  }
}

describe('parallel CPU decode of a host image (DecodeEntries)', () => {
  // Four tensors: bf16 with 5 chunks (the last short), fp32, fp16, and random bits (stored raw).
  const tensors = [llamaLike(8, 40000, 0.02, 'bf16', 3), llamaLike(3, 30000, 0.03, 'fp32', 4), llamaLike(2, 70000, 0.02, 'fp16', 5), randomBits(300000, 6)];
  const dtypes = ['bf16', 'fp32', 'fp16', 'bf16'] as const;
  const enc = tensors.map((t, i) => c.encode(t, dtypes[i]).data);
  const raw = tensors.map((t) => t.byteLength);
  const whole = Buffer.concat(tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength)));

  it('is bit-exact with the sequential decoder on 1, 2, 3 and 8 threads', () => {
    assert.ok(c.inspect(enc[0]).chunks >= 5 && c.inspect(enc[3]).mode === 'raw');
    for (const threads of [1, 2, 3, 8]) assert.ok(c.decodeEntries(enc, raw, threads).data.equals(whole), `${threads} threads`);
  });

  it('reports the error the sequential decode meets first: per entry, header/tables, then its lowest chunk, then its hash', () => {
    const next = prng(17);
    let compared = 0;
    for (let round = 0; round < 120; round++) {
      // Corrupt one or two entries at random positions (tables, lanes, rest streams, raw payloads).
      const m = enc.map((k) => Buffer.from(k));
      for (let f = 0; f < 1 + (round % 2); f++) {
        const e = (next() >>> 0) % m.length;
        const p = (next() >>> 0) % m[e].length;
        m[e][p] ^= 1 << ((next() >>> 0) % 8);
      }
      const want = sequentialError(m);
      for (const threads of [1, 3]) assert.equal(parallelError(m, raw, threads), want, `round ${round}, ${threads} threads`);
      if (want !== null) compared++;
    }
    assert.ok(compared > 60, `${compared} corrupt images compared`);
  });

  it('two failing chunks of one entry: the lower one is reported, whichever thread finishes first', () => {
    const info = c.inspect(enc[0]);
    const m = Buffer.from(enc[0]);
    // Flip bytes late in the payload (a late chunk) and early (chunk 0's lanes).
    m[m.length - 40] ^= 0xff;
    m[info.payloadOffset + 600] ^= 0xff;
    const want = sequentialError([m]);
    assert.match(want ?? '', /chunk 0/);
    for (let i = 0; i < 5; i++) assert.equal(parallelError([m, enc[1]], [raw[0], raw[1]], 4), want);
  });
});
