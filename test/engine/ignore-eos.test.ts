// ignore_eos (vLLM's extension, job sampling.ignoreEos): the engine samples past EOS until maxTokens, so a load
// replay gets the trace's output lengths; without it, EOS ends the sequence as before.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

async function collect(it: AsyncIterable<GenerateEvent>) {
  const ids: number[] = [];
  let done: Extract<GenerateEvent, { type: 'done' }> | null = null;
  for await (const e of it) if (e.type === 'token') ids.push(e.id); else done = e;
  assert.ok(done);
  return { ids, done };
}

describe('engine ignoreEos (CPU, stories260K)', { skip: needsData() }, () => {
  let plain: Engine;
  let withEos: Engine;
  before(async () => {
    const source = await openModel(STORIES260K_GGUF);
    const arena = await readArena(source);
    const tok = await loadTokenizer(source);
    plain = await Engine.createOnHostArena(arena, source, tok, { maxContext: 256 });
    // Greedy from BOS never samples </s> early: make " Lily" (317, the 14th greedy token) an EOS id too.
    withEos = await Engine.createOnHostArena(arena, { ...source, config: { ...source.config, eosTokenIds: [2, 317] } }, tok, { maxContext: 256 });
  });
  after(async () => { await plain?.close(); await withEos?.close(); });

  const greedy = (extra: { ignoreEos?: boolean } = {}) => ({ prompt: [1], maxTokens: 32, temperature: 0, topP: 1, topK: 0, ...extra });

  it('stops at EOS by default and samples through it with ignoreEos, the same tokens as without that EOS', async () => {
    const ref = await collect(plain.generate(greedy()));
    assert.equal(ref.ids.length, 32);
    const stopped = await collect(withEos.generate(greedy()));
    assert.equal(stopped.done.finishReason, 'stop');
    assert.ok(stopped.done.completionTokens < 32);
    const through = await collect(withEos.generate(greedy({ ignoreEos: true })));
    assert.equal(through.done.finishReason, 'length');
    assert.equal(through.done.completionTokens, 32);
    assert.deepEqual(through.ids, ref.ids);
  });
});
