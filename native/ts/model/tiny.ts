// Tiny synthetic models of each supported family, with a working tokenizer, for tests, demos and e2e runs.
import { join } from 'node:path';

import type { DType, ModelConfig } from '../types.ts';
import { REFERENCE_TEMPLATES } from '../tokenizer/templates.ts';
import { TOKEN_TYPE, tinyBpeVocab, tinySpmVocab, type GgufVocab } from './tiny-vocab.ts';
import { isQuant } from './quant.ts';
import { writeGgufModel, writeHfModel, type HfTokenizerFiles } from './writers.ts';

export type TinyFamily = 'llama' | 'llama3' | 'mistral' | 'qwen2';

export interface TinyModelOptions {
  family: TinyFamily;
  format: 'hf' | 'gguf';
  /** @defaultValue 'f32' */
  dtype?: DType;
  /** @defaultValue 1 */
  seed?: number;
  /** GGUF only: llama-quantize's Q4_K_M mix (rows must be multiples of 256; dtype is then ignored). */
  mix?: 'q4_k_m';
  /** Overrides of the tiny config (e.g. more layers for a bench). */
  config?: Partial<ModelConfig>;
  /** HF only. @defaultValue 1 */
  shards?: number;
}

const SPECIALS: Record<TinyFamily, { list: string[]; bos: string | null; eos: string; eot?: string }> = {
  llama: { list: ['<s>', '</s>'], bos: '<s>', eos: '</s>' },
  mistral: { list: ['<s>', '</s>'], bos: '<s>', eos: '</s>' },
  llama3: {
    list: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    bos: '<|begin_of_text|>', eos: '<|end_of_text|>', eot: '<|eot_id|>',
  },
  qwen2: { list: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], bos: null, eos: '<|endoftext|>', eot: '<|im_end|>' },
};
const TEMPLATE: Record<TinyFamily, string> = {
  llama: REFERENCE_TEMPLATES.llama2, mistral: REFERENCE_TEMPLATES.mistral, llama3: REFERENCE_TEMPLATES.llama3, qwen2: REFERENCE_TEMPLATES.chatml,
};

/** Llama 3.1's rope_scaling: tiny llama3 models use it so readers and engines exercise the scaling path. */
const LLAMA31_SCALING = { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } as const;

/** The tiny config of a family: C=64, 2 layers, 4 heads (2 KV heads) of 16, FFN 172. */
export function tinyConfig(family: TinyFamily, vocabSize: number, bos: number | null, eos: number[]): ModelConfig {
  return {
    arch: family === 'llama3' ? 'llama' : family,
    hiddenSize: 64,
    intermediateSize: 172,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    vocabSize,
    maxPositions: 2048,
    rmsNormEps: family === 'qwen2' ? 1e-6 : 1e-5,
    ropeTheta: family === 'llama3' ? 500000 : family === 'qwen2' ? 1000000 : 10000,
    ropeScaling: null,
    ropeStyle: 'half',
    tieWordEmbeddings: family === 'qwen2',
    attentionBias: family === 'qwen2',
    bosTokenId: bos,
    eosTokenIds: eos,
  };
}

/** A GGUF vocab for a family: SPM (llama, mistral) or byte-level BPE with the family's specials (llama3, qwen2). */
export function tinyGgufVocab(family: TinyFamily): GgufVocab {
  if (family === 'llama' || family === 'mistral') return { ...tinySpmVocab(), chatTemplate: TEMPLATE[family] };
  const sp = SPECIALS[family];
  const bpe = tinyBpeVocab(sp.list);
  const types = bpe.tokens.map((t) => (t in bpe.specials ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.NORMAL));
  return {
    model: 'gpt2', tokens: bpe.tokens, tokenTypes: types, merges: bpe.merges, pre: family === 'qwen2' ? 'qwen2' : 'llama-bpe',
    bosId: sp.bos === null ? null : bpe.specials[sp.bos], eosId: bpe.specials[sp.eos],
    eotId: sp.eot === undefined ? undefined : bpe.specials[sp.eot], addBos: sp.bos !== null, chatTemplate: TEMPLATE[family],
  };
}

