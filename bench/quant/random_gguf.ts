// Fast writer of random-weight quantized GGUF files at real shapes (the GPU runs' 8B-shaped Q8_0 / Q4_K_M models).
// Quantizing 8e9 random floats with the reference quantizers (native/ts/model/quant.ts) takes many minutes, so the
// weights here are drawn directly in the quantized domain: every block gets random quants (xorshift words) and a
// sane f16 scale picked from a small table, so the dequantized values are centred with a standard deviation of about
// 0.02 (as the random bf16 models of bench/headline/make_models.py) and activations stay finite. The files are
// otherwise exactly what writeGgufModel writes: the same metadata (ggufMetadata), tensor names and order, Q4_K_M mix
// (ggufMixType), rope_freqs for Llama 3.1 scaling, f32 norms of 1, and the project's GGUF writer (gguf-writer.ts).
// The tokenizer is the tiny byte-level BPE (llama3 specials), padded with `<|pad_N|>` tokens to the model's vocab
// so every id the model samples decodes (as bench/load/tokenizer.ts does for random-weight HF folders).
//   node --import tsx bench/quant/random_gguf.ts OUT_DIR [--shape 8b|tiny] [--types q8_0,q4_k_m]
//   -> OUT_DIR/llama8b-q8_0.gguf, OUT_DIR/llama8b-q4_k_m.gguf (8b); llamatiny-*.gguf (tiny)
import { mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';

import { llama3RopeFactors } from '../../native/ts/model/config.ts';
import { f32ToF16 } from '../../native/ts/model/fill.ts';
import { DTYPE_GGML } from '../../native/ts/model/gguf.ts';
import { writeGguf, type GgufTensorSpec } from '../../native/ts/model/gguf-writer.ts';
import { QUANT_BLOCK, quantBytes } from '../../native/ts/model/quant.ts';
import { canonicalToGguf, expectedTensors } from '../../native/ts/model/tensors.ts';
import { tinyGgufVocab } from '../../native/ts/model/tiny.ts';
import { TOKEN_TYPE, type GgufVocab } from '../../native/ts/model/tiny-vocab.ts';
import { GGUF_FILE_TYPE, ggufMetadata, ggufMixType } from '../../native/ts/model/writers.ts';
import type { ModelConfig, QuantDType } from '../../native/ts/types.ts';

/** Target standard deviation of the dequantized weights. */
const STD = 0.02;

/** Llama-3.1-8B's shape (rope scaling included) with the given vocab's special ids. */
export function llama8bConfig(vocab: GgufVocab): ModelConfig {
  return {
    arch: 'llama', hiddenSize: 4096, intermediateSize: 14336, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128,
    vocabSize: 128256, maxPositions: 131072, rmsNormEps: 1e-5, ropeTheta: 500000,
    ropeScaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    ropeStyle: 'interleaved', tieWordEmbeddings: false, attentionBias: false, bosTokenId: vocab.bosId, eosTokenIds: [vocab.eosId],
  };
}

/** A small shape with rows of 256 (whole K-quant super-blocks) and the same structure, for tests. */
export function tinyQuantConfig(vocab: GgufVocab, over: Partial<ModelConfig> = {}): ModelConfig {
  return { ...llama8bConfig(vocab), hiddenSize: 256, intermediateSize: 512, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 64, vocabSize: 2048, maxPositions: 4096, ...over };
}

/** The tiny llama3 BPE vocab padded with `<|pad_N|>` (normal) tokens to `size` entries. */
export function paddedVocab(size: number): GgufVocab {
  const v = tinyGgufVocab('llama3');
  if (v.tokens.length > size) throw new RangeError(`Expected a vocab size of at least ${v.tokens.length} but received ${size}`);
  const tokens = [...v.tokens], tokenTypes = [...v.tokenTypes];
  for (let id = tokens.length; id < size; id++) { tokens.push(`<|pad_${id}|>`); tokenTypes.push(TOKEN_TYPE.NORMAL); }
  return { ...v, tokens, tokenTypes };
}

/** Fills `u` with xorshift32 words from `seed` (non-zero); returns the generator's last state. */
function xorshiftFill(u: Uint32Array, seed: number): number {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < u.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    u[i] = s;
  }
  return s;
}

let scratch: ArrayBuffer | null = null;

/** 64 MiB of xorshift words, drawn once per process: large tensors are tiled from it (see fillRandom). */
let pool: Uint32Array | null = null;
const POOL_WORDS = 16 << 20;
const CHUNK_WORDS = 64 << 10;

