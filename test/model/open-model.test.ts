// openModel on the real stories260K GGUF and on synthetic HF / GGUF models of every family: config, tensors,
// parameter counts and the planned WeightLayout (alignment, contiguous groups, segments that fill it exactly).
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { decodeValues, openModel, readSafetensors, writeSafetensors } from '../../native/ts/model/index.ts';
import { LAYOUT_ALIGN, type ModelSource, type WeightLayout } from '../../native/ts/types.ts';
import { STORIES260K_GGUF as STORIES } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

/** Every invariant of the WeightLayout contract in native/ts/types.ts. */
function checkLayout(l: WeightLayout, numGroups: number): void {
  assert.equal(l.groups.length, numGroups);
  assert.equal(l.groups[0].start, 0);
  assert.equal(l.groups[numGroups - 1].end, l.totalBytes);
  for (let g = 1; g < numGroups; g++) assert.equal(l.groups[g].start, l.groups[g - 1].end, `group ${g} is contiguous`);
  assert.equal(l.totalBytes % LAYOUT_ALIGN, 0);
  let prevEnd = 0;
  let prevGroup = 0;
  for (const t of l.tensors) {
    assert.equal(t.offset % LAYOUT_ALIGN, 0, `${t.name} is aligned`);
    assert.ok(t.offset >= prevEnd, `${t.name} does not overlap the previous tensor`);
    assert.ok(t.group >= prevGroup, `${t.name} is in group order`);
    const g = l.groups[t.group];
    assert.ok(t.offset >= g.start && t.offset + t.bytes <= g.end, `${t.name} lies inside group ${t.group}`);
    prevEnd = t.offset + t.bytes;
    prevGroup = t.group;
  }
  // Segments: sorted, disjoint, each inside one group, and together covering every tensor byte.
  let segEnd = 0;
  for (const s of l.segments) {
    assert.ok(s.arenaOffset >= segEnd, 'segments are sorted and disjoint');
    segEnd = s.arenaOffset + s.bytes;
    assert.ok(l.groups.some((g) => s.arenaOffset >= g.start && segEnd <= g.end), 'a segment stays inside one group');
  }
  for (const t of l.tensors) {
    let covered = 0;
    for (const s of l.segments) {
      const lo = Math.max(s.arenaOffset, t.offset), hi = Math.min(s.arenaOffset + s.bytes, t.offset + t.bytes);
      if (hi > lo) covered += hi - lo;
    }
    assert.equal(covered, t.bytes, `${t.name} is covered exactly once`);
  }
}