/** tokenizer.json / tokenizer_config.json of a byte-level BPE tokenizer with the family's specials. */
export function tinyHfTokenizer(family: TinyFamily): { files: HfTokenizerFiles; vocabSize: number; bos: number | null; eos: number[] } {
  const sp = SPECIALS[family];
  const bpe = tinyBpeVocab(sp.list);
  const vocab: Record<string, number> = {};
  bpe.tokens.forEach((t, i) => { vocab[t] = i; });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: sp.list.map((content) => ({
      id: bpe.specials[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null, pre_tokenizer: byteLevel, post_processor: { ...byteLevel, trim_offsets: false }, decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: family === 'llama3', vocab, merges: bpe.merges,
    },
  };
  const eos = [bpe.specials[sp.eos], ...(sp.eot ? [bpe.specials[sp.eot]] : [])];
  const tokenizerConfig = {
    bos_token: sp.bos, eos_token: sp.eot ?? sp.eos, add_bos_token: sp.bos !== null, chat_template: TEMPLATE[family],
    model_max_length: 2048, tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { files: { tokenizerJson, tokenizerConfig }, vocabSize: bpe.tokens.length, bos: sp.bos === null ? null : bpe.specials[sp.bos], eos };
}

/**
 * tokenizer.json of a SentencePiece vocab in the layout Hugging Face's converter gives Llama 2 / Mistral: BPE with
 * byte fallback over the same pieces, merges = every split of a piece into two pieces, ranked by the piece's score
 * (so BPE-by-rank makes the merges SPM-by-score makes), "▁" prepended and spaces replaced by the normalizer.
 */
export function tinyHfSpmTokenizer(vocab: GgufVocab, family: TinyFamily): HfTokenizerFiles {
  const scores = vocab.scores ?? vocab.tokens.map(() => 0);
  const ids = new Map(vocab.tokens.map((t, i) => [t, i]));
  const normal = vocab.tokens.map((t, i) => ({ t, i })).filter(({ i }) => vocab.tokenTypes[i] === TOKEN_TYPE.NORMAL);
  const merges: { m: string; score: number; id: number }[] = [];
  for (const { t, i } of normal) {
    const cps = [...t];
    for (let k = 1; k < cps.length; k++) {
      const a = cps.slice(0, k).join(''), b = cps.slice(k).join('');
      const ia = ids.get(a), ib = ids.get(b);
      if (ia !== undefined && ib !== undefined && vocab.tokenTypes[ia] === TOKEN_TYPE.NORMAL && vocab.tokenTypes[ib] === TOKEN_TYPE.NORMAL) {
        merges.push({ m: `${a} ${b}`, score: scores[i], id: i });
      }
    }
  }
  merges.sort((x, y) => y.score - x.score || x.id - y.id);
  const specials = vocab.tokens.map((content, id) => ({ content, id }))
    .filter(({ id }) => vocab.tokenTypes[id] === TOKEN_TYPE.CONTROL || vocab.tokenTypes[id] === TOKEN_TYPE.UNKNOWN);
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map(({ content, id }) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false,
      vocab: Object.fromEntries(vocab.tokens.map((t, i) => [t, i])), merges: merges.map((x) => x.m),
    },
  };
  const tokenizerConfig = {
    bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false, legacy: true,
    chat_template: TEMPLATE[family], model_max_length: 2048, tokenizer_class: 'LlamaTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfig };
}

/**
 * Write a tiny model of `family` at `dest` (a folder for 'hf', a .gguf file for 'gguf'; the folder is created)
 * and return its path. The weights are seeded; the same seed gives the same model in both formats.
 */
export async function writeTinyModel(dest: string, opts: TinyModelOptions): Promise<string> {
  const dtype = opts.dtype ?? 'f32';
  const seed = opts.seed ?? 1;
  if (opts.format === 'gguf') {
    const vocab = tinyGgufVocab(opts.family);
    const eos = [vocab.eosId, ...(vocab.eotId !== undefined ? [vocab.eotId] : [])];
    const cfg = { ...tinyConfig(opts.family, vocab.tokens.length, vocab.bosId, eos), ...opts.config };
    if (opts.family === 'llama3' && opts.config?.ropeScaling === undefined) cfg.ropeScaling = LLAMA31_SCALING;
    const file = dest.endsWith('.gguf') ? dest : join(dest, `tiny-${opts.family}-${dtype}.gguf`);
    if (file !== dest) await import('node:fs/promises').then((fs) => fs.mkdir(dest, { recursive: true }));
    await writeGgufModel(file, cfg, { dtype, seed, vocab, mix: opts.mix });
    return file;
  }
  // Llama 2 / Mistral ship a SentencePiece-converted tokenizer.json; Llama 3 / Qwen2 a byte-level BPE one. Either
  // way the HF copy has the same vocabulary as the family's GGUF copy, so one seed is one model in both formats.
  const spm = opts.family === 'llama' || opts.family === 'mistral';
  const sv = spm ? tinyGgufVocab(opts.family) : null;
  const tok = sv
    ? { files: tinyHfSpmTokenizer(sv, opts.family), vocabSize: sv.tokens.length, bos: sv.bosId, eos: [sv.eosId] }
    : tinyHfTokenizer(opts.family);
  const cfg: ModelConfig = { ...tinyConfig(opts.family, tok.vocabSize, tok.bos, tok.eos), ...opts.config };
  if (opts.family === 'llama3' && opts.config?.ropeScaling === undefined) {
    cfg.ropeScaling = LLAMA31_SCALING;
  }
  if (isQuant(dtype)) throw new RangeError(`Expected a float dtype for a Hugging Face model but received ${dtype} (quantized models are GGUF only)`);
  await writeHfModel(dest, cfg, { dtype, seed, shards: opts.shards, tokenizer: tok.files });
  return dest;
}
