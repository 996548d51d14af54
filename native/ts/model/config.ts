// Hyper-parameters from config.json (Hugging Face) or GGUF metadata, normalised to ModelConfig and checked.
import { z } from 'zod';

import type { Arch, ModelConfig, RopeScaling } from '../types.ts';
import { ModelFileError } from './errors.ts';
import { metaNumber, metaString, type GgufFile } from './gguf.ts';
import { checkArchLimits } from './limits.ts';

const posInt = z.number().int().positive();

const RopeScalingSchema = z.union([
  z.object({
    rope_type: z.literal('llama3').optional(), type: z.literal('llama3').optional(),
    factor: z.number().positive(), low_freq_factor: z.number().positive(), high_freq_factor: z.number().positive(),
    original_max_position_embeddings: posInt,
  }).refine((r) => r.rope_type === 'llama3' || r.type === 'llama3', 'rope_type must be llama3'),
  z.object({
    rope_type: z.literal('linear').optional(), type: z.literal('linear').optional(), factor: z.number().positive(),
  }).refine((r) => r.rope_type === 'linear' || r.type === 'linear', 'rope_type must be linear'),
]);

const HfConfigSchema = z.object({
  model_type: z.string(),
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.optional(),
  head_dim: posInt.nullish(),
  vocab_size: posInt,
  max_position_embeddings: posInt.default(4096),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: z.union([RopeScalingSchema, z.null()]).optional(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  bos_token_id: z.number().int().nonnegative().nullish(),
  eos_token_id: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish(),
}).loose();

export type HfConfigJson = z.input<typeof HfConfigSchema>;

const ARCHES: Record<string, Arch> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };

function toRopeScaling(r: z.infer<typeof RopeScalingSchema> | null | undefined): RopeScaling | null {
  if (!r) return null;
  if ('low_freq_factor' in r) {
    return { kind: 'llama3', factor: r.factor, lowFreqFactor: r.low_freq_factor, highFreqFactor: r.high_freq_factor,
      originalMaxPositions: r.original_max_position_embeddings };
  }
  return { kind: 'linear', factor: r.factor };
}

