// Bounds on every count and size a model file declares, checked before any of them sizes an allocation or a loop:
// architectural maxima (well above any published llama/mistral/qwen2 model) and limits derived from the file itself.
import type { ModelConfig } from '../types.ts';
import { ModelFileError } from './errors.ts';

/**
 * Largest hyper-parameters accepted. Published maxima for reference: 126 layers, hidden 16384, FFN 53248,
 * 128 heads, head_dim 256, vocab 262144 (Gemma), 10M positions (Llama 4 Scout).
 */
export const ARCH_LIMITS = {
  numLayers: 1024,
  hiddenSize: 1 << 17,
  intermediateSize: 1 << 20,
  numHeads: 4096,
  headDim: 4096,
  vocabSize: 1 << 22,
  maxPositions: 1 << 27,
  /** RoPE base frequency (Llama 3: 5e5, some long-context models 1e8). */
  ropeTheta: 1e12,
  /** RoPE scaling factor and original positions. */
  ropeFactor: 1 << 12,
} as const;

/** GGUF header bounds (besides "the bytes left in the file can hold it"). */
export const GGUF_LIMITS = {
  /** Tensors in one file (large MoE checkpoints hold ~10^5). */
  tensors: 1 << 20,
  /** Metadata entries. */
  kvs: 1 << 16,
  /** Elements of one metadata array (a vocabulary, its scores, merges). */
  arrayItems: ARCH_LIMITS.vocabSize,
  /** Bytes of metadata + tensor infos (a 256k vocab with merges is ~20 MB). */
  headerBytes: 256 << 20,
} as const;

/** Largest rank of a tensor (safetensors and GGUF). */
export const MAX_TENSOR_DIMS = 8;

type Num = keyof typeof ARCH_LIMITS;
const bad = (file: string, m: string): never => { throw new ModelFileError('bad_config', file, m); };

/** A finite number in (0, max] and, for counts, an integer; `name` is the file's own key. */
export function checkBound(file: string, name: string, v: number, limit: Num, integer: boolean): void {
  if (!Number.isFinite(v)) bad(file, `${name} is ${v}; it must be a finite number`);
  if (integer && !Number.isSafeInteger(v)) bad(file, `${name} is ${v}; it must be an integer`);
  if (!(v > 0)) bad(file, `${name} is ${v}; it must be positive`);
  if (v > ARCH_LIMITS[limit]) bad(file, `${name} is ${v}, over the limit of ${ARCH_LIMITS[limit]}`);
}

/** The bounds of every hyper-parameter of a parsed config (names are the canonical ones plus the file's). */
export function checkArchLimits(file: string, c: ModelConfig): void {
  checkBound(file, 'the layer count (num_hidden_layers / block_count)', c.numLayers, 'numLayers', true);
  checkBound(file, 'hidden_size / embedding_length', c.hiddenSize, 'hiddenSize', true);
  checkBound(file, 'intermediate_size / feed_forward_length', c.intermediateSize, 'intermediateSize', true);
  checkBound(file, 'the attention head count', c.numHeads, 'numHeads', true);
  checkBound(file, 'the KV head count', c.numKvHeads, 'numHeads', true);
  checkBound(file, 'head_dim', c.headDim, 'headDim', true);
  checkBound(file, 'vocab_size', c.vocabSize, 'vocabSize', true);
  checkBound(file, 'the context length (max_position_embeddings / context_length)', c.maxPositions, 'maxPositions', true);
  checkBound(file, 'the RoPE base (rope_theta / rope.freq_base)', c.ropeTheta, 'ropeTheta', false);
  if (c.ropeScaling) {
    checkBound(file, 'the RoPE scaling factor', c.ropeScaling.factor, 'ropeFactor', false);
    if (c.ropeScaling.kind === 'llama3') {
      checkBound(file, 'rope_scaling.low_freq_factor', c.ropeScaling.lowFreqFactor, 'ropeFactor', false);
      checkBound(file, 'rope_scaling.high_freq_factor', c.ropeScaling.highFreqFactor, 'ropeFactor', false);
      checkBound(file, 'rope_scaling.original_max_position_embeddings', c.ropeScaling.originalMaxPositions, 'maxPositions', true);
    }
  }
  if (!Number.isFinite(c.rmsNormEps)) bad(file, `rms_norm_eps is ${c.rmsNormEps}; it must be a finite number`);
  const ids = [...(c.bosTokenId === null ? [] : [c.bosTokenId]), ...c.eosTokenIds];
  for (const id of ids) if (!Number.isSafeInteger(id) || id < 0) bad(file, `special token id ${id} must be a non-negative integer`);
}

/**
 * Fewest weight bytes a config implies (every tensor in a dtype of `bytesPerElement`, 2 unless the file holds
 * block-quantized tensors); a double, exact enough to compare.
 */
export function minimumWeightBytes(c: ModelConfig, bytesPerElement = 2): number {
  const C = c.hiddenSize, F = c.intermediateSize, V = c.vocabSize;
  const Q = c.numHeads * c.headDim, KV = c.numKvHeads * c.headDim;
  const layer = 2 * C + 2 * Q * C + 2 * KV * C + 3 * F * C + (c.attentionBias ? Q + 2 * KV : 0);
  return bytesPerElement * (V * C * (c.tieWordEmbeddings ? 1 : 2) + C + c.numLayers * layer);
}

/**
 * The config against what its files hold: the weights it implies must fit in the tensor bytes found. With the
 * layer count also capped by ARCH_LIMITS, the expected-tensor list built after this is small whatever the header
 * says (a block_count of 2^26 costs a multiplication here, not 5 GB of heap).
 */
export function checkAgainstFiles(file: string, c: ModelConfig, tensorBytes: number, bytesPerElement = 2): void {
  const bytes = minimumWeightBytes(c, bytesPerElement);
  if (bytes > tensorBytes) {
    bad(file, `the config (${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize}) implies at least ${bytes} bytes of weights but the file(s) hold ${tensorBytes}`);
  }
}
