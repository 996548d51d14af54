// Writers for synthetic models (tests, benchmarks, demo models): HF folders and GGUF files with seeded weights.
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { DTYPE_BYTES, type DType, type FloatDType, type ModelConfig, type QuantDType } from '../types.ts';
import { llama3RopeFactors } from './config.ts';
import { decodeValues, encodeValues, prng, randomEncoded, randomValues } from './fill.ts';
import { DTYPE_GGML, GGML_DTYPE, readGguf } from './gguf.ts';
import { writeGguf, type GgufKv, type GgufScalarType, type GgufTensorSpec } from './gguf-writer.ts';
import { isQuant, quantBytes, quantize, QUANT_BLOCK } from './quant.ts';
import { writeSafetensors, type TensorData } from './safetensors.ts';
import { canonicalToGguf, canonicalToHf, expectedTensors, ggufToCanonical } from './tensors.ts';
import type { GgufVocab } from './tiny-vocab.ts';

/** Standard deviation of random matrices: small enough that activations stay O(1) through the layers. */
const WEIGHT_STD = 0.02;

/**
 * Every tensor the config needs, in arena order, with a generator of its seeded f32 values (HF conventions:
 * rotate_half Q/K). The generators share one PRNG stream: call them once each, in order.
 */
function syntheticTensors(cfg: ModelConfig, seed: number): {
  name: string; shape: number[]; values: () => Float32Array; encoded: (dtype: FloatDType) => Uint8Array;
}[] {
  const next = prng(seed);
  return expectedTensors(cfg).map((t) => {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const std = t.name === 'norm' || t.name.endsWith('_norm') ? 0 : WEIGHT_STD;
    // `encoded` draws the same PRNG words as `values` and yields the same values rounded to dtype.
    return { name: t.name, shape: t.shape, values: () => randomValues(count, std, 1, next), encoded: (dtype: FloatDType) => randomEncoded(count, std, 1, dtype, next) };
  });
}

/**
 * llama.cpp's Q/K row permutation (convert_hf_to_gguf.py `permute`): HF rotate_half pairs (i, i + D/2) become
 * interleaved pairs (2i, 2i + 1) within each head, so an HF model and its GGUF conversion compute the same thing.
 */
