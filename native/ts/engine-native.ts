// The engine's part of the native addon: its TypeScript shape, the ModelDesc built from a ModelSource, and the
// loader. The JS layer validates; the native layer re-checks only what would corrupt memory.
import type { DType, ModelSource, TensorPlacement } from './types.ts';
import { loadAddon, type Backend } from './addon.ts';
import { EngineError } from './engine-errors.ts';
import type { EngineTuning } from './tuning.ts';

/** DType codes of native/src/engine/backend.h. */
export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };

export interface NativeTensorRef { offset: number; dtype: number }
export interface NativeLayer {
  attnNorm: NativeTensorRef; wq: NativeTensorRef; wk: NativeTensorRef; wv: NativeTensorRef;
  bq: NativeTensorRef | null; bk: NativeTensorRef | null; bv: NativeTensorRef | null;
  wo: NativeTensorRef; ffnNorm: NativeTensorRef; w1: NativeTensorRef; w2: NativeTensorRef; w3: NativeTensorRef;
}
/** Mirrors swapserve::engine::ModelDesc. */
export interface NativeModelDesc {
  hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; headDim: number;
  vocab: number; maxPositions: number; rmsEps: number; ropeTheta: number; ropeInterleaved: boolean;
  /** 0 none, 1 llama3, 2 linear */
  ropeScaling: number; ropeFactor: number; ropeLowFreqFactor: number; ropeHighFreqFactor: number;
  ropeOriginalMaxPositions: number;
  tokEmbeddings: NativeTensorRef; layer: NativeLayer[]; norm: NativeTensorRef; output: NativeTensorRef;
}

/** One forward pass: sequence b feeds tokens[sum(counts[<b]) ..][0 .. counts[b]) at positions[b]... */
export interface NativeBatch {
  seqs: Int32Array; counts: Int32Array; positions: Int32Array; tokens: Int32Array;
  temperature: Float32Array; topP: Float32Array; topK: Int32Array;
  /** Per-sequence PRNG state; the step writes the advanced states back. */
  rng: BigUint64Array;
  // ---- Optional sampling extras (issue 12; absent = off). The native sampler applies them in this order. ----
  /** Ids >= vocabLimit (embedding rows past the tokenizer's vocabulary) are never sampled. */
  vocabLimit?: number;
  /** Allowed-id bitmasks, ceil(V/32) words each; maskOff[b] = word offset of b's mask, -1 = unconstrained. */
  maskOff?: Int32Array; mask?: Uint32Array;
  /** logit_bias as ragged lists: b's entries are [biasOff[b], biasOff[b+1]). */
  biasOff?: Int32Array; biasIds?: Int32Array; biasVals?: Float32Array;
  /** Penalty history: b's distinct prompt + generated ids with their generated counts, [histOff[b], histOff[b+1]). */
  histOff?: Int32Array; histIds?: Int32Array; histCounts?: Int32Array;
  presencePenalty?: Float32Array; frequencyPenalty?: Float32Array; repetitionPenalty?: Float32Array;
  minP?: Float32Array;
  /** -1 = no logprobs, else top alternatives (<= 20). The step writes logprob (B), topIds / topLogprobs (B, 20). */
  numLogprobs?: Int32Array; logprob?: Float32Array; topIds?: Int32Array; topLogprobs?: Float32Array;
  /** (src, dst, len) triples applied before the pass: dst gets a copy of src's first len KV positions (n > 1). */
  forks?: Int32Array;
}

export interface NativeEngine {
  /** Forward + sample: the next token of each sequence (B). */
  step(batch: NativeBatch): Promise<Int32Array>;
  /** Forward only: fp32 logits (B, V) of each sequence's last input token (tests). */
  logits(batch: Pick<NativeBatch, 'seqs' | 'counts' | 'positions' | 'tokens'>): Promise<Float32Array>;
  release(seq: number): void;
  close(): void;
  readonly backend: 'cpu' | 'cuda' | null;
  readonly busy: boolean;
  /** Arena mode only: bytes of the engine's own scratch pool in use. */
  readonly scratchUsedBytes: number | null;
}

export interface NativeEngineOptions {
  maxBatch: number; maxContext: number; threads: number;
  /** CUDA backend tuning (BackendOptions::cuda); absent: the C++ defaults, the same as tuning.ts. */
  tuning?: EngineTuning;
  /** Arena mode only. */
  scratchBudgetBytes?: number; numGroups?: number;
}

export interface EngineOps {
  matmul(x: Float32Array, w: Uint8Array, wdtype: number, bias: Uint8Array | null, bdtype: number, T: number, I: number, O: number): Float32Array;
  rmsnorm(x: Float32Array, w: Uint8Array, wdtype: number, T: number, C: number, eps: number): Float32Array;
  ropeInvFreq(d: { headDim: number; ropeTheta: number; ropeScaling: number; ropeFactor: number; ropeLowFreqFactor: number; ropeHighFreqFactor: number; ropeOriginalMaxPositions: number }): Float32Array;
  rope(x: Float32Array, pos: Int32Array, heads: number, D: number, invFreq: Float32Array, interleaved: boolean): Float32Array;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, pos0: number, H: number, KVH: number, D: number): Float32Array;
  swiglu(g: Float32Array, u: Float32Array): Float32Array;
  toF32(bytes: Uint8Array, dtype: number): Float32Array;
  sample(logits: Float32Array, temperature: number, topP: number, topK: number, rng: bigint): { token: number; rng: bigint };
  /** Best of `reps` parallel reads of `bytes` (all cores): the memory floor of a decode step. */
  readBandwidth(bytes: Uint8Array, reps: number): { bytesPerMs: number; checksum: number; threads: number };
}

