// Streamed text on a model whose samples are full of byte-fallback tokens (a tiny random SPM llama at
// temperature 1.5): only byte tokens may emit nothing (an incomplete character is held), and the pieces add up
// to the decoded completion (nothing lost, nothing repeated). The byte-level holding itself is the tokenizer's
// decodeStream (test/tokenizer).
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine } from '../../native/ts/engine.ts';
import { openModel, readGguf } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

describe('streamed text', () => {
  let path = '';
  after(async () => { if (path) await rm(dirname(path), { recursive: true, force: true }); });

  it('holds only byte tokens (incomplete characters), and the streamed pieces add up to the decoded completion', async () => {
    path = await makeTinyModel({ family: 'llama', format: 'gguf', dtype: 'f32', seed: 5 });
    const source = await openModel(path);
    const tok = await loadTokenizer(source);
    const types = (await readGguf(path)).metadata.get('tokenizer.ggml.token_type') as number[];
    const isByte = (id: number) => types[id] === 6;
    const engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 512 });
    try {
      let held = 0;
      for (const seed of [1, 2, 3, 4]) {
        const ids: number[] = [];
        let text = '';
        for await (const e of engine.generate({ prompt: [tok.bosId ?? 1, ...tok.encode('héllo wörld ✓')], maxTokens: 200, temperature: 1.5, topP: 1, topK: 0, seed })) {
          if (e.type !== 'token') continue;
          ids.push(e.id);
          text += e.text;
          if (e.text === '') {
            held++;
            assert.ok(isByte(e.id) || source.config.eosTokenIds.includes(e.id), `token ${e.id} (not a byte token) emitted nothing`);
          }
        }
        assert.equal(text, tok.decode(ids.filter((id) => !source.config.eosTokenIds.includes(id))));
      }
      assert.ok(held > 0, 'some tokens completed no character (their text was held)');
    } finally {
      await engine.close();
    }
  });
});