/** Fill an arena from the segments (as the runtime does) and return the bytes of tensor `name`. */
async function arenaTensor(m: ModelSource, name: string): Promise<Buffer> {
  const arena = Buffer.alloc(m.layout.totalBytes);
  for (const s of m.layout.segments) {
    const fh = await open(s.file, 'r');
    try { await fh.read(arena, s.arenaOffset, s.bytes, s.fileOffset); } finally { await fh.close(); }
  }
  const t = m.layout.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name} is placed`);
  return arena.subarray(t.offset, t.offset + t.bytes);
}

describe('openModel: stories260K.gguf (real model)', { skip: needsData() }, () => {
  it('reads the llama config, interleaved RoPE and 260,032 parameters (the duplicate tied head counted once)', async () => {
    const m = await openModel(STORIES);
    assert.equal(m.format, 'gguf');
    assert.equal(m.parameterCount, 260_032);
    assert.equal(m.dtype, 'f32');
    const c = m.config;
    assert.deepEqual([c.arch, c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize],
      ['llama', 64, 172, 5, 8, 4, 8, 512]);
    assert.equal(c.ropeStyle, 'interleaved');
    assert.equal(c.tieWordEmbeddings, true, 'output.weight equals token_embd.weight, so the model is tied');
    assert.equal(c.rmsNormEps, 1e-5, 'the f32 epsilon is read back as its shortest decimal');
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.bosTokenId, 1);
    assert.deepEqual(c.eosTokenIds, [2]);
    assert.equal(m.layout.tensors.some((t) => t.name === 'output'), false, 'the copy of the head is not loaded');
    assert.equal(m.layout.tensors.length, 1 + 5 * 9 + 1);
    assert.deepEqual(m.tokenizer, { kind: 'gguf', path: m.path, chatTemplate: null });
    checkLayout(m.layout, 7);
  });

  it('segments place the exact file bytes of each tensor', async () => {
    const m = await openModel(STORIES);
    // llama2.c's stories260K.bin holds the same weights: token_embedding (512x64 f32) right after the 28-byte header.
    const bin = await readFile(join(dirname(STORIES), 'stories260K.bin'));
    const emb = await arenaTensor(m, 'tok_embeddings');
    assert.ok(emb.equals(bin.subarray(28, 28 + 512 * 64 * 4)));
    // rms_final sits after all the layer arrays in the .bin.
    const L = 5, C = 64, F = 172;
    const finalOff = 28 + 4 * (512 * C + L * C + L * C * C + 2 * L * 32 * C + L * C * C + L * C + 3 * L * F * C);
    const norm = await arenaTensor(m, 'norm');
    assert.ok(norm.equals(bin.subarray(finalOff, finalOff + C * 4)));
  });
});

describe('openModel: synthetic models of each family', () => {
  for (const family of ['llama', 'llama3', 'mistral', 'qwen2'] as const) {
    for (const format of ['hf', 'gguf'] as const) {
      it(`${family} ${format} bf16 opens with the tensors its config implies`, async () => {
        const m = await openModel(await makeTinyModel({ family, format, dtype: 'bf16', seed: 7 }));
        assert.equal(m.format, format === 'hf' ? 'safetensors' : 'gguf');
        assert.equal(m.dtype, 'bf16');
        assert.equal(m.config.arch, family === 'llama3' ? 'llama' : family);
        assert.equal(m.config.ropeStyle, format === 'gguf' && family !== 'qwen2' ? 'interleaved' : 'half');
        assert.equal(m.config.attentionBias, family === 'qwen2');
        assert.equal(m.layout.tensors.some((t) => t.name === 'layers.1.bq'), family === 'qwen2');
        assert.equal(m.layout.tensors.some((t) => t.name === 'output'), family !== 'qwen2');
        const elements = m.layout.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
        assert.equal(m.parameterCount, elements);
        if (format === 'gguf') assert.equal(m.layout.tensors.find((t) => t.name === 'norm')?.dtype, 'f32', 'GGUF norms stay f32');
        assert.ok(m.tokenizer, 'a tiny model carries a tokenizer');
        checkLayout(m.layout, m.config.numLayers + 2);
        if (family === 'llama3') { // HF: rope_scaling in config.json; GGUF: recovered from rope_freqs.weight
          assert.deepEqual(m.config.ropeScaling, { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
        }
      });
    }
  }

  it('a sharded HF model reads every shard through its index', async () => {
    const m = await openModel(await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f16', seed: 2, shards: 3 }));
    assert.equal(m.files.length, 3);
    assert.equal(new Set(m.layout.segments.map((s) => s.file)).size, 3);
    checkLayout(m.layout, 4);
  });

  for (const dtype of ['f32', 'bf16'] as const) it(`the same seed writes the same ${dtype} model as HF and GGUF (Q/K rows permuted for interleaved RoPE)`, async () => {
    const hf = await openModel(await makeTinyModel({ family: 'llama3', format: 'hf', dtype, seed: 11 }));
    const gg = await openModel(await makeTinyModel({ family: 'llama3', format: 'gguf', dtype, seed: 11 }));
    assert.ok((await arenaTensor(hf, 'layers.1.w2')).equals(await arenaTensor(gg, 'layers.1.w2')));
    const a = decodeValues(await arenaTensor(hf, 'layers.0.wk'), dtype);
    const b = decodeValues(await arenaTensor(gg, 'layers.0.wk'), dtype);
    const D = 16, C = 64;
    // GGUF row h*D + 2i + j is HF row h*D + j*D/2 + i.
    for (const [h, i, j] of [[0, 0, 1], [1, 3, 0], [1, 7, 1]]) {
      const g = (h * D + 2 * i + j) * C, f = (h * D + j * (D / 2) + i) * C;
      assert.deepEqual(Array.from(b.subarray(g, g + C)), Array.from(a.subarray(f, f + C)));
    }
    assert.notDeepEqual(Array.from(a.subarray(C, 2 * C)), Array.from(b.subarray(C, 2 * C)), 'rows really moved');
  });

  it('random weights are N(0, 0.02)-ish and norms are 1', async () => {
    const m = await openModel(await makeTinyModel({ family: 'mistral', format: 'hf', dtype: 'f32', seed: 5 }));
    const w = decodeValues(await arenaTensor(m, 'layers.0.w1'), 'f32');
    const mean = w.reduce((s, x) => s + x, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, x) => s + (x - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(mean) < 0.002 && Math.abs(std - 0.02) < 0.002, `mean ${mean} std ${std}`);
    assert.ok(decodeValues(await arenaTensor(m, 'norm'), 'f32').every((x) => x === 1));
  });
});

describe('safetensors writer', () => {
  it('round-trips names, dtypes, shapes and bytes', async () => {
    const dir = dirname(await makeTinyModel({ family: 'llama', format: 'gguf' }));
    const file = join(dir, 'x.safetensors');
    const a = new Uint8Array(3 * 5 * 2).map((_, i) => i);
    const b = new Uint8Array(7 * 4).map((_, i) => 255 - i);
    await writeSafetensors(file, [{ name: 'a', dtype: 'bf16', shape: [3, 5], data: a }, { name: 'b', dtype: 'f32', shape: [7], data: () => b }]);
    const st = await readSafetensors(file);
    assert.deepEqual(st.tensors.map((t) => [t.name, t.stDtype, t.shape]), [['a', 'BF16', [3, 5]], ['b', 'F32', [7]]]);
    assert.equal(st.headerBytes % 8, 0);
    const raw = await readFile(file);
    assert.deepEqual(new Uint8Array(raw.subarray(st.tensors[1].fileOffset, st.tensors[1].fileOffset + 28)), b);
  });
});