export interface EngineAddon {
  build: 'cpu' | 'cuda';
  Engine: new (runtimeOrArena: object | Uint8Array, modelId: string, desc: NativeModelDesc, opts: NativeEngineOptions) => NativeEngine;
}

/**
 * The addon of a backend, loaded once through addon.ts (the module the runtime uses, so leases and engines share
 * native objects). Engine.create takes the runtime's own addon; the host-arena mode uses the CPU addon.
 */
export function loadEngineAddon(backend: Backend = 'cpu'): EngineAddon {
  const mod = loadAddon(backend) as unknown;
  if (!isEngineAddon(mod)) throw new EngineError('native', `the ${backend} addon has no Engine class: rebuild it with \`npm run build:native\``);
  return mod;
}

export function isEngineAddon(v: unknown): v is EngineAddon {
  return typeof v === 'object' && v !== null && typeof (v as { Engine?: unknown }).Engine === 'function';
}

function ref(t: TensorPlacement): NativeTensorRef {
  return { offset: t.offset, dtype: DTYPE_CODE[t.dtype] };
}

/**
 * ModelDesc for the native engine from a validated ModelSource: every tensor the architecture needs, with the
 * shape the config implies, inside the arena. Throws EngineError('invalid_request') naming the first mismatch.
 */
export function buildModelDesc(source: ModelSource): NativeModelDesc {
  const c = source.config;
  const byName = new Map(source.layout.tensors.map((t) => [t.name, t]));
  const C = c.hiddenSize, F = c.intermediateSize, H = c.numHeads, KVH = c.numKvHeads, D = c.headDim, V = c.vocabSize;
  const bad = (msg: string): never => { throw new EngineError('invalid_request', `${source.path}: ${msg}`); };
  for (const [k, v] of Object.entries({ hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: KVH, headDim: D, vocabSize: V, numLayers: c.numLayers })) {
    if (!Number.isInteger(v) || v < 1) bad(`Expected a positive integer for config.${k} but received ${v}`);
  }
  if (H % KVH !== 0) bad(`numHeads (${H}) is not a multiple of numKvHeads (${KVH})`);
  if (D % 2 !== 0) bad(`headDim (${D}) must be even for RoPE`);
  const get = (name: string, shape: number[], group: number): NativeTensorRef => {
    const t = byName.get(name) ?? bad(`tensor ${name} is missing from the layout`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      bad(`Expected shape [${shape}] for ${name} but received [${t.shape}]`);
    }
    if (t.offset < 0 || t.offset + t.bytes > source.layout.totalBytes) bad(`tensor ${name} lies outside the arena`);
    if (t.group !== group) bad(`Expected ${name} in group ${group} but it is in group ${t.group}`);
    return ref(t);
  };
  const L = c.numLayers;
  const layer: NativeLayer[] = [];
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    const g = i + 1;
    const bias = (n: string, rows: number) => (c.attentionBias ? get(p + n, [rows], g) : null);
    layer.push({
      attnNorm: get(p + 'attn_norm', [C], g),
      wq: get(p + 'wq', [H * D, C], g), wk: get(p + 'wk', [KVH * D, C], g), wv: get(p + 'wv', [KVH * D, C], g),
      bq: bias('bq', H * D), bk: bias('bk', KVH * D), bv: bias('bv', KVH * D),
      wo: get(p + 'wo', [C, H * D], g),
      ffnNorm: get(p + 'ffn_norm', [C], g),
      w1: get(p + 'w1', [F, C], g), w2: get(p + 'w2', [C, F], g), w3: get(p + 'w3', [F, C], g),
    });
  }
  const tok = get('tok_embeddings', [V, C], 0);
  const rs = c.ropeScaling;
  return {
    hidden: C, intermediate: F, layers: L, heads: H, kvHeads: KVH, headDim: D, vocab: V,
    maxPositions: c.maxPositions, rmsEps: c.rmsNormEps, ropeTheta: c.ropeTheta,
    ropeInterleaved: c.ropeStyle === 'interleaved',
    ropeScaling: rs === null ? 0 : rs.kind === 'llama3' ? 1 : 2,
    ropeFactor: rs?.factor ?? 1,
    ropeLowFreqFactor: rs?.kind === 'llama3' ? rs.lowFreqFactor : 1,
    ropeHighFreqFactor: rs?.kind === 'llama3' ? rs.highFreqFactor : 4,
    ropeOriginalMaxPositions: rs?.kind === 'llama3' ? rs.originalMaxPositions : 8192,
    tokEmbeddings: tok,
    layer,
    norm: get('norm', [C], L + 1),
    output: c.tieWordEmbeddings ? tok : get('output', [V, C], L + 1),
  };
}
