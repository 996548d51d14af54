// Writers and dtype converters: GGUF v2/v3 and alignments round-trip through the reader; f16/bf16 rounding.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, openModel, readGguf, tinyConfig, tinyGgufVocab, writeGgufModel,
} from '../../native/ts/model/index.ts';
import { makeTempDir } from '../helpers/make-model.ts';

describe('GGUF writer', () => {
  for (const [version, alignment] of [[2, 32], [3, 32], [3, 64], [3, 256]] as const) {
    it(`v${version}, alignment ${alignment}: the reader sees the same tensors, aligned, and the model opens`, async () => {
      const vocab = tinyGgufVocab('mistral');
      const cfg = { ...tinyConfig('mistral', vocab.tokens.length, vocab.bosId, [vocab.eosId]), numLayers: 1 };
      const file = join(await makeTempDir('writer'), 'm.gguf');
      await writeGgufModel(file, cfg, { dtype: 'f16', seed: 3, vocab, version, alignment });
      const g = await readGguf(file);
      assert.equal(g.version, version);
      assert.equal(g.alignment, alignment);
      assert.equal(g.dataStart % alignment, 0);
      for (const t of g.tensors) assert.equal((t.fileOffset - g.dataStart) % alignment, 0, t.name);
      const m = await openModel(file);
      assert.equal(m.dtype, 'f16');
      assert.equal(m.config.vocabSize, vocab.tokens.length);
      assert.equal(m.tokenizer?.chatTemplate, vocab.chatTemplate);
    });
  }
});

describe('dtype converters', () => {
  it('f32 → f16 rounds to nearest even, with subnormals, overflow and NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [2 ** -24, 0x0001], [2 ** -26, 0x0000],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66], [-0, 0x8000], [Infinity, 0x7c00],
    ];
    for (const [x, h] of cases) assert.equal(f32ToF16(x), h, `f16(${x})`);
    assert.equal(f32ToF16(NaN) & 0x7c00, 0x7c00);
    assert.ok(f32ToF16(NaN) & 0x3ff);
    for (const [, h] of cases) if (h !== 0x7c00) assert.equal(f32ToF16(f16ToF32(h)), h, `round trip ${h.toString(16)}`);
  });

  it('f32 → bf16 rounds to nearest even and keeps NaN a NaN', () => {
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80, 'tie to even (down)');
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82, 'tie to even (up)');
    assert.equal(f32ToBf16(-3.140625), 0xc049);
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
    assert.equal(bf16ToF32(0x3f80), 1);
  });
});
