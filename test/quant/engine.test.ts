// The CPU engine on quantized models: logits against a float64 forward pass over the dequantized weights (every
// type, the Q4_K_M mix), and a Q8_0 copy of stories260K still generating the llama2.c reference text greedily.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { buildModelDesc, loadEngineAddon } from '../../native/ts/engine-native.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { QUANT_BLOCK, QUANT_DTYPES } from '../../native/ts/model/quant.ts';
import { quantizeGgufFile } from '../../native/ts/model/writers.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { makeTempDir, makeTinyModel } from '../helpers/make-model.ts';
import { needsData } from '../helpers/requires.ts';
import { referenceLogits } from '../engine/reference-forward.ts';
import { QCONFIG } from './shapes.ts';

// test/engine/stories260k.test.ts: greedy from BOS at position 0 (shared/data/README.md).
const REF_IDS = '403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385'
  .split(' ').map(Number);
const REF_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One';

async function logitsAt(source: ModelSource, arena: Uint8Array, prompt: number[]): Promise<Float32Array[]> {
  const addon = loadEngineAddon();
  const native = new addon.Engine(arena, 'm', buildModelDesc(source), { maxBatch: 4, maxContext: 64, threads: 0, scratchBudgetBytes: 1 << 24, numGroups: source.layout.groups.length });
  try {
    const got: Float32Array[] = [];
    got[3] = await native.logits({ seqs: Int32Array.of(1), counts: Int32Array.of(4), positions: Int32Array.of(0), tokens: Int32Array.from(prompt.slice(0, 4)) });
    for (let p = 4; p < prompt.length; p++) {
      got[p] = await native.logits({ seqs: Int32Array.of(1), counts: Int32Array.of(1), positions: Int32Array.of(p), tokens: Int32Array.of(prompt[p]) });
    }
    return got;
  } finally {
    native.close();
  }
}

describe('quantized models on the CPU engine', () => {
  const cases = [...QUANT_DTYPES.map((d) => ({ dtype: d, mix: undefined, label: QUANT_BLOCK[d].name })), { dtype: 'q4_k' as const, mix: 'q4_k_m' as const, label: 'Q4_K_M' }];
  for (const c of cases) {
    it(`${c.label}: logits (prefill 4, then decode) match a float64 forward pass of the dequantized weights`, async () => {
      const path = await makeTinyModel({ family: 'llama', format: 'gguf', dtype: c.dtype, mix: c.mix, config: QCONFIG, seed: 5 });
      const source = await openModel(path);
      const arena = await readArena(source);
      const V = source.config.vocabSize;
      const prompt = [1, 17, 3, 40, 9, 22, 31, 8];
      const ref = referenceLogits(source, arena, prompt);
      const got = await logitsAt(source, arena, prompt);
      for (let p = 3; p < prompt.length; p++) {
        let maxErr = 0, scale = 0;
        for (let i = 0; i < V; i++) {
          maxErr = Math.max(maxErr, Math.abs(got[p][i] - ref[p][i]));
          scale = Math.max(scale, Math.abs(ref[p][i]));
        }
        assert.ok(scale > 0.01, `position ${p}: logits are not all ~0 (${scale})`);
        assert.ok(maxErr <= 1e-4 * Math.max(1, scale), `position ${p}: max |error| ${maxErr} (logits up to ${scale})`);
      }
    });
  }

  it('a Q8_0 copy of stories260K generates the llama2.c reference text greedily', { skip: needsData() }, async () => {
    const path = join(await makeTempDir('stories-q8'), 'stories-q8_0.gguf');
    await quantizeGgufFile(STORIES260K_GGUF, path, { dtype: 'q8_0' });
    const source = await openModel(path);
    assert.equal(source.dtype, 'q8_0');
    const arena = await readArena(source);
    const tokenizer = await loadTokenizer(source);
    const engine = await Engine.createOnHostArena(arena, source, tokenizer, { maxContext: 128 });
    try {
      const ids: number[] = [];
      let text = '';
      for await (const e of engine.generate({ prompt: [1], maxTokens: 32, temperature: 0, topP: 1, topK: 0 }) as AsyncIterable<GenerateEvent>) {
        if (e.type === 'token') { ids.push(e.id); text += e.text; }
      }
      assert.deepEqual(ids, REF_IDS);
      assert.equal(text, REF_TEXT);
    } finally {
      await engine.close();
    }
  });
});
