// Quantized GGUF files: the reader accepts Q8_0/Q4_0/Q4_K/Q5_K/Q6_K (and mixes) from the project's own writer,
// places them byte for byte (the bytes moved are the file's bytes, per-layer groups kept), and rejects broken
// quantized files with a registry code and a clear message.
import assert from 'node:assert/strict';
import { readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { buildModelDesc, loadEngineAddon } from '../../native/ts/engine-native.ts';
import { ModelFileError, openModel, writeGguf, type GgufSpec } from '../../native/ts/model/index.ts';
import { readGguf } from '../../native/ts/model/gguf.ts';
import { quantBytes, QUANT_BLOCK, QUANT_DTYPES } from '../../native/ts/model/quant.ts';
import { tinyConfig, tinyGgufVocab } from '../../native/ts/model/tiny.ts';
import { canonicalToGguf, expectedTensors } from '../../native/ts/model/tensors.ts';
import { ggufMetadata, ggufMixType, quantizeGgufFile } from '../../native/ts/model/writers.ts';
import { readArena } from '../../native/ts/arena.ts';
import type { ModelConfig, QuantDType } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { makeTempDir, makeTinyModel } from '../helpers/make-model.ts';
import { needsData } from '../helpers/requires.ts';
import { QCONFIG } from './shapes.ts';


const VOCAB = tinyGgufVocab('llama');
const CFG: ModelConfig = { ...tinyConfig('llama', VOCAB.tokens.length, VOCAB.bosId, [VOCAB.eosId]), ...QCONFIG, numLayers: 1 };

/** A valid quantized GGUF spec (zero data): matrices of `dtype`, 1-D tensors F32. */
function spec(dtype: QuantDType): GgufSpec {
  return {
    metadata: ggufMetadata(CFG, VOCAB),
    tensors: expectedTensors(CFG).map((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const q = t.shape.length === 2;
      const bytes = q ? quantBytes(dtype, n) : n * 4;
      return { name: canonicalToGguf(t.name), shape: t.shape, ggmlType: q ? QUANT_BLOCK[dtype].ggml : 0, bytes, data: () => new Uint8Array(bytes) };
    }),
  };
}

async function craft(dtype: QuantDType, mutate: (s: GgufSpec) => void = () => {}): Promise<string> {
  const file = join(await makeTempDir('quant-broken'), 'model.gguf');
  const s = spec(dtype);
  mutate(s);
  await writeGguf(file, s);
  return file;
}

const byName = (s: GgufSpec, name: string) => {
  const t = s.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no ${name}`);
  return t;
};

interface Case { name: string; make: () => Promise<string>; code: string; message: RegExp }

const CASES: Case[] = [
  {
    name: 'Q8_0 rows of 48 values (not whole 32-value blocks)',
    make: () => craft('q8_0', (s) => { byName(s, 'blk.0.attn_q.weight').shape = [256, 48]; }),
    code: 'quant_block', message: /"blk\.0\.attn_q\.weight" is Q8_0 with rows of 48 values, not a positive multiple of its block size 32/,
  },
  {
    name: 'Q4_K rows of 64 values (stories260K-sized rows under a K-quant)',
    make: () => craft('q4_k', (s) => { byName(s, 'blk.0.ffn_up.weight').shape = [2048, 64]; }),
    code: 'quant_block', message: /"blk\.0\.ffn_up\.weight" is Q4_K with rows of 64 values, not a positive multiple of its block size 256/,
  },
  {
    name: 'Q6_K rows of 0 values',
    make: () => craft('q6_k', (s) => { byName(s, 'blk.0.attn_k.weight').shape = [128, 0]; }),
    code: 'quant_block', message: /"blk\.0\.attn_k\.weight" is Q6_K with rows of 0 values/,
  },
  {
    name: 'Q5_K shape whose block bytes overflow',
    make: () => craft('q5_k', (s) => { byName(s, 'blk.0.attn_v.weight').shape = [2 ** 50, 256]; }),
    code: 'size_mismatch', message: /"blk\.0\.attn_v\.weight" shape \[1125899906842624, 256\] overflows/,
  },
  {
    name: 'Q4_0 tensor data past the end of the file',
    make: () => craft('q4_0', (s) => { byName(s, 'output.weight').offset = 1 << 24; }),
    code: 'out_of_bounds', message: /"output\.weight" data \[\d+, \d+\) lies past the end of the file/,
  },
  {
    name: 'Q4_K file truncated inside the last tensor',
    make: async () => {
      const f = await craft('q4_k');
      await truncate(f, (await stat(f)).size - 100);
      return f;
    },
    code: 'out_of_bounds', message: /"output\.weight" data \[\d+, \d+\) lies past the end of the file/,
  },
  {
    name: 'Q8_0 tensor offset not aligned',
    make: () => craft('q8_0', (s) => { byName(s, 'blk.0.attn_q.weight').offset = 34 * 8; }),
    code: 'bad_alignment', message: /"blk\.0\.attn_q\.weight" offset 272 is not a multiple of the alignment 32/,
  },
  {
    name: 'Q6_K tensors overlapping (the next one starts inside the last blocks of the first)',
    make: () => craft('q6_k', (s) => {
      // token_embd is first, at 0: its Q6_K bytes end at rows × 210; the next tensor starts 32 bytes earlier.
      const emb = byName(s, 'token_embd.weight');
      byName(s, 'blk.0.attn_norm.weight').offset = Math.floor((emb.bytes - 32) / 32) * 32;
    }),
    code: 'offset_overlap', message: /tensors "token_embd\.weight" and "blk\.0\.attn_norm\.weight" overlap/,
  },
  {
    name: 'a quantized norm (Q8_0 attn_norm: only matrices may be quantized)',
    make: () => craft('q8_0', (s) => { const t = byName(s, 'blk.0.attn_norm.weight'); t.ggmlType = 8; t.bytes = quantBytes('q8_0', 256); t.data = () => new Uint8Array(t.bytes); }),
    code: 'quant_block', message: /"blk\.0\.attn_norm\.weight" is Q8_0, but only weight matrices may be quantized/,
  },
  {
    name: 'Q4_1 (a quantized type not supported yet)',
    make: () => craft('q4_0', (s) => { byName(s, 'blk.0.ffn_gate.weight').ggmlType = 3; }),
    code: 'unsupported_dtype', message: /"blk\.0\.ffn_gate\.weight" is Q4_1: this GGUF type is not supported yet \(supported: .*Q4_K, Q5_K, Q6_K\)/,
  },
  {
    name: 'IQ4_XS (an i-quant, not supported yet)',
    make: () => craft('q4_k', (s) => { byName(s, 'blk.0.ffn_down.weight').ggmlType = 23; }),
    code: 'unsupported_dtype', message: /"blk\.0\.ffn_down\.weight" is IQ4_XS: this GGUF type is not supported yet/,
  },
  {
    name: 'an unknown tensor type (99)',
    make: () => craft('q4_k', (s) => { byName(s, 'blk.0.ffn_down.weight').ggmlType = 99; }),
    code: 'unknown_dtype', message: /"blk\.0\.ffn_down\.weight" has unknown ggml type 99/,
  },
  {
    name: 'a Q4_K matrix of the wrong shape (transposed ffn_up)',
    make: () => craft('q4_k', (s) => { byName(s, 'blk.0.ffn_up.weight').shape = [256, 512]; }),
    code: 'shape_mismatch', message: /"blk\.0\.ffn_up\.weight" has shape \[256, 512\] but the config implies \[512, 256\]/,
  },
];

describe('quantized GGUF files', () => {
  for (const dt of QUANT_DTYPES) {
    it(`the writer's ${QUANT_BLOCK[dt].name} model opens; tensors are placed with their file bytes, groups per layer`, async () => {
      const path = await makeTinyModel({ family: 'llama', format: 'gguf', dtype: dt, config: QCONFIG, seed: 3 });
      const g = await readGguf(path);
      const src = await openModel(path);
      assert.equal(src.dtype, dt);
      assert.equal(src.config.hiddenSize, 256);
      const C = 256, F = 512, V = src.config.vocabSize;
      assert.equal(src.parameterCount, V * C * 2 + 2 * (2 * C + 256 * C + 2 * 128 * C + C * 256 + 3 * F * C) + C);
      for (const t of src.layout.tensors) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        assert.equal(t.dtype, t.shape.length === 2 ? dt : 'f32', t.name);
        assert.equal(t.bytes, t.shape.length === 2 ? quantBytes(dt, n) : n * 4, t.name);
      }
      // Bytes moved = the file's tensor bytes: the segments cover exactly the tensors' file bytes.
      const moved = src.layout.segments.reduce((n, s) => n + s.bytes, 0);
      assert.equal(moved, g.tensors.reduce((n, t) => n + t.bytes, 0));
      assert.equal(src.layout.groups.length, src.config.numLayers + 2);
      for (const s of src.layout.segments) {
        const gi = src.layout.groups.findIndex((gr) => s.arenaOffset >= gr.start && s.arenaOffset < gr.end);
        assert.ok(s.arenaOffset + s.bytes <= src.layout.groups[gi].end, 'a segment never crosses a group boundary');
      }
      // The arena holds the file's bytes unchanged (quantized in the host tier too).
      const arena = await readArena(src);
      const file = await readFile(path);
      for (const t of src.layout.tensors) {
        const gt = g.tensors.find((x) => x.name === canonicalToGguf(t.name))!;
        assert.ok(Buffer.from(arena.subarray(t.offset, t.offset + t.bytes)).equals(file.subarray(gt.fileOffset, gt.fileOffset + gt.bytes)), t.name);
      }
    });
  }

  it('a Q4_K_M mix: Q6_K for the head and for attn_v / ffn_down of the layers llama.cpp gives more bits, Q4_K elsewhere', async () => {
    const path = await makeTinyModel({ family: 'llama', format: 'gguf', dtype: 'q4_k', mix: 'q4_k_m', config: { ...QCONFIG, numLayers: 8 }, seed: 3 });
    const src = await openModel(path);
    const types = Object.fromEntries(src.layout.tensors.map((t) => [t.name, t.dtype]));
    assert.equal(types.output, 'q6_k');
    assert.equal(types.tok_embeddings, 'q4_k');
    // use_more_bits(i, 8): i < 1, i >= 7, or (i - 1) % 3 == 2 → layers 0, 3, 6, 7.
    for (let i = 0; i < 8; i++) {
      const more = [0, 3, 6, 7].includes(i);
      assert.equal(types[`layers.${i}.wv`], more ? 'q6_k' : 'q4_k', `layer ${i} wv`);
      assert.equal(types[`layers.${i}.w2`], more ? 'q6_k' : 'q4_k', `layer ${i} w2`);
      for (const k of ['wq', 'wk', 'wo', 'w1', 'w3']) assert.equal(types[`layers.${i}.${k}`], 'q4_k');
      assert.equal(types[`layers.${i}.attn_norm`], 'f32');
    }
    assert.equal(ggufMixType('q4_k_m', 'tok_embeddings', 8, true), 'q6_k', 'a tied head makes the embedding Q6_K');
    assert.equal((await readGguf(path)).metadata.get('general.file_type'), 15);
  });

  it('Q8_0 and Q4_0 copies of stories260K open (ffn_down, rows of 172, falls back to BF16); tied head still detected', { skip: needsData() }, async () => {
    const dir = await makeTempDir('stories-quant');
    for (const dt of ['q8_0', 'q4_0'] as const) {
      const path = join(dir, `stories-${dt}.gguf`);
      await quantizeGgufFile(STORIES260K_GGUF, path, { dtype: dt });
      const src = await openModel(path);
      assert.equal(src.dtype, dt);
      assert.equal(src.parameterCount, 260_032);
      assert.ok(src.config.tieWordEmbeddings);
      const types = Object.fromEntries(src.layout.tensors.map((t) => [t.name, t.dtype]));
      assert.equal(types['layers.0.w2'], 'bf16');
      assert.equal(types['layers.0.w1'], dt);
      assert.equal(types.tok_embeddings, dt);
      const orig = await readGguf(STORIES260K_GGUF);
      const copy = await readGguf(path);
      assert.equal(copy.metadata.get('tokenizer.ggml.tokens')?.toString(), orig.metadata.get('tokenizer.ggml.tokens')?.toString());
      assert.deepEqual(copy.metadataTypes.get('llama.embedding_length'), orig.metadataTypes.get('llama.embedding_length'));
    }
  });

  it('the table covers at least 8 broken quantized files', () => { assert.ok(CASES.length >= 8); });

  it('the valid base file of the table opens (the table tests what it claims)', async () => {
    for (const dt of QUANT_DTYPES) await openModel(await craft(dt));
  });

  for (const c of CASES) {
    it(`rejects: ${c.name} → ${c.code}`, async () => {
      const path = await c.make();
      await assert.rejects(openModel(path), (e: unknown) => {
        assert.ok(e instanceof ModelFileError, `expected a ModelFileError, got ${String(e)}`);
        assert.equal(e.code, c.code, e.message);
        assert.match(e.message, c.message);
        assert.equal(e.file, path);
        return true;
      });
    });
  }

  it('the native engine refuses a quantized norm or rows that are not whole blocks (a desc that bypassed the reader)', async () => {
    const path = await makeTinyModel({ family: 'llama', format: 'gguf', dtype: 'q8_0', config: QCONFIG, seed: 3 });
    const src = await openModel(path);
    const arena = await readArena(src);
    const addon = loadEngineAddon();
    const make = (desc: ReturnType<typeof buildModelDesc>) => new addon.Engine(arena, 'm', desc, { maxBatch: 1, maxContext: 16, threads: 1, scratchBudgetBytes: 1 << 24, numGroups: src.layout.groups.length });
    make(buildModelDesc(src)).close();
    const d1 = buildModelDesc(src);
    d1.layer[0].attnNorm = { ...d1.layer[0].attnNorm!, dtype: 3 };
    assert.throws(() => make(d1), /layer\[0\]\.attnNorm is quantized but only weight matrices may be/);
    const d2 = buildModelDesc(src);
    d2.intermediate = 500;
    assert.throws(() => make(d2), /layer\[0\]\.w2 is quantized with rows of 500 values, not a multiple of its block size 32/);
  });
});