/**
 * Random words in `u`: drawn directly for up to 64 MiB; a larger tensor (most of an 8B model) is tiled with 256 KiB
 * chunks of a 64 MiB random pool, each from an offset drawn from `seed` — memcpy speed instead of ~2 GB/s of
 * xorshift, so the 13 GB of the 8B files are written in seconds. Every block is still random; two chunks of one
 * tensor may repeat pool bytes, which no kernel's speed or the CPU/GPU agreement can tell.
 */
function fillRandom(u: Uint32Array, seed: number): void {
  if (u.length <= POOL_WORDS) { xorshiftFill(u, seed); return; }
  pool ??= (() => { const p = new Uint32Array(POOL_WORDS); xorshiftFill(p, 0x2545f491); return p; })();
  let s = seed >>> 0 || 1;
  for (let at = 0; at < u.length; at += CHUNK_WORDS) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    const from = (s >>> 0) % (POOL_WORDS - CHUNK_WORDS);
    const n = Math.min(CHUNK_WORDS, u.length - at);
    u.set(pool.subarray(from, from + n), at);
  }
}

/** 256 f16 scales in [0.75, 1.25] x base (a block picks one with one of its own random bytes). */
function scaleTable(base: number): Uint16Array {
  return Uint16Array.from({ length: 256 }, (_, k) => f32ToF16(base * (0.75 + (0.5 * k) / 255)));
}

/**
 * `elems` weights of `dtype` as valid random blocks: quants uniform, scales set so that the values are centred
 * with a standard deviation of about STD (per block the f16 scale varies by ±25 %).
 */
export function randomQuantBlocks(dtype: QuantDType, elems: number, seed: number, reuse = false): Uint8Array {
  const { elems: per, bytes: bsz } = QUANT_BLOCK[dtype];
  if (elems % per !== 0) throw new RangeError(`Expected a multiple of ${per} values for ${dtype} but received ${elems}`);
  const n = elems / per;
  const total = quantBytes(dtype, elems);
  const size = Math.ceil(total / 4) * 4;
  // `reuse`: one buffer for every tensor of a file (the writer writes each before asking for the next), so the
  // 8B files do not page-fault 13 GB of fresh memory.
  if (reuse && (scratch?.byteLength ?? 0) < size) scratch = new ArrayBuffer(size);
  const buf = reuse ? scratch! : new ArrayBuffer(size);
  fillRandom(new Uint32Array(buf, 0, size / 4), seed);
  const u8 = new Uint8Array(buf, 0, total);
  const u16 = new Uint16Array(buf, 0, total >> 1);
  switch (dtype) {
    case 'q8_0': { // { f16 d; i8 qs[32] }: d * q, q uniform in [-128, 127] (sd 73.9)
      const t = scaleTable(STD / 73.9);
      for (let b = 0; b < n; b++) u16[b * 17] = t[u8[b * 34 + 2]];
      break;
    }
    case 'q4_0': { // { f16 d; u8 qs[16] }: d * (q - 8), q uniform in [0, 15] (sd 4.61)
      const t = scaleTable(STD / 4.61);
      for (let b = 0; b < n; b++) u16[b * 9] = t[u8[b * 18 + 2]];
      break;
    }
    case 'q4_k': case 'q5_k': { // { f16 d, dmin; u8 scales[12]; (q5: u8 qh[32]); u8 qs[128] }: d*sc*q - dmin*m
      // Every sub-block's 6-bit scale and min = S (< 16: bytes 0..7 = S, 8..11 = S | S << 4); dmin = d * mean(q).
      const S = 12, mean = dtype === 'q4_k' ? 7.5 : 15.5, sd = dtype === 'q4_k' ? 4.61 : 9.23;
      const t = scaleTable(STD / (S * sd));
      const tm = Uint16Array.from({ length: 256 }, (_, k) => f32ToF16((STD / (S * sd)) * (0.75 + (0.5 * k) / 255) * mean));
      const u32 = new Uint32Array(buf, 0, size / 4);
      const words = bsz / 4;
      const lo = S * 0x01010101, hi = (S | (S << 4)) * 0x01010101;
      for (let b = 0; b < n; b++) {
        const w = b * words;
        const k = u8[b * bsz + 16 + 5];
        u32[w] = t[k] | (tm[k] << 16);
        u32[w + 1] = lo; u32[w + 2] = lo; u32[w + 3] = hi;
      }
      break;
    }
    case 'q6_k': { // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: d * sc * (q - 32), q uniform in [0, 63] (sd 18.5)
      const SC = 8;
      const t = scaleTable(STD / (SC * 18.47));
      const h = bsz / 2;
      for (let b = 0; b < n; b++) {
        const w = b * h;
        for (let j = 96; j < 104; j++) u16[w + j] = SC | (SC << 8);
        u16[w + 104] = t[u8[b * bsz]];
      }
      break;
    }
  }
  return u8;
}

