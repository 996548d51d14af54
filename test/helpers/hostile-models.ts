// The hostile-file table: crafted and broken model files, each with the ModelFileError code and message it must
// get. Shared by the in-process test (hostile-files.test.ts) and the child-process timing/RSS check.
// One entry per crafted file, so the file grows with the table (454 lines); the builders come first.
import { execFileSync } from 'node:child_process';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  ggufMetadata, tinyConfig, tinySpmVocab, toHfConfigJson, writeGguf, writeSafetensors,
  type GgufKv, type GgufSpec, type ModelFileErrorCode, type TensorData,
} from '../../native/ts/model/index.ts';
import { canonicalToGguf, canonicalToHf, expectedTensors } from '../../native/ts/model/tensors.ts';
import type { ModelConfig } from '../../native/ts/types.ts';
import { makeTempDir, makeTinyModel } from './make-model.ts';

export const CFG: ModelConfig = { ...tinyConfig('llama', 300, 1, [2]), numLayers: 1, hiddenSize: 32, numHeads: 2, numKvHeads: 1, intermediateSize: 48 };

/** HF tensors of CFG with zero data, as (mutable) write specs. */
export function hfTensors(cfg = CFG): TensorData[] {
  return expectedTensors(cfg).map((t) => ({
    name: canonicalToHf(t.name), dtype: 'f32' as const, shape: t.shape, data: new Uint8Array(t.shape.reduce((a, b) => a * b, 4)),
  }));
}

