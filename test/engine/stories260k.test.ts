// The CPU engine on the real stories260K model: reference ids and logits, batching, sampling, stop rules, limits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Engine, EngineError, type GenerateEvent, type GenerateRequest } from '../../native/ts/engine.ts';
import { readArena } from '../../native/ts/arena.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import { jsonConstraint } from '../../native/ts/grammar/index.ts';

const MODEL = STORIES260K_GGUF;
// shared/data/README.md: greedy from BOS at position 0.
const REF_IDS = '403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385'
  .split(' ').map(Number);
const REF_TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One';

const greedy = (prompt: number[], maxTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest =>
  ({ prompt, maxTokens, temperature: 0, topP: 1, topK: 0, ...extra });

async function collect(it: AsyncIterable<GenerateEvent>) {
  const ids: number[] = [];
  let text = '';
  let done: Extract<GenerateEvent, { type: 'done' }> | null = null;
  for await (const e of it) {
    if (e.type === 'token') { ids.push(e.id); text += e.text; } else done = e;
  }
  assert.ok(done, 'the stream ends with a done event');
  return { ids, text, done };
}

describe('engine on stories260K (CPU)', { skip: needsData() }, () => {
  let source: ModelSource;
  let arena: Uint8Array;
  let decoder: Tokenizer;
  let engine: Engine;

  before(async () => {
    source = await openModel(MODEL);
    arena = await readArena(source);
    decoder = await loadTokenizer(source);
    engine = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 512 });
  });
  after(async () => { await engine?.close(); });

  it('greedy from BOS gives the reference ids and text', async () => {
    const r = await collect(engine.generate(greedy([1], 32)));
    assert.deepEqual(r.ids, REF_IDS);
    assert.equal(r.text, REF_TEXT);
    assert.equal(r.done.finishReason, 'length');
    assert.equal(r.done.promptTokens, 1);
    assert.equal(r.done.completionTokens, 32);
    assert.ok(r.done.prefillMs >= 0 && r.done.decodeMs >= 0);
  });

  it('concurrent requests are batched and each gets the tokens it gets alone', async () => {
    const prompts = [[1], [1, 403, 407], [1, 385, 410, 317], [1, 317, 426, 338, 401]];
    const alone = [];
    for (const p of prompts) alone.push((await collect(engine.generate(greedy(p, 20)))).ids);
    const together = await Promise.all(prompts.map((p) => collect(engine.generate(greedy(p, 20)))));
    assert.deepEqual(together.map((r) => r.ids), alone);
  });

  it('more requests than maxBatch wait their turn; each gets its own tokens, cancelled ones end cancelled', async () => {
    const small = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 128, maxBatch: 3, prefillChunk: 4 });
    try {
      const prompts = Array.from({ length: 12 }, (_, i) => [1, ...REF_IDS.slice(0, i)]);
      const controllers = prompts.map(() => new AbortController());
      const runs = prompts.map((p, i) => collect(small.generate(greedy(p, 10), controllers[i].signal)));
      assert.equal(small.activeSequences, 12);
      controllers[5].abort(); // still waiting: ends at once
      controllers[0].abort(); // admitted: ends at the next step
      const results = await Promise.all(runs);
      for (const [i, r] of results.entries()) {
        if (i === 0 || i === 5) {
          assert.equal(r.done.finishReason, 'cancelled');
          continue;
        }
        assert.equal(r.done.finishReason, 'length');
        assert.deepEqual(r.ids, REF_IDS.slice(i, i + 10), `request ${i}`);
      }
      assert.equal(results[5].done.completionTokens, 0);
      assert.equal(small.activeSequences, 0);
    } finally {
      await small.close();
    }
  });

  it('prefill in small chunks gives the same tokens as in one pass', async () => {
    const prompt = [1, ...REF_IDS.slice(0, 20)];
    const whole = await collect(engine.generate(greedy(prompt, 12)));
    const chunked = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 512, prefillChunk: 3 });
    try {
      assert.deepEqual((await collect(chunked.generate(greedy(prompt, 12)))).ids, whole.ids);
    } finally {
      await chunked.close();
    }
    // The reference continuation of the reference prefix.
    assert.deepEqual(whole.ids, REF_IDS.slice(20, 32));
  });

  it('seeded sampling repeats per seed and follows the seed', async () => {
    const req = (seed: number) => ({ prompt: [1], maxTokens: 24, temperature: 1, topP: 0.95, topK: 40, seed });
    const a = await collect(engine.generate(req(7)));
    const b = await collect(engine.generate(req(7)));
    assert.deepEqual(a.ids, b.ids);
    const others = await Promise.all([8, 9, 10].map((s) => collect(engine.generate(req(s)))));
    assert.ok(others.some((o) => o.ids.join() !== a.ids.join()), 'different seeds give different samples');
    // top-k 1 is greedy whatever the temperature.
    const k1 = await collect(engine.generate({ ...req(3), topK: 1 }));
    assert.deepEqual(k1.ids, REF_IDS.slice(0, 24));
  });

  it('stops at a stop string, which is not emitted', async () => {
    const r = await collect(engine.generate(greedy([1], 32, { stop: ['Lily', 'zebra'] })));
    assert.equal(r.text, 'Once upon a time, there was a little girl named ');
    assert.equal(r.done.finishReason, 'stop');
    assert.ok(r.done.completionTokens < 32);
  });

  it('stops at EOS, whose text is not emitted', async () => {
    // Greedy from BOS never samples </s> within its first 2,000 tokens, so make " Lily" (317) an EOS id.
    const withEos = { ...source, config: { ...source.config, eosTokenIds: [2, 317] } };
    const e2 = await Engine.createOnHostArena(arena, withEos, decoder, { maxContext: 512 });
    try {
      const r = await collect(e2.generate(greedy([1], 32)));
      assert.equal(r.done.finishReason, 'stop');
      assert.equal(r.text, 'Once upon a time, there was a little girl named');
      assert.deepEqual(r.ids, REF_IDS.slice(0, 13));
      assert.equal(r.done.completionTokens, 14); // the EOS token counts as sampled
    } finally {
      await e2.close();
    }
  });

  it('rejects bad requests with typed errors before any compute', () => {
    assert.throws(() => engine.generate(greedy([1], 512)), (e: unknown) => e instanceof EngineError && e.code === 'context_length_exceeded');
    assert.throws(() => engine.generate(greedy([], 4)), (e: unknown) => e instanceof EngineError && e.code === 'invalid_request');
    assert.throws(() => engine.generate(greedy([1, 512], 4)), /Expected token ids in \[0, 512\)/);
    assert.throws(() => engine.generate(greedy([1], 0)), /maxTokens/);
    assert.throws(() => engine.generate(greedy([1], 4, { topP: 0 })), /topP/);
    assert.throws(() => engine.generate(greedy([1], 4, { temperature: -1 })), /temperature/);
    assert.throws(() => engine.generate(greedy([1], 4, { stop: [''] })), /stop strings/);
    // A stop string would cut the document a constraint guarantees (the API refuses the pair with a 400 naming stop).
    const constraint = jsonConstraint(decoder, source.config.vocabSize, source.config.eosTokenIds, { type: 'json_object' });
    assert.throws(() => engine.generate(greedy([1], 40, { constraint, stop: ['}'] })), (e: unknown) => e instanceof EngineError && e.code === 'invalid_request' && /no stop strings with a constraint/.test(e.message));
    assert.equal(engine.activeSequences, 0);
  });

  it('rejects engine options the model cannot honour', async () => {
    await assert.rejects(Engine.createOnHostArena(arena, source, decoder, { maxContext: 4096 }), /maxContext <= the model's 2048 positions/);
    await assert.rejects(Engine.createOnHostArena(arena, source, decoder, { maxBatch: 0 }), (e: unknown) => e instanceof EngineError && e.code === 'invalid_request');
    await assert.rejects(Engine.createOnHostArena(arena.subarray(1), source, decoder), /Expected an arena of 1040128 bytes/);
  });

  it('an aborted request ends cancelled; breaking out of the loop frees the sequence', async () => {
    const ac = new AbortController();
    let n = 0;
    let done: GenerateEvent | null = null;
    for await (const e of engine.generate(greedy([1], 200), ac.signal)) {
      if (e.type === 'token' && ++n === 3) ac.abort();
      if (e.type === 'done') done = e;
    }
    assert.equal(done?.type === 'done' && done.finishReason, 'cancelled');
    assert.ok(n >= 3 && n < 200);
    for await (const e of engine.generate(greedy([1], 200))) if (e.type === 'token') break;
    // The loop notices the cancellation at its next step and frees the KV cache.
    while (engine.activeSequences > 0) await new Promise((r) => setImmediate(r));
    assert.equal(engine.activeSequences, 0);
  });

  it('a KV cache over the scratch budget fails the request with a typed error', async () => {
    const small = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 512, scratchBudgetBytes: 1024 });
    try {
      await assert.rejects(collect(small.generate(greedy([1], 4))),
        (e: unknown) => e instanceof EngineError && e.code === 'native' && e.nativeCode === 'budget');
    } finally {
      await small.close();
    }
  });

  it('a new request that finds no free KV blocks waits for them; running ones go on', async () => {
    // 16 blocks of 16 positions: the running sequence grows to 241 positions (all 16 blocks), so the second one can
    // only be admitted once the first ends.
    const one = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 256, kvCacheBytes: 16 * 16 * 1280 });
    try {
      const a = one.generate(greedy([1], 240))[Symbol.asyncIterator]();
      for (let i = 0; i < 230; i++) await a.next();
      assert.ok(one.stats().blocksFree <= 1);
      const b = collect(one.generate(greedy([1, 403], 8)));
      assert.equal(one.stats().waiting, 1);
      const rest = await collect({ [Symbol.asyncIterator]: () => a });
      assert.equal(rest.done.finishReason, 'length');
      assert.equal(rest.done.completionTokens, 240);
      const late = await b;
      assert.equal(late.done.finishReason, 'length');
      assert.deepEqual(late.ids, (await collect(engine.generate(greedy([1, 403], 8)))).ids);
      assert.equal(one.preemptions, 0, 'the waiting request never displaced the running one');
    } finally {
      await one.close();
    }
  });

  it('close is idempotent, ends running requests and refuses new ones', async () => {
    const e2 = await Engine.createOnHostArena(arena, source, decoder, { maxContext: 512 });
    const running = collect(e2.generate(greedy([1], 300)));
    await Promise.all([e2.close(), e2.close()]);
    const r = await running;
    assert.equal(r.done.finishReason, 'cancelled');
    assert.throws(() => e2.generate(greedy([1], 4)), (e: unknown) => e instanceof EngineError && e.code === 'closed');
    await e2.close();
  });
});
