// Test hooks of the native addon (its `testing` object: native/src/runtime/testing.cc, engine/ops_binding.cc,
// engine/wrap.cc): fail or hold the next move, fail the next engine pass, hold an engine lease from JS, the CPU ops one
// by one. For tests and dev benches only; production modules never import this file.
import { loadAddon, type Backend } from './addon.ts';
import type { EngineOps } from './engine-native.ts';
import type { NativeErrorCode } from '../../contracts/errors.ts';
import { SwapserveNativeError } from './errors.ts';
import { callNative as call, Runtime } from './runtime.ts';
import { Engine } from './engine.ts';

/** A WeightsLease held from JS: the same path the engine takes, observable from a test. */
export interface TestLease {
  readonly groups: number;
  release(): void;
  /** Waits for every group through the lease, as the engine does, then hashes the model's bytes. */
  checksum(): Promise<string>;
}

interface TestingAddon {
  failNextMove(runtime: object, code: string): void;
  failNextPass(runtime: object, code: string): void;
  failNextEnginePass(engine: object, code: string): void;
  corruptOnProbe(runtime: object): void;
  holdNextMove(runtime: object): void;
  releaseHold(runtime: object): void;
  /** [arenaOffset, bytes] of each segment to hash. */
  acquireLease(runtime: object, id: string, segments: [number, number][]): TestLease;
  engineOps: EngineOps;
  codec: CodecHooks;
}

function testingOf(backend: Backend): TestingAddon {
  const t = (loadAddon(backend) as unknown as { testing?: TestingAddon }).testing;
  if (typeof t !== 'object' || t === null) {
    throw new SwapserveNativeError('addon', `the ${backend} addon has no testing hooks: rebuild it with \`npm run build:native\``);
  }
  return t;
}

/** The next move's device step fails with this native code (sticky codes make the runtime unusable). */
export function failNextMove(rt: Runtime, code: NativeErrorCode): void {
  call(() => testingOf(rt.backend).failNextMove(rt.native, code));
}

/** The runtime's next probe finds a sticky error: a context an earlier kernel corrupted, first reported unclassified. */
export function corruptOnProbe(rt: Runtime): void {
  call(() => testingOf(rt.backend).corruptOnProbe(rt.native));
}

/**
 * The next engine pass fails with this native code: that engine's next pass, or (given the runtime) the next pass of
 * any engine over it, such as one a worker has not created yet. On the CUDA backend cuda_sticky is a genuine sticky
 * device error inside the pass (a kernel that traps on its stream, reported by the pass's own CUDA checks); the CPU
 * backend throws the code the CUDA path gives. Either way a sticky pass marks the runtime unusable, as a move's does,
 * and every later pass over it fails with `unusable`.
 */
export function failNextPass(target: Engine | Runtime, code: NativeErrorCode): void {
  if (target instanceof Runtime) {
    call(() => testingOf(target.backend).failNextPass(target.native, code));
    return;
  }
  if (!(target instanceof Engine)) throw new SwapserveNativeError('invalid_argument', 'Expected an Engine or a Runtime for target');
  const backend = target.backend;
  if (backend !== 'cpu' && backend !== 'cuda') throw new SwapserveNativeError('state', 'engine is closed');
  call(() => testingOf(backend).failNextEnginePass(target.nativeForTest, code));
}

/**
 * The next move started waits at its start until the returned function is called (or close()), so a test can act
 * while a move is deterministically in flight.
 */
export function holdNextMove(rt: Runtime): () => void {
  const t = testingOf(rt.backend);
  call(() => t.holdNextMove(rt.native));
  return () => call(() => t.releaseHold(rt.native));
}

/** Holds an engine lease (AcquireWeights) on a registered model from JS. */
export function acquireLease(rt: Runtime, id: string): TestLease {
  const segs: [number, number][] = (rt.layoutOf(id)?.segments ?? []).map((s) => [s.arenaOffset, s.bytes]);
  return call(() => testingOf(rt.backend).acquireLease(rt.native, id, segs));
}

/** The CPU engine's ops one by one, synchronous, for checks against scalar references. */
export function engineOps(backend: Backend = 'cpu'): EngineOps {
  return testingOf(backend).engineOps;
}

/** The weight codec (native/src/runtime/codec): synchronous encode/decode/inspect on the JS thread, tests and benches. */
export interface CodecHooks {
  encode(data: Uint8Array, dtype: CodecDType, opts?: { forceRaw?: boolean; rawThreshold?: number }): {
    data: Buffer; mode: 'raw' | 'huffman'; entropyBits: number; huffmanBits: number; maxLen: number; distinct: number;
    codedBytes: number; seconds: number;
  };
  decode(container: Uint8Array): { data: Buffer; seconds: number };
  inspect(container: Uint8Array): {
    dtype: CodecDType; mode: 'raw' | 'huffman'; elements: number; chunks: number; rawBytes: number; bytes: number; payloadOffset: number;
  };
  codeLengths(freqs: number[], maxLen: number): number[];
  /** The containers as one host image's entries, decoded as the runtime's CPU swap-in does (DecodeEntries) on `threads` threads, outputs back to back. */
  decodeEntries(containers: Uint8Array[], rawBytes: number[], threads: number): { data: Buffer; seconds: number };
  /** Where a compressed GPU swap-in puts its work in a codec work buffer of workBytes (throws budget when the tables leave too little). */
  planWork(tablesBytes: number, totalChunks: number, workBytes: number): { tablesAt: number; sumsAt: number; errAt: number; slotsAt: number; slotBytes: number; usedBytes: number };
}
export type CodecDType = 'bf16' | 'fp16' | 'fp32';

/** The codec's hooks, each call mapped to SwapserveNativeError like every native call. */
export function codec(backend: Backend = 'cpu'): CodecHooks {
  const c = testingOf(backend).codec;
  return {
    encode: (d, t, o) => call(() => c.encode(d, t, o)),
    decode: (d) => call(() => c.decode(d)),
    inspect: (d) => call(() => c.inspect(d)),
    codeLengths: (f, m) => call(() => c.codeLengths(f, m)),
    decodeEntries: (cs, raw, t) => call(() => c.decodeEntries(cs, raw, t)),
    planWork: (tb, n, w) => call(() => c.planWork(tb, n, w)),
  };
}