/** A model folder with config.json and a model.safetensors written by `write`. */
export async function hfFolder(write: (file: string) => Promise<void>, config: unknown = toHfConfigJson(CFG, 'f32')): Promise<string> {
  const dir = await makeTempDir('hostile-hf');
  await writeFile(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  await write(join(dir, 'model.safetensors'));
  return dir;
}

/** A raw safetensors file: 8-byte length (or `len`), the header text, then `data` zero bytes. */
function rawSafetensors(header: string | object, dataBytes: number, len?: bigint): (file: string) => Promise<void> {
  return async (file) => {
    const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const l = Buffer.alloc(8);
    l.writeBigUInt64LE(len ?? BigInt(h.length));
    await writeFile(file, Buffer.concat([l, h, Buffer.alloc(dataBytes)]));
  };
}

const VOCAB = tinySpmVocab();
const GCFG: ModelConfig = { ...CFG, vocabSize: VOCAB.tokens.length };

/** A valid GGUF spec for GCFG, for mutation. */
function ggufSpec(): GgufSpec {
  return {
    metadata: ggufMetadata(GCFG, VOCAB),
    tensors: expectedTensors(GCFG).map((t) => {
      const bytes = t.shape.reduce((a, b) => a * b, 4);
      return { name: canonicalToGguf(t.name), shape: t.shape, ggmlType: 0, bytes, data: () => new Uint8Array(bytes) };
    }),
  };
}

export async function gguf(mutate: (s: GgufSpec) => void = () => {}): Promise<string> {
  const file = join(await makeTempDir('hostile-gguf'), 'model.gguf');
  const s = ggufSpec();
  mutate(s);
  await writeGguf(file, s);
  return file;
}

export /** Replace (or add) one metadata entry of a GGUF spec. */
function setKv(s: GgufSpec, kv: GgufKv): void {
  s.metadata = [...s.metadata.filter((m) => m.key !== kv.key), kv];
}

/** A named pipe at `path` (nothing ever writes to it). */
export function fifo(path: string): string {
  execFileSync('mkfifo', [path]);
  return path;
}

export interface Case { name: string; make: () => Promise<string>; code: ModelFileErrorCode; message: RegExp }

export const CASES: Case[] = [
  // ---- safetensors format rules ----
  {
    name: 'safetensors truncated (data cut short)',
    make: () => hfFolder(async (f) => { await writeSafetensors(f, hfTensors()); await truncate(f, (await readFile(f)).length - 100); }),
    code: 'truncated', message: /tensors need \d+ data bytes but the file holds \d+/,
  },
  {
    name: 'safetensors header length huge (2^40)',
    make: () => hfFolder(rawSafetensors('{}', 0, 1n << 40n)),
    code: 'header_too_large', message: /exceeds the safetensors limit of 100000000 bytes/,
  },
  {
    name: 'safetensors header length past EOF',
    make: () => hfFolder(rawSafetensors('{}', 0, 5000n)),
    code: 'truncated', message: /header claims 5000 bytes but the file has only 2/,
  },
  {
    name: 'safetensors header is not JSON',
    make: () => hfFolder(rawSafetensors('{"a": {"dtype": "F32",', 0)),
    code: 'bad_json', message: /header is not valid JSON/,
  },
  {
    name: 'safetensors overlapping offsets',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 24)),
    code: 'offset_overlap', message: /tensor "b" overlaps "a"/,
  },
  {
    name: 'safetensors gap in offsets',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [20, 36] } }, 36)),
    code: 'offset_gap', message: /gap of 4 bytes before tensor "b"/,
  },
  {
    name: 'safetensors offsets not starting at 0',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 24)),
    code: 'offset_gap', message: /gap of 8 bytes before tensor "a" \(after \(start\)\)/,
  },
  {
    name: 'safetensors shape/size mismatch',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'BF16', shape: [4, 4], data_offsets: [0, 16] } }, 16)),
    code: 'size_mismatch', message: /spans 16 bytes but shape \[4, 4\] of BF16 needs 32/,
  },
  {
    name: 'safetensors shape whose size overflows',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 30], data_offsets: [0, 16] } }, 16)),
    code: 'size_mismatch', message: /overflows/,
  },
  {
    name: 'safetensors unknown dtype',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F7', shape: [4], data_offsets: [0, 16] } }, 16)),
    code: 'unknown_dtype', message: /unknown dtype "F7"/,
  },
  {
    name: 'safetensors trailing bytes after the data',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 40)),
    code: 'size_mismatch', message: /tensors need 16 data bytes but the file holds 40/,
  },
  {
    name: 'safetensors known but unrunnable dtype (I32 weights)',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()).then(() => rawSafetensors({ 'model.norm.weight': { dtype: 'I32', shape: [32], data_offsets: [0, 128] } }, 128)(f))),
    code: 'unsupported_dtype', message: /"model\.norm\.weight" is I32; only F32, F16 and BF16/,
  },
  // ---- model-level checks (HF) ----
  {
    name: 'missing tensor',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors().filter((t) => !t.name.endsWith('layers.0.mlp.up_proj.weight')))),
    code: 'missing_tensor', message: /tensor "layers\.0\.w3" \(shape \[48, 32\]\) is missing/,
  },
  {
    name: 'tensor shape disagrees with config.json',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), toHfConfigJson({ ...CFG, intermediateSize: 40 }, 'f32')),
    code: 'shape_mismatch', message: /"model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[48, 32\] but the config implies \[40, 32\]/,
  },
  {
    name: 'unknown extra tensor',
    make: () => hfFolder((f) => writeSafetensors(f, [...hfTensors(), { name: 'model.layers.0.secret.weight', dtype: 'f32', shape: [2], data: new Uint8Array(8) }])),
    code: 'unexpected_tensor', message: /"model\.layers\.0\.secret\.weight" is not a llama tensor/,
  },
  {
    name: 'config.json is not JSON',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), '{"model_type": "llama",'),
    code: 'bad_json', message: /config\.json: not valid JSON/,
  },
  {
    name: 'config.json with a bad field',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), num_hidden_layers: -1 }),
    code: 'bad_config', message: /num_hidden_layers/,
  },
  {
    name: 'config.json heads not divisible by KV heads',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), num_attention_heads: 4, head_dim: 16, num_key_value_heads: 3 }),
    code: 'bad_config', message: /must be a multiple of num_key_value_heads 3/,
  },
  {
    name: 'unsupported architecture',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), model_type: 'gpt_neox' }),
    code: 'unsupported_arch', message: /model_type "gpt_neox" is not supported/,
  },
  {
    name: 'sharded index names a shard outside the folder',
    make: async () => {
      const dir = await makeTinyModel({ family: 'llama', format: 'hf', shards: 2 });
      const idx = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
      idx.weight_map['model.norm.weight'] = '../evil.safetensors';
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
      return dir;
    },
    code: 'bad_index', message: /shard "\.\.\/evil\.safetensors" must be a \.safetensors file name inside the folder/,
  },
  {
    name: 'sharded index disagrees with the shards',
    make: async () => {
      const dir = await makeTinyModel({ family: 'llama', format: 'hf', shards: 2 });
      const idx = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
      idx.weight_map['model.embed_tokens.weight'] = 'model-00002-of-00002.safetensors';
      await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
      return dir;
    },
    code: 'bad_index', message: /"model\.embed_tokens\.weight" is in model-00001-of-00002\.safetensors but the index says model-00002/,
  },
  {
    name: 'folder without config.json',
    make: () => makeTempDir('empty'),
    code: 'not_found', message: /config\.json is missing/,
  },
  // ---- GGUF ----
  {
    name: 'GGUF bad magic',
    make: () => gguf((s) => { s.magic = 0x46554746; }),
    code: 'bad_magic', message: /not a GGUF file \(magic 0x46554746/,
  },
  {
    name: 'GGUF version 1',
    make: () => gguf((s) => { s.version = 1; }),
    code: 'bad_version', message: /GGUF version 1 is not supported \(only 2 and 3\)/,
  },
  {
    name: 'GGUF alignment not a power of two',
    make: () => gguf((s) => { s.metadata.push({ key: 'general.alignment', type: 'u32', value: 48 }); }),
    code: 'bad_alignment', message: /general\.alignment must be a uint32 power of two, got 48/,
  },
  {
    name: 'GGUF tensor offset not aligned',
    make: () => gguf((s) => { s.tensors[1].offset = 32 * 1000 + 4; }),
    code: 'bad_alignment', message: /offset 32004 is not a multiple of the alignment 32/,
  },
  {
    name: 'GGUF tensor data out of bounds',
    make: () => gguf((s) => { s.tensors[2].offset = 1 << 30; }),
    code: 'out_of_bounds', message: /"blk\.0\.attn_q\.weight" data \[\d+, \d+\) lies past the end of the file/,
  },
  {
    name: 'GGUF overlapping tensors',
    make: () => gguf((s) => { s.tensors[3].offset = 0; }),
    code: 'offset_overlap', message: /tensors "token_embd\.weight" and "blk\.0\.attn_k\.weight" overlap/,
  },
  {
    name: 'GGUF quantized tensor of a type not supported yet (Q2_K)',
    make: () => gguf((s) => { s.tensors[2].ggmlType = 10; }),
    code: 'unsupported_dtype', message: /"blk\.0\.attn_q\.weight" is Q2_K: this GGUF type is not supported yet/,
  },
  {
    name: 'GGUF unknown tensor type',
    make: () => gguf((s) => { s.tensors[0].ggmlType = 200; }),
    code: 'unknown_dtype', message: /unknown ggml type 200/,
  },
  {
    name: 'GGUF string length past EOF',
    make: async () => {
      const file = join(await makeTempDir('hostile-gguf'), 'model.gguf');
      const b = Buffer.alloc(4 + 4 + 8 + 8 + 8 + 16);
      b.writeUInt32LE(0x46554747, 0); b.writeUInt32LE(3, 4); b.writeBigUInt64LE(0n, 8); b.writeBigUInt64LE(1n, 16);
      b.writeBigUInt64LE(1_000_000n, 24); // key length
      await writeFile(file, b);
      return file;
    },
    code: 'truncated', message: /metadata key #0 at offset 24 claims 1000000 bytes but only 16 remain/,
  },
  {
    name: 'GGUF string length absurd (2^62)',
    make: () => gguf((s) => { s.metadata.unshift({ key: 'general.name', type: 'string', value: 'x' }); }).then(async (f) => {
      const b = await readFile(f);
      const at = 24 + 8 + 'general.name'.length + 4; // magic, version, counts, key, type → the value's length
      b.writeBigUInt64LE(1n << 62n, at);
      await writeFile(f, b);
      return f;
    }),
    code: 'header_too_large', message: /is 4611686018427387904, larger than any file could hold/,
  },
  {
    name: 'GGUF tensor count larger than the file',
    make: () => gguf((s) => { s.tensorCount = 1_000_000_000; }),
    code: 'truncated', message: /claims 1000000000 tensors/,
  },
  {
    name: 'GGUF array count larger than the file',
    make: () => gguf().then(async (f) => {
      const b = await readFile(f);
      const key = Buffer.from('tokenizer.ggml.tokens');
      const at = b.indexOf(key) + key.length + 4 + 4; // key, value type ARRAY, item type → count
      b.writeBigUInt64LE(1n << 40n, at);
      await writeFile(f, b);
      return f;
    }),
    code: 'truncated', message: /"tokenizer\.ggml\.tokens" claims 1099511627776 elements/,
  },
  {
    name: 'GGUF truncated inside the header',
    make: () => gguf().then(async (f) => { await truncate(f, 200); return f; }),
    code: 'truncated', message: /file ends before|claims .* remain|more than the/,
  },
  {
    name: 'GGUF empty file',
    make: async () => { const f = join(await makeTempDir('hostile-gguf'), 'empty.gguf'); await writeFile(f, ''); return f; },
    code: 'truncated', message: /file ends before the GGUF magic/,
  },
  {
    name: 'GGUF missing hyper-parameter',
    make: () => gguf((s) => { s.metadata = s.metadata.filter((m: GgufKv) => m.key !== 'llama.block_count'); }),
    code: 'bad_metadata', message: /llama\.block_count is missing/,
  },
  {
    name: 'GGUF hyper-parameter of the wrong type',
    make: () => gguf((s) => { s.metadata = s.metadata.map((m: GgufKv): GgufKv => (m.key === 'llama.embedding_length' ? { key: m.key, type: 'string', value: '32' } : m)); }),
    code: 'bad_metadata', message: /"llama\.embedding_length" must be a number/,
  },
  {
    name: 'GGUF missing tensor',
    make: () => gguf((s) => { s.tensors = s.tensors.filter((t) => t.name !== 'blk.0.ffn_down.weight'); }),
    code: 'missing_tensor', message: /tensor "layers\.0\.w2" \(shape \[32, 48\]\) is missing/,
  },
  {
    name: 'GGUF tensor shape disagrees with metadata',
    make: () => gguf((s) => { s.tensors[2] = { ...s.tensors[2], shape: [16, 32], bytes: 16 * 32 * 4, data: () => new Uint8Array(16 * 32 * 4) }; }),
    code: 'shape_mismatch', message: /"blk\.0\.attn_q\.weight" has shape \[16, 32\] but the config implies \[32, 32\]/,
  },
  {
    name: 'GGUF duplicate tensor name',
    make: () => gguf((s) => { s.tensors.push({ ...s.tensors[1] }); }),
    code: 'duplicate_tensor', message: /tensor "blk\.0\.attn_norm\.weight" occurs twice/,
  },
  {
    name: 'GGUF unsupported architecture',
    make: () => gguf((s) => { s.metadata = s.metadata.map((m: GgufKv): GgufKv => (m.key === 'general.architecture' ? { key: m.key, type: 'string', value: 'falcon' } : m)); }),
    code: 'unsupported_arch', message: /architecture "falcon" is not supported/,
  },
  {
    name: 'GGUF rope_freqs that are not Llama 3 scaling',
    make: () => gguf((s) => {
      const f = new Float32Array([1, 1, 2, 3, 5, 8, 13, 21]);
      s.tensors.unshift({ name: 'rope_freqs.weight', shape: [8], ggmlType: 0, bytes: 32, data: () => new Uint8Array(f.buffer) });
    }),
    code: 'bad_config', message: /rope_freqs\.weight \(max factor 21\) does not match Llama 3 RoPE scaling/,
  },
  // ---- counts and sizes bounded before they size anything (issue 11) ----
  {
    name: 'GGUF block_count 2^26 (once 5 GB of heap and SIGABRT)',
    make: () => gguf((s) => setKv(s, { key: 'llama.block_count', type: 'u32', value: 2 ** 26 })),
    code: 'bad_config', message: /layer count .* is 67108864, over the limit of 1024/,
  },
  {
    name: 'GGUF block_count under the maximum but far more layers than the file holds',
    make: () => gguf((s) => setKv(s, { key: 'llama.block_count', type: 'u32', value: 1000 })),
    code: 'bad_config', message: /implies at least \d+ bytes of weights but the file\(s\) hold \d+/,
  },
  {
    name: 'GGUF block_count as a float (1.5)',
    make: () => gguf((s) => setKv(s, { key: 'llama.block_count', type: 'f32', value: 1.5 })),
    code: 'bad_config', message: /layer count .* is 1\.5; it must be an integer/,
  },
  {
    name: 'GGUF head_count 2^31',
    make: () => gguf((s) => setKv(s, { key: 'llama.attention.head_count', type: 'u32', value: 2 ** 31 })),
    code: 'bad_config', message: /head count is 2147483648, over the limit/,
  },
  {
    name: 'GGUF context_length 2^53-1 (u64)',
    make: () => gguf((s) => setKv(s, { key: 'llama.context_length', type: 'u64', value: 2n ** 53n - 1n })),
    code: 'bad_config', message: /context length .* is 9007199254740991, over the limit/,
  },
  {
    name: 'GGUF rope.freq_base = +Inf',
    make: () => gguf((s) => setKv(s, { key: 'llama.rope.freq_base', type: 'f32', value: Infinity })),
    code: 'bad_config', message: /RoPE base .* is Infinity; it must be a finite number/,
  },
  {
    name: 'GGUF rope.freq_base = NaN',
    make: () => gguf((s) => setKv(s, { key: 'llama.rope.freq_base', type: 'f32', value: NaN })),
    code: 'bad_config', message: /RoPE base .* is NaN; it must be a finite number/,
  },
  {
    name: 'GGUF metadata array of 2^22+1 elements (past the vocabulary maximum; the bytes are really there)',
    make: async () => {
      const file = join(await makeTempDir('hostile-gguf'), 'array.gguf');
      const key = Buffer.from('general.junk');
      const n = 2 ** 22 + 1;
      const b = Buffer.alloc(24 + 8 + key.length + 4 + 4 + 8 + n);
      b.writeUInt32LE(0x46554747, 0); b.writeUInt32LE(3, 4); b.writeBigUInt64LE(0n, 8); b.writeBigUInt64LE(1n, 16);
      let at = 24;
      b.writeBigUInt64LE(BigInt(key.length), at); key.copy(b, at + 8); at += 8 + key.length;
      b.writeUInt32LE(9, at); b.writeUInt32LE(0, at + 4); b.writeBigUInt64LE(BigInt(n), at + 8); // ARRAY of UINT8
      await writeFile(file, b);
      return file;
    },
    code: 'header_too_large', message: /"general\.junk" claims 4194305 elements \(limit 4194304\)/,
  },
  {
    name: 'config.json num_hidden_layers 2^31-1 (once a hang)',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), num_hidden_layers: 2 ** 31 - 1 }),
    code: 'bad_config', message: /layer count .* is 2147483647, over the limit of 1024/,
  },
  {
    name: 'config.json num_hidden_layers 1e15',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), num_hidden_layers: 1e15 }),
    code: 'bad_config', message: /layer count .* is 1000000000000000, over the limit of 1024/,
  },
  {
    name: 'config.json max_position_embeddings 2^53-1',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), max_position_embeddings: 2 ** 53 - 1 }),
    code: 'bad_config', message: /context length .* is 9007199254740991, over the limit/,
  },
  {
    name: 'config.json vocab_size 2^40',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), { ...toHfConfigJson(CFG, 'f32'), vocab_size: 2 ** 40 }),
    code: 'bad_config', message: /vocab_size is 1099511627776, over the limit/,
  },
  {
    name: 'config.json rope_theta 1e999 (JSON.parse gives Infinity)',
    make: () => hfFolder((f) => writeSafetensors(f, hfTensors()), JSON.stringify(toHfConfigJson(CFG, 'f32')).replace(/}$/, ', "rope_theta": 1e999}')),
    code: 'bad_config', message: /rope_theta/,
  },
  {
    name: 'safetensors header names a tensor twice (JSON.parse would keep the last)',
    make: () => hfFolder(rawSafetensors('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', 16)),
    code: 'duplicate_key', message: /header names "a" twice \(the safetensors format forbids duplicate keys\)/,
  },
  {
    name: 'safetensors duplicate key inside an entry, spelled with an escape',
    make: () => hfFolder(rawSafetensors('{"a": {"dtype": "F32", "shape": [4], "\\u0064type": "F16", "data_offsets": [0, 16]}}', 16)),
    code: 'duplicate_key', message: /header names "dtype" twice in "a"/,
  },
  {
    name: 'safetensors shape of 9 dimensions',
    make: () => hfFolder(rawSafetensors({ a: { dtype: 'F32', shape: [1, 1, 1, 1, 1, 1, 1, 1, 4], data_offsets: [0, 16] } }, 16)),
    code: 'bad_header', message: /shape must be an array of at most 8 non-negative integers/,
  },
  {
    name: 'a FIFO as the .gguf path (open() would block forever)',
    make: async () => fifo(join(await makeTempDir('hostile-fifo'), 'model.gguf')),
    code: 'not_found', message: /not a regular file \(a FIFO\)/,
  },
  {
    name: 'a FIFO as model.safetensors',
    make: () => hfFolder(async (f) => { fifo(f); }),
    code: 'not_found', message: /model\.safetensors: not a regular file \(a FIFO\)/,
  },
  {
    name: 'a FIFO as config.json',
    make: async () => {
      const dir = await makeTempDir('hostile-fifo');
      fifo(join(dir, 'config.json'));
      await writeSafetensors(join(dir, 'model.safetensors'), hfTensors());
      return dir;
    },
    code: 'not_found', message: /config\.json: not a regular file \(a FIFO\)/,
  },
  {
    name: 'not a regular file (/dev/zero would never end)',
    make: async () => '/dev/zero',
    code: 'not_found', message: /not a regular file/,
  },
  {
    name: 'path does not exist',
    make: async () => join(await makeTempDir('none'), 'nope.gguf'),
    code: 'not_found', message: /no such file or folder/,
  },
];

