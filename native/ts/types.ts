// Types shared by the model readers, the weights runtime and the engine (the TS side of native/src/common/).

export type FloatDType = 'f32' | 'f16' | 'bf16';
/** GGUF block-quantized types (llama.cpp layouts; native/ts/model/quant.ts). Only weight matrices may be quantized. */
export type QuantDType = 'q8_0' | 'q4_0' | 'q4_k' | 'q5_k' | 'q6_k';
export type DType = FloatDType | QuantDType;
export const DTYPE_BYTES: Record<FloatDType, number> = { f32: 4, f16: 2, bf16: 2 };

export type Arch = 'llama' | 'mistral' | 'qwen2';

export type RopeScaling =
  | { kind: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { kind: 'linear'; factor: number };

/** Architecture hyper-parameters, normalised from config.json or GGUF metadata. */
export interface ModelConfig {
  arch: Arch;
  hiddenSize: number; // C
  intermediateSize: number; // FFN hidden
  numLayers: number; // L
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /**
   * How RoPE pairs dimensions: 'half' rotates (i, i + d/2) as Hugging Face's rotate_half does;
   * 'interleaved' rotates (2i, 2i + 1) as Meta's original code and GGUF llama files (llama.cpp "normal" mode).
   */
  ropeStyle: 'half' | 'interleaved';
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  attentionBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/**
 * Canonical tensor names (the engine's names, whatever the file called them):
 *   tok_embeddings (V, C); norm (C); output (V, C) unless tied;
 *   layers.{i}.attn_norm (C); layers.{i}.wq (H*D, C); .wk (KVH*D, C); .wv (KVH*D, C); .wo (C, H*D);
 *   layers.{i}.bq (H*D); .bk (KVH*D); .bv (KVH*D)   [Qwen2 only]
 *   layers.{i}.ffn_norm (C); .w1 gate (F, C); .w2 down (C, F); .w3 up (F, C)
 * Matrices are row-major [out][in], as both safetensors and GGUF store them.
 */
export interface TensorPlacement {
  name: string;
  dtype: DType;
  shape: number[];
  /** Bytes from the arena's start; a multiple of LAYOUT_ALIGN. */
  offset: number;
  bytes: number;
  /** Layer group: 0 = embeddings, 1..L = layer i-1, L+1 = final norm + output head. */
  group: number;
}

/** One contiguous read: `bytes` bytes of `file` at `fileOffset` land at `arenaOffset` in the arena. */
export interface CopySegment {
  file: string;
  fileOffset: number;
  bytes: number;
  arenaOffset: number;
}

/** Byte alignment of every tensor in an arena (so kernels can use vector loads in place). */
export const LAYOUT_ALIGN = 256;

/** How a model's weights are laid out in one contiguous arena (the same in host and GPU tiers). */
export interface WeightLayout {
  totalBytes: number;
  tensors: TensorPlacement[];
  /** Byte range [start, end) of each group, in order; groups are contiguous and ascending. */
  groups: { start: number; end: number }[];
  /** Sorted by arenaOffset; together they cover every tensor's bytes exactly once. */
  segments: CopySegment[];
}

export interface TokenizerSource {
  kind: 'gguf' | 'hf';
  /** tokenizer.json for 'hf'; the .gguf file for 'gguf'. */
  path: string;
  chatTemplate: string | null;
}

/** A validated model: everything needed to load, place and run it. */
export interface ModelSource {
  path: string;
  format: 'safetensors' | 'gguf';
  config: ModelConfig;
  layout: WeightLayout;
  /** Dtype of the weight matrices (norms may be f32 in GGUF). */
  dtype: DType;
  parameterCount: number;
  files: string[];
  tokenizer: TokenizerSource | null;
}
