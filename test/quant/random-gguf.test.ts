// bench/quant/random_gguf.ts, the writer of the GPU runs' 8B-shaped random quantized files, at a tiny shape: its
// files load through the project's GGUF reader, dequantize to centred weights of about the intended spread, the CPU
// engine's logits match a float64 forward pass of the dequantized weights, the padded tokenizer covers the vocab,
// and greedy generation through the engine runs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { buildModelDesc, loadEngineAddon } from '../../native/ts/engine-native.ts';
import { readGguf } from '../../native/ts/model/gguf.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { ggufToCanonical } from '../../native/ts/model/tensors.ts';
import { decodeTensor, QUANT_DTYPES } from '../../native/ts/model/quant.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import type { QuantDType } from '../../native/ts/types.ts';
import { paddedVocab, randomQuantBlocks, tinyQuantConfig, writeRandomQuantGguf } from '../../bench/quant/random_gguf.ts';
import { referenceLogits } from '../engine/reference-forward.ts';
import { makeTempDir } from '../helpers/make-model.ts';

describe('random quantized GGUF files (bench/quant/random_gguf.ts) at a tiny shape', () => {
  it('blocks of every type dequantize to centred values with a standard deviation near 0.02', () => {
    for (const dtype of QUANT_DTYPES) {
      const v = decodeTensor(randomQuantBlocks(dtype, 256 * 512, 7), dtype);
      let s = 0, s2 = 0;
      for (const x of v) { assert.ok(Number.isFinite(x), `${dtype}: finite`); s += x; s2 += x * x; }
      const mean = s / v.length, sd = Math.sqrt(s2 / v.length - mean * mean);
      assert.ok(Math.abs(mean) < 0.002, `${dtype}: mean ${mean}`);
      assert.ok(sd > 0.015 && sd < 0.025, `${dtype}: sd ${sd}`);
    }
  });

  it('a tensor larger than the 64 MiB random pool (tiled from it) has the same statistics', () => {
    const bytes = randomQuantBlocks('q8_0', 1 << 26, 9);
    const v = decodeTensor(bytes.subarray(bytes.length - 34 * 65536), 'q8_0'); // the last 2M values: tiled
    let s = 0, s2 = 0;
    for (const x of v) { s += x; s2 += x * x; }
    const mean = s / v.length, sd = Math.sqrt(s2 / v.length - mean * mean);
    assert.ok(Math.abs(mean) < 0.002 && sd > 0.015 && sd < 0.025, `mean ${mean}, sd ${sd}`);
  });

  it('rejects a value count that is not whole blocks', () => {
    assert.throws(() => randomQuantBlocks('q4_k', 300, 1), /multiple of 256/);
  });

  const types: (QuantDType | 'q4_k_m')[] = [...QUANT_DTYPES, 'q4_k_m'];
  for (const type of types) {
    it(`${type}: loads, the CPU engine's logits match a float64 forward pass, greedy generation runs`, async () => {
      const vocab = paddedVocab(2048);
      const cfg = tinyQuantConfig(vocab);
      const file = join(await makeTempDir(`random-${type}`), `m-${type}.gguf`);
      await writeRandomQuantGguf(file, cfg, { type, vocab, seed: 3 });
      const g = await readGguf(file);
      assert.match(String(g.metadata.get('general.description')), /random weights drawn in the quantized domain/);
      const source = await openModel(file);
      assert.equal(source.config.vocabSize, 2048);
      assert.equal(source.config.numLayers, 2);
      assert.equal(source.config.ropeScaling?.kind, 'llama3');
      const want = type === 'q4_k_m' ? ['q4_k', 'q6_k'] : [type];
      const got = [...new Set(source.layout.tensors.filter((t) => t.shape.length === 2).map((t) => t.dtype))].sort();
      assert.deepEqual(got, want.sort());
      // The arena's bytes are the file's: each quantized tensor is stored as written.
      const arena = await readArena(source);
      const buf = readFileSync(file);
      for (const t of g.tensors) {
        const placed = source.layout.tensors.find((p) => p.name === ggufToCanonical(t.name));
        if (!placed || placed.dtype === 'f32') continue;
        assert.equal(placed.bytes, t.bytes, t.name);
        const fileBytes = buf.subarray(t.fileOffset, t.fileOffset + t.bytes);
        assert.ok(Buffer.from(arena.buffer, arena.byteOffset + placed.offset, placed.bytes).equals(fileBytes), `${t.name}: arena bytes = file bytes`);
      }
      const prompt = [vocab.bosId!, 17, 3, 40, 9, 1500, 2047];
      const ref = referenceLogits(source, arena, prompt);
      const native = new (loadEngineAddon().Engine)(arena, 'm', buildModelDesc(source), { maxBatch: 1, maxContext: 64, threads: 0, scratchBudgetBytes: 1 << 24, numGroups: source.layout.groups.length });
      try {
        const logits = await native.logits({ seqs: Int32Array.of(1), counts: Int32Array.of(prompt.length), positions: Int32Array.of(0), tokens: Int32Array.from(prompt) });
        const r = ref[prompt.length - 1];
        let maxErr = 0, scale = 0;
        for (let i = 0; i < r.length; i++) {
          assert.ok(Number.isFinite(logits[i]));
          maxErr = Math.max(maxErr, Math.abs(logits[i] - r[i]));
          scale = Math.max(scale, Math.abs(r[i]));
        }
        assert.ok(scale > 0.01, `logits are not all ~0 (${scale})`);
        assert.ok(maxErr <= 1e-4 * Math.max(1, scale), `max |cpu - float64| ${maxErr} (logits up to ${scale})`);
      } finally {
        native.close();
      }
      const tokenizer = await loadTokenizer(source);
      assert.equal(tokenizer.vocabSize, 2048);
      assert.equal(tokenizer.decode([2047]), '<|pad_2047|>');
      const engine = await Engine.createOnHostArena(arena, source, tokenizer, { maxContext: 128 });
      try {
        const ids: number[] = [];
        let done: GenerateEvent | null = null;
        for await (const e of engine.generate({ prompt: tokenizer.encode('the cat sat on the mat', { addBos: true }), maxTokens: 8, temperature: 0, topP: 1, topK: 0 }) as AsyncIterable<GenerateEvent>) {
          if (e.type === 'token') ids.push(e.id);
          else done = e;
        }
        assert.ok(ids.length >= 1 && ids.every((id) => id >= 0 && id < 2048), `ids ${ids}`);
        assert.ok(done, 'a done event');
      } finally {
        await engine.close();
      }
    });
  }
});
