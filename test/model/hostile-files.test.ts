// Hostile and broken model files: each is rejected with a ModelFileError of its own code and a clear message,
// never a crash, a hang, a huge allocation or a partial model.
import assert from 'node:assert/strict';
import { copyFile, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  ggufMetadata, ModelFileError, openModel, tinyConfig, tinySpmVocab, toHfConfigJson, writeGguf, writeSafetensors,
  type GgufKv, type GgufSpec, type ModelFileErrorCode, type TensorData,
} from '../../native/ts/model/index.ts';
import { canonicalToGguf, canonicalToHf, expectedTensors } from '../../native/ts/model/tensors.ts';
import type { ModelConfig } from '../../native/ts/types.ts';
import { makeTempDir, makeTinyModel } from '../helpers/make-model.ts';
import { STORIES260K_GGUF as STORIES } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const CFG: ModelConfig = { ...tinyConfig('llama', 300, 1, [2]), numLayers: 1, hiddenSize: 32, numHeads: 2, numKvHeads: 1, intermediateSize: 48 };

/** HF tensors of CFG with zero data, as (mutable) write specs. */
function hfTensors(cfg = CFG): TensorData[] {
  return expectedTensors(cfg).map((t) => ({
    name: canonicalToHf(t.name), dtype: 'f32' as const, shape: t.shape, data: new Uint8Array(t.shape.reduce((a, b) => a * b, 4)),
  }));
}

/** A model folder with config.json and a model.safetensors written by `write`. */
async function hfFolder(write: (file: string) => Promise<void>, config: unknown = toHfConfigJson(CFG, 'f32')): Promise<string> {
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

async function gguf(mutate: (s: GgufSpec) => void = () => {}): Promise<string> {
  const file = join(await makeTempDir('hostile-gguf'), 'model.gguf');
  const s = ggufSpec();
  mutate(s);
  await writeGguf(file, s);
  return file;
}

interface Case { name: string; make: () => Promise<string>; code: ModelFileErrorCode; message: RegExp }

const CASES: Case[] = [
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
    name: 'GGUF quantized tensor (Q4_K)',
    make: () => gguf((s) => { s.tensors[2].ggmlType = 12; }),
    code: 'unsupported_dtype', message: /"blk\.0\.attn_q\.weight" is Q4_K: quantized .* not supported yet/,
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

describe('hostile model files', () => {
  it('the table has at least 12 distinct error codes', () => {
    assert.ok(new Set(CASES.map((c) => c.code)).size >= 12);
  });

  for (const c of CASES) {
    it(`rejects: ${c.name} → ${c.code}`, async () => {
      const path = await c.make();
      await assert.rejects(openModel(path), (e: unknown) => {
        assert.ok(e instanceof ModelFileError, `expected a ModelFileError, got ${String(e)}`);
        assert.equal(e.code, c.code, e.message);
        assert.match(e.message, c.message);
        assert.ok(e.file.startsWith(path) || path.startsWith(e.file), `error names the file (${e.file})`);
        return true;
      });
    });
  }

  it('the valid base files of the table do open (the table tests what it claims)', async () => {
    await openModel(await hfFolder((f) => writeSafetensors(f, hfTensors())));
    await openModel(await gguf());
  });

  it('a GGUF whose separate output differs from the embedding stays untied, with the head loaded', { skip: needsData() }, async () => {
    const file = join(await makeTempDir('untied'), 'm.gguf');
    await copyFile(STORIES, file);
    const b = await readFile(file);
    const m0 = await openModel(file);
    // Flip one byte of output.weight: the file's tensor data is found through readGguf's offsets.
    const { readGguf } = await import('../../native/ts/model/index.ts');
    const out = (await readGguf(file)).tensors.find((t) => t.name === 'output.weight')!;
    b[out.fileOffset + 5] ^= 1;
    await writeFile(file, b);
    const m = await openModel(file);
    assert.equal(m0.config.tieWordEmbeddings, true);
    assert.equal(m.config.tieWordEmbeddings, false);
    assert.equal(m.parameterCount, 260_032 + 512 * 64);
    assert.ok(m.layout.tensors.some((t) => t.name === 'output' && t.group === 6));
  });
});