function permuteRows(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < D / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * D + j * (D / 2) + i) * cols;
        const dst = (h * D + 2 * i + j) * cols;
        out.set(values.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** ModelConfig → Hugging Face config.json. */
export function toHfConfigJson(cfg: ModelConfig, dtype: FloatDType): Record<string, unknown> {
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[cfg.arch];
  const rs = cfg.ropeScaling;
  return {
    architectures: [arch],
    model_type: cfg.arch,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    max_position_embeddings: cfg.maxPositions,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: rs === null ? null : rs.kind === 'linear' ? { rope_type: 'linear', factor: rs.factor }
      : { rope_type: 'llama3', factor: rs.factor, low_freq_factor: rs.lowFreqFactor, high_freq_factor: rs.highFreqFactor,
        original_max_position_embeddings: rs.originalMaxPositions },
    tie_word_embeddings: cfg.tieWordEmbeddings,
    ...(cfg.arch === 'qwen2' ? {} : { attention_bias: cfg.attentionBias }),
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds,
    hidden_act: 'silu',
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
  };
}

/** tokenizer.json (+ tokenizer_config.json) contents for an HF folder. */
export interface HfTokenizerFiles {
  tokenizerJson: object;
  tokenizerConfig?: object;
}

export interface WriteHfOptions {
  dtype: FloatDType;
  seed: number;
  /** Number of safetensors shards (> 1 writes model-0000i-of-0000n.safetensors + index). @defaultValue 1 */
  shards?: number;
  tokenizer?: HfTokenizerFiles;
}

/** Write a Hugging Face model folder: config.json, safetensors (sharded with an index if asked), tokenizer files. */
export async function writeHfModel(dir: string, cfg: ModelConfig, opts: WriteHfOptions): Promise<void> {
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`Expected a positive integer for shards but received ${shards}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(cfg, opts.dtype), null, 2));
  const all: TensorData[] = [];
  for (const t of syntheticTensors(cfg, opts.seed)) {
    all.push({ name: canonicalToHf(t.name), dtype: opts.dtype, shape: t.shape, data: () => t.encoded(opts.dtype) });
  }
  if (shards === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), all, { format: 'pt' });
  } else {
    const size = (t: TensorData) => t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    const total = all.reduce((n, t) => n + size(t), 0);
    const per = Math.ceil(total / shards);
    const groups: TensorData[][] = Array.from({ length: shards }, () => []);
    let acc = 0;
    for (const t of all) {
      groups[Math.min(shards - 1, Math.floor(acc / per))].push(t);
      acc += size(t);
    }
    const weightMap: Record<string, string> = {};
    const pad = (n: number) => String(n).padStart(5, '0');
    for (let i = 0; i < shards; i++) {
      const name = `model-${pad(i + 1)}-of-${pad(shards)}.safetensors`;
      for (const t of groups[i]) weightMap[t.name] = name;
      await writeSafetensors(join(dir, name), groups[i], { format: 'pt' });
    }
    await writeFile(join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  if (opts.tokenizer) {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(opts.tokenizer.tokenizerJson));
    if (opts.tokenizer.tokenizerConfig) {
      await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(opts.tokenizer.tokenizerConfig, null, 2));
    }
  }
}

export interface WriteGgufOptions {
  /** Type of the weight matrices (1-D tensors are always F32); a quantized type quantizes every matrix. */
  dtype: DType;
  /** 'q4_k_m': llama-quantize's Q4_K_M mix instead of one type for every matrix (see ggufMixType). */
  mix?: 'q4_k_m';
  seed: number;
  vocab: GgufVocab;
  /** @defaultValue 3 */
  version?: 2 | 3;
  /** @defaultValue 32 */
  alignment?: number;
}

/** llama.cpp's general.file_type (enum llama_ftype) of an all-one-type quantized file. */
export const GGUF_FILE_TYPE: Record<QuantDType, number> = { q4_0: 2, q8_0: 7, q4_k: 14, q5_k: 16, q6_k: 18 };

/** llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
function useMoreBits(layer: number, layers: number): boolean {
  const e = Math.floor(layers / 8);
  return layer < e || layer >= Math.floor((7 * layers) / 8) || (layer - e) % 3 === 2;
}

/**
 * The type of a weight matrix in llama-quantize's Q4_K_M mix (llama_tensor_get_type, llama arch, no imatrix):
 * output (the head) Q6_K; attn_v and ffn_down Q6_K in the layers use_more_bits picks, Q4_K elsewhere; every
 * other matrix Q4_K (token_embd too, unless the head is tied to it).
 */
export function ggufMixType(mix: 'q4_k_m', canonical: string, layers: number, tied = false): QuantDType {
  if (canonical === 'output' || (tied && canonical === 'tok_embeddings')) return 'q6_k'; // the head
  const m = /^layers\.(\d+)\.(wv|w2)$/.exec(canonical);
  if (m && useMoreBits(Number(m[1]), layers)) return 'q6_k';
  return 'q4_k';
}

/** GGUF metadata for a config and vocab (llama.cpp key names). */
export function ggufMetadata(cfg: ModelConfig, vocab: GgufVocab, name = 'swapserve-synthetic'): GgufKv[] {
  const a = cfg.arch;
  const md: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: a },
    { key: 'general.name', type: 'string', value: name },
    { key: `${a}.context_length`, type: 'u32', value: cfg.maxPositions },
    { key: `${a}.embedding_length`, type: 'u32', value: cfg.hiddenSize },
    { key: `${a}.block_count`, type: 'u32', value: cfg.numLayers },
    { key: `${a}.feed_forward_length`, type: 'u32', value: cfg.intermediateSize },
    { key: `${a}.attention.head_count`, type: 'u32', value: cfg.numHeads },
    { key: `${a}.attention.head_count_kv`, type: 'u32', value: cfg.numKvHeads },
    { key: `${a}.attention.key_length`, type: 'u32', value: cfg.headDim },
    { key: `${a}.attention.value_length`, type: 'u32', value: cfg.headDim },
    { key: `${a}.rope.dimension_count`, type: 'u32', value: cfg.headDim },
    { key: `${a}.attention.layer_norm_rms_epsilon`, type: 'f32', value: cfg.rmsNormEps },
    { key: `${a}.rope.freq_base`, type: 'f32', value: cfg.ropeTheta },
    { key: `${a}.vocab_size`, type: 'u32', value: cfg.vocabSize },
  ];
  if (cfg.ropeScaling?.kind === 'linear') {
    md.push({ key: `${a}.rope.scaling.type`, type: 'string', value: 'linear' },
      { key: `${a}.rope.scaling.factor`, type: 'f32', value: cfg.ropeScaling.factor });
  }
  md.push({ key: 'tokenizer.ggml.model', type: 'string', value: vocab.model },
    { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: vocab.tokens },
    { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: vocab.tokenTypes });
  if (vocab.scores) md.push({ key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: vocab.scores });
  if (vocab.merges) md.push({ key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: vocab.merges });
  if (vocab.pre) md.push({ key: 'tokenizer.ggml.pre', type: 'string', value: vocab.pre });
  if (vocab.bosId !== null) md.push({ key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: vocab.bosId });
  md.push({ key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: vocab.eosId });
  if (vocab.eotId !== undefined) md.push({ key: 'tokenizer.ggml.eot_token_id', type: 'u32', value: vocab.eotId });
  if (vocab.addBos !== undefined) md.push({ key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: vocab.addBos });
  if (vocab.chatTemplate) md.push({ key: 'tokenizer.chat_template', type: 'string', value: vocab.chatTemplate });
  return md;
}

/**
 * Write a GGUF model with seeded weights (the same values writeHfModel writes for the same seed; llama-family
 * Q/K rows permuted as llama.cpp's converter does). Norms and biases are stored F32, as llama.cpp does.
 */
export async function writeGgufModel(file: string, cfg: ModelConfig, opts: WriteGgufOptions): Promise<void> {
  if (opts.vocab.tokens.length !== cfg.vocabSize) {
    throw new RangeError(`Expected a vocab of ${cfg.vocabSize} tokens (config.vocabSize) but received ${opts.vocab.tokens.length}`);
  }
  const tensors: GgufTensorSpec[] = [];
  const rs = cfg.ropeScaling;
  if (rs?.kind === 'llama3') { // llama.cpp stores Llama 3 scaling as per-pair factors, first in the file
    const f = llama3RopeFactors(cfg.ropeTheta, cfg.headDim, rs);
    tensors.push({ name: 'rope_freqs.weight', shape: [f.length], ggmlType: 0, bytes: f.byteLength, data: () => new Uint8Array(f.buffer) });
  }
  for (const t of syntheticTensors(cfg, opts.seed)) {
    const oneD = t.shape.length === 1;
    const dtype: DType = oneD ? 'f32' : opts.mix ? ggufMixType(opts.mix, t.name, cfg.numLayers, cfg.tieWordEmbeddings) : opts.dtype;
    const permute = cfg.arch !== 'qwen2' && /\.w[qk]$/.test(t.name);
    const heads = t.name.endsWith('wq') ? cfg.numHeads : cfg.numKvHeads;
    const count = t.shape.reduce((a, b) => a * b, 1);
    const values = () => (permute ? permuteRows(t.values(), t.shape[0], t.shape[1], heads) : t.values());
    if (isQuant(dtype)) {
      const bytes = quantBytes(dtype, count);
      if (t.shape[t.shape.length - 1] % QUANT_BLOCK[dtype].elems !== 0) {
        throw new RangeError(`Expected rows of ${t.name} to be a multiple of ${QUANT_BLOCK[dtype].elems} for ${QUANT_BLOCK[dtype].name} but received ${t.shape[t.shape.length - 1]}`);
      }
      tensors.push({ name: canonicalToGguf(t.name), shape: t.shape, ggmlType: DTYPE_GGML[dtype], bytes, data: () => quantize(values(), dtype) });
      continue;
    }
    const bytes = count * DTYPE_BYTES[dtype];
    const data = () => (permute ? encodeValues(values(), dtype) : t.encoded(dtype));
    tensors.push({ name: canonicalToGguf(t.name), shape: t.shape, ggmlType: DTYPE_GGML[dtype], bytes, data });
  }
  const meta = ggufMetadata(cfg, opts.vocab);
  const ft = opts.mix === 'q4_k_m' ? 15 : isQuant(opts.dtype) ? GGUF_FILE_TYPE[opts.dtype] : undefined;
  if (ft !== undefined) meta.push({ key: 'general.file_type', type: 'u32', value: ft });
  await writeGguf(file, { version: opts.version, alignment: opts.alignment, metadata: meta, tensors });
}

const SCALAR_NAME: Record<number, GgufScalarType> = {
  0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'string', 10: 'u64', 11: 'i64', 12: 'f64',
};

/**
 * Copy a float GGUF file (F32/F16/BF16 tensors) to `dest` with its weight matrices quantized, as llama-quantize
 * does (ggml's reference quantizers; `mix: 'q4_k_m'` picks each matrix's type as ggufMixType says). Metadata is
 * copied with its types, plus general.file_type; 1-D tensors stay as they are; matrices whose rows are not a whole
 * number of blocks become BF16 (llama-quantize too falls back to another type for those).
 */
export async function quantizeGgufFile(src: string, dest: string, opts: { dtype: QuantDType; mix?: 'q4_k_m' }): Promise<void> {
  const g = await readGguf(src);
  const layers = g.tensors.reduce((n, t) => Math.max(n, /^blk\.(\d+)\./.exec(t.name) ? Number(/^blk\.(\d+)\./.exec(t.name)![1]) + 1 : 0), 0);
  const tied = !g.tensors.some((t) => t.name === 'output.weight');
  const meta: GgufKv[] = [];
  for (const [key, value] of g.metadata) {
    if (key === 'general.file_type' || key === 'general.alignment') continue;
    const ty = g.metadataTypes.get(key)!;
    if (Array.isArray(value)) meta.push({ key, type: 'array', itemType: SCALAR_NAME[ty.itemType!], value });
    else meta.push({ key, type: SCALAR_NAME[ty.type], value });
  }
  meta.push({ key: 'general.file_type', type: 'u32', value: opts.mix === 'q4_k_m' ? 15 : GGUF_FILE_TYPE[opts.dtype] });
  const fh = await open(src, 'r');
  try {
    const raw = new Map<string, Uint8Array>();
    for (const t of g.tensors) {
      const b = Buffer.alloc(t.bytes);
      await fh.read(b, 0, t.bytes, t.fileOffset);
      raw.set(t.name, b);
    }
    const tensors: GgufTensorSpec[] = g.tensors.map((t) => {
      const from = GGML_DTYPE[t.ggmlType];
      const canon = ggufToCanonical(t.name);
      if (t.shape.length !== 2 || canon === undefined || isQuant(from)) {
        return { name: t.name, shape: t.shape, ggmlType: t.ggmlType, bytes: t.bytes, data: () => raw.get(t.name)! };
      }
      const to = opts.mix ? ggufMixType(opts.mix, canon, layers, tied) : opts.dtype;
      if (t.shape[1] % QUANT_BLOCK[to].elems !== 0) {
        // e.g. stories260K's ffn_down (rows of 172): BF16, the float type a quantized model runs with on CUDA.
        return {
          name: t.name, shape: t.shape, ggmlType: DTYPE_GGML.bf16, bytes: t.shape[0] * t.shape[1] * 2,
          data: () => encodeValues(decodeValues(raw.get(t.name)!, from), 'bf16'),
        };
      }
      const count = t.shape[0] * t.shape[1];
      return {
        name: t.name, shape: t.shape, ggmlType: DTYPE_GGML[to], bytes: quantBytes(to, count),
        data: () => quantize(decodeValues(raw.get(t.name)!, from), to),
      };
    });
    await writeGguf(dest, { version: g.version, alignment: g.alignment, metadata: meta, tensors });
  } finally {
    await fh.close();
  }
}
