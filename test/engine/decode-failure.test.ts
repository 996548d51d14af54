// A model whose vocab is larger than its tokenizer's (common: padded embeddings): ids past the tokenizer are masked
// in the sampler, so they are never sampled (issue 11: such an id used to fail the whole request with "Generation
// failed" and nothing in any log; engine.ts still turns one into empty text, reported once, as a second line).
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

describe('engine: undecodable sampled ids', () => {
  let path = '';
  after(async () => { if (path) await rm(path, { recursive: true, force: true }); });

  it('never samples an id past the tokenizer, at any temperature', async () => {
    path = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 3, config: { vocabSize: 4096 } });
    const source = await openModel(path);
    const tok = await loadTokenizer(source);
    assert.ok(tok.vocabSize < source.config.vocabSize, 'the tokenizer covers fewer ids than the model samples');
    const warnings: string[] = [];
    const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 256, warn: (m) => warnings.push(m) });
    try {
      let past = 0;
      for (const seed of [1, 2, 3]) {
        let done = false;
        let n = 0;
        for await (const e of engine.generate({ prompt: [tok.bosId ?? 0, ...tok.encode('hello')], maxTokens: 64, temperature: 1, topP: 1, topK: 0, seed })) {
          if (e.type === 'token') {
            n++;
            if (e.id >= tok.vocabSize) {
              past++;
              assert.equal(e.text, '', `id ${e.id} is past the tokenizer: empty text`);
            }
          } else {
            done = true;
            assert.ok(e.finishReason === 'length' || e.finishReason === 'stop');
            assert.equal(e.completionTokens, n);
          }
        }
        assert.ok(done, 'the request completed');
      }
      // The sampler masks ids past the tokenizer (native/src/engine/sampler.cc, vocabLimit): never sampled, so no
      // warning either. (Before the mask, these seeds sampled such ids.)
      assert.equal(past, 0, 'no id past the tokenizer is ever sampled');
      assert.equal(warnings.length, 0);
    } finally {
      await engine.close();
    }
  });
});