/** A stable 32-bit seed from a tensor name and a file seed. */
function seedOf(name: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

export interface RandomGgufOptions {
  /** One quantized type for every matrix, or 'q4_k_m' (llama-quantize's mix, ggufMixType). */
  type: QuantDType | 'q4_k_m';
  vocab: GgufVocab;
  /** @defaultValue 1 */
  seed?: number;
}

/** Writes a random-weight quantized GGUF model (weights drawn in the quantized domain; see the file's head). */
export async function writeRandomQuantGguf(file: string, cfg: ModelConfig, opts: RandomGgufOptions): Promise<void> {
  if (opts.vocab.tokens.length !== cfg.vocabSize) {
    throw new RangeError(`Expected a vocab of ${cfg.vocabSize} tokens (config.vocabSize) but received ${opts.vocab.tokens.length}`);
  }
  const seed = opts.seed ?? 1;
  const tensors: GgufTensorSpec[] = [];
  const rs = cfg.ropeScaling;
  if (rs?.kind === 'llama3') {
    const f = llama3RopeFactors(cfg.ropeTheta, cfg.headDim, rs);
    tensors.push({ name: 'rope_freqs.weight', shape: [f.length], ggmlType: 0, bytes: f.byteLength, data: () => new Uint8Array(f.buffer) });
  }
  for (const t of expectedTensors(cfg)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const name = canonicalToGguf(t.name);
    if (t.shape.length === 1) { // norms (and biases, none for llama): f32; norms of 1
      const isNorm = t.name === 'norm' || t.name.endsWith('_norm');
      tensors.push({ name, shape: t.shape, ggmlType: 0, bytes: count * 4, data: () => new Uint8Array(new Float32Array(count).fill(isNorm ? 1 : 0).buffer) });
      continue;
    }
    const dtype = opts.type === 'q4_k_m' ? ggufMixType('q4_k_m', t.name, cfg.numLayers, cfg.tieWordEmbeddings) : opts.type;
    const rowLen = t.shape[t.shape.length - 1];
    if (rowLen % QUANT_BLOCK[dtype].elems !== 0) {
      throw new RangeError(`Expected rows of ${t.name} to be a multiple of ${QUANT_BLOCK[dtype].elems} for ${QUANT_BLOCK[dtype].name} but received ${rowLen}`);
    }
    tensors.push({ name, shape: t.shape, ggmlType: DTYPE_GGML[dtype], bytes: quantBytes(dtype, count), data: () => randomQuantBlocks(dtype, count, seedOf(name, seed), true) });
  }
  const meta = ggufMetadata(cfg, opts.vocab, `swapserve-random-${opts.type}`);
  meta.push({ key: 'general.file_type', type: 'u32', value: opts.type === 'q4_k_m' ? 15 : GGUF_FILE_TYPE[opts.type] });
  meta.push({ key: 'general.description', type: 'string', value: 'random weights drawn in the quantized domain (bench/quant/random_gguf.ts): not a trained model' });
  await writeGguf(file, { metadata: meta, tensors });
}

async function main(argv: string[]): Promise<number> {
  const out = argv[0];
  const opt = (k: string, d: string) => { const i = argv.indexOf(k); return i > 0 && argv[i + 1] ? argv[i + 1] : d; };
  const shape = opt('--shape', '8b');
  const types = opt('--types', 'q8_0,q4_k_m').split(',');
  if (!out || (shape !== '8b' && shape !== 'tiny')) {
    process.stderr.write('usage: node --import tsx bench/quant/random_gguf.ts OUT_DIR [--shape 8b|tiny] [--types q8_0,q4_k_m,...]\n');
    return 2;
  }
  mkdirSync(out, { recursive: true });
  const vocab = paddedVocab(shape === '8b' ? 128256 : 2048);
  const cfg = shape === '8b' ? llama8bConfig(vocab) : tinyQuantConfig(vocab);
  for (const type of types) {
    if (type !== 'q4_k_m' && !(type in QUANT_BLOCK)) {
      process.stderr.write(`unknown type "${type}" (q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m)\n`);
      return 2;
    }
    const file = join(out, `llama${shape}-${type}.gguf`);
    const t = performance.now();
    // Written under another name and renamed: a file of this name is always whole (the device script reuses it).
    await writeRandomQuantGguf(`${file}.part`, cfg, { type: type as QuantDType | 'q4_k_m', vocab });
    renameSync(`${file}.part`, file);
    process.stderr.write(`[random_gguf] ${file} in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  process.exitCode = await main(process.argv.slice(2));
}
