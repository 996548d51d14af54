// A model whose vocab is larger than its tokenizer's (common: padded embeddings) can sample an id the tokenizer
// cannot decode. That sequence must end with a typed error (decode_failed), not escape the engine's loop and end
// the process (found by the headline benchmark: a worker died on it and its request hung).
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, isEngineError } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

describe('engine: undecodable sampled ids', () => {
  let path = '';
  after(async () => { if (path) await rm(path, { recursive: true, force: true }); });

  it('fails the sequence with decode_failed, and the engine keeps serving', async () => {
    path = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 3, config: { vocabSize: 4096 } });
    const source = await openModel(path);
    const tok = await loadTokenizer(source);
    assert.ok(tok.vocabSize < source.config.vocabSize, 'the tokenizer covers fewer ids than the model samples');
    const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 256 });
    try {
      for (const seed of [1, 2]) {
        const ids: number[] = [];
        await assert.rejects(async () => {
          for await (const e of engine.generate({ prompt: [tok.bosId ?? 0, ...tok.encode('hello')], maxTokens: 64, temperature: 1, topP: 1, topK: 0, seed })) {
            if (e.type === 'token') ids.push(e.id);
          }
        }, (e: unknown) => isEngineError(e) && e.code === 'decode_failed' && /token \d+/.test(e.message));
        assert.ok(ids.every((id) => id < tok.vocabSize), 'only decodable tokens were emitted before the failure');
      }
    } finally {
      await engine.close();
    }
  });
});