/** config.json → ModelConfig (HF llama-family: rotate_half RoPE). */
export function parseHfConfig(file: string, json: unknown): ModelConfig {
  const arch = typeof json === 'object' && json !== null ? (json as { model_type?: unknown }).model_type : undefined;
  if (typeof arch === 'string' && !(arch in ARCHES)) {
    throw new ModelFileError('unsupported_arch', file, `model_type "${arch}" is not supported (llama, mistral, qwen2)`);
  }
  const r = HfConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ModelFileError('bad_config', file, `invalid config: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const c = r.data;
  const numHeads = c.num_attention_heads;
  const headDim = c.head_dim ?? c.hidden_size / numHeads;
  const eos = c.eos_token_id;
  const cfg: ModelConfig = {
    arch: ARCHES[c.model_type],
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads: c.num_key_value_heads ?? numHeads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling: toRopeScaling(c.rope_scaling),
    ropeStyle: 'half',
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    attentionBias: c.model_type === 'qwen2' ? true : (c.attention_bias ?? false),
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
  };
  checkConfig(file, cfg);
  return cfg;
}

/** Invariants every config must satisfy, whatever its source. */
export function checkConfig(file: string, c: ModelConfig): void {
  const bad = (m: string) => { throw new ModelFileError('bad_config', file, m); };
  // Finite, integral where counted, and within architectural maxima before anything below (or a caller) sizes by them.
  checkArchLimits(file, c);
  if (!Number.isInteger(c.headDim) || c.headDim <= 0) bad(`head_dim ${c.headDim} must be a positive integer (hidden_size / num_attention_heads)`);
  if (c.headDim % 2 !== 0) bad(`head_dim ${c.headDim} must be even for RoPE`);
  if (c.numHeads % c.numKvHeads !== 0) bad(`num_attention_heads ${c.numHeads} must be a multiple of num_key_value_heads ${c.numKvHeads}`);
  if (c.bosTokenId !== null && c.bosTokenId >= c.vocabSize) bad(`bos_token_id ${c.bosTokenId} is outside the vocabulary (${c.vocabSize})`);
  for (const e of c.eosTokenIds) if (e >= c.vocabSize) bad(`eos_token_id ${e} is outside the vocabulary (${c.vocabSize})`);
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) bad(`rms_norm_eps ${c.rmsNormEps} must be in (0, 1)`);
}

/** The shortest decimal that is the same float32 (GGUF stores 1e-5 as 9.99999974e-6). */
function f32Decimal(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === Math.fround(v)) return d;
  }
  return v;
}

/**
 * GGUF metadata → ModelConfig. `vocabSize` and tying come from the tensors (token_embd's rows; output present).
 * llama → interleaved RoPE (llama.cpp permutes Q/K rows at conversion); qwen2 → rotate_half ("neox").
 */
export function parseGgufConfig(g: GgufFile, vocabRows: number, hasOutput: boolean): ModelConfig {
  const file = g.file;
  const archName = metaString(g, 'general.architecture');
  if (archName === undefined) throw new ModelFileError('bad_metadata', file, 'general.architecture is missing');
  if (!(archName in ARCHES)) throw new ModelFileError('unsupported_arch', file, `architecture "${archName}" is not supported (llama, mistral, qwen2)`);
  const arch = ARCHES[archName];
  const req = (k: string): number => {
    const v = metaNumber(g, `${archName}.${k}`);
    if (v === undefined) throw new ModelFileError('bad_metadata', file, `${archName}.${k} is missing`);
    if (!(v > 0)) throw new ModelFileError('bad_metadata', file, `${archName}.${k} must be positive, got ${v}`);
    return v;
  };
  const hiddenSize = req('embedding_length');
  const numHeads = req('attention.head_count');
  const kvRaw = g.metadata.get(`${archName}.attention.head_count_kv`);
  if (Array.isArray(kvRaw)) throw new ModelFileError('unsupported_arch', file, 'per-layer head_count_kv is not supported');
  const numKvHeads = metaNumber(g, `${archName}.attention.head_count_kv`) ?? numHeads;
  const headDim = metaNumber(g, `${archName}.attention.key_length`) ?? metaNumber(g, `${archName}.rope.dimension_count`) ?? hiddenSize / numHeads;
  const vocabMeta = metaNumber(g, `${archName}.vocab_size`);
  if (vocabMeta !== undefined && vocabMeta !== vocabRows) {
    throw new ModelFileError('bad_config', file, `${archName}.vocab_size ${vocabMeta} differs from token_embd rows ${vocabRows}`);
  }
  let ropeScaling: RopeScaling | null = null;
  const scalingType = metaString(g, `${archName}.rope.scaling.type`);
  if (scalingType === 'linear') {
    const factor = metaNumber(g, `${archName}.rope.scaling.factor`);
    if (!factor || factor <= 0) throw new ModelFileError('bad_metadata', file, 'rope.scaling.type linear without a positive factor');
    ropeScaling = { kind: 'linear', factor: f32Decimal(factor) };
  } else if (scalingType !== undefined && scalingType !== 'none') {
    throw new ModelFileError('bad_config', file, `rope scaling "${scalingType}" is not supported (linear only in GGUF)`);
  }
  const bos = metaNumber(g, 'tokenizer.ggml.bos_token_id');
  const eos = metaNumber(g, 'tokenizer.ggml.eos_token_id');
  const eot = metaNumber(g, 'tokenizer.ggml.eot_token_id');
  const eosTokenIds = [...new Set([eos, eot].filter((x): x is number => x !== undefined))];
  const cfg: ModelConfig = {
    arch,
    hiddenSize,
    intermediateSize: req('feed_forward_length'),
    numLayers: req('block_count'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: vocabRows,
    maxPositions: req('context_length'),
    rmsNormEps: f32Decimal(metaNumber(g, `${archName}.attention.layer_norm_rms_epsilon`) ?? 1e-5),
    ropeTheta: f32Decimal(metaNumber(g, `${archName}.rope.freq_base`) ?? 10000),
    ropeScaling,
    ropeStyle: arch === 'qwen2' ? 'half' : 'interleaved',
    tieWordEmbeddings: !hasOutput,
    attentionBias: arch === 'qwen2',
    bosTokenId: bos ?? null,
    eosTokenIds,
  };
  checkConfig(file, cfg);
  return cfg;
}

/**
 * llama.cpp's `rope_freqs.weight` for Llama 3.x RoPE scaling (convert_hf_to_gguf.py): per frequency pair, the
 * divisor of the base frequency: 1 for short wavelengths, `factor` for long ones, smoothly in between. (D/2)
 */
export function llama3RopeFactors(theta: number, headDim: number, s: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }): Float32Array {
  const out = new Float32Array(headDim / 2);
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < headDim / 2; i++) {
    const freq = 1 / Math.fround(theta ** ((2 * i) / headDim));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** Recover Llama 3 scaling parameters from a GGUF's rope_freqs values (Meta's published low/high/original). */
export function inferLlama3Scaling(file: string, theta: number, headDim: number, values: Float32Array): RopeScaling {
  let factor = 1;
  for (const v of values) factor = Math.max(factor, v);
  for (const [low, high, orig] of [[1, 4, 8192], [1, 4, 4096], [1, 4, 2048]]) {
    const s = { kind: 'llama3' as const, factor: f32Decimal(factor), lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: orig };
    const want = llama3RopeFactors(theta, headDim, s);
    if (want.every((w, i) => Math.abs(w - values[i]) <= 1e-3 * Math.max(1, Math.abs(w)))) return s;
  }
  throw new ModelFileError('bad_config', file, `rope_freqs.weight (max factor ${factor}) does not match Llama 3 RoPE scaling with low 1 / high 4`);
}
