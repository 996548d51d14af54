// Issue 12's sampling parameters on the CPU engine (stories260K, real weights): the effect of each, not only that
// it is accepted — logit_bias, logprobs, penalties, min_p, top_k, n > 1 with one shared prefill, seeded
// reproducibility whatever the batch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Engine, EngineError, type GenerateEvent, type GenerateRequest } from '../../native/ts/engine.ts';
import { readArena } from '../../native/ts/arena.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

type Token = Extract<GenerateEvent, { type: 'token' }>;
type Done = Extract<GenerateEvent, { type: 'done' }>;

const req = (prompt: number[], maxTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest =>
  ({ prompt, maxTokens, temperature: 0, topP: 1, topK: 0, ...extra });

async function collect(it: AsyncIterable<GenerateEvent>) {
  const tokens: Token[] = [];
  let done: Done | null = null;
  for await (const e of it) {
    if (e.type === 'token') tokens.push(e);
    else { assert.equal(done, null, 'exactly one done event'); done = e; }
  }
  assert.ok(done, 'the stream ends with a done event');
  const byChoice = (c: number) => tokens.filter((t) => t.choice === c).map((t) => t.id);
  return { tokens, ids: byChoice(0), byChoice, done };
}

describe('engine sampling parameters (stories260K, CPU)', { skip: needsData() }, () => {
  let source: ModelSource;
  let tok: Tokenizer;
  let engine: Engine;

  before(async () => {
    source = await openModel(STORIES260K_GGUF);
    tok = await loadTokenizer(source);
    engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 512 });
  });
  after(async () => { await engine?.close(); });

  it('logit_bias +100 on a token makes it the greedy output; -100 removes the greedy choice', async () => {
    const plain = await collect(engine.generate(req([1], 8)));
    const target = 300;
    assert.ok(!plain.ids.includes(target));
    const biased = await collect(engine.generate(req([1], 8, { logitBias: { [target]: 100 } })));
    assert.deepEqual(biased.ids, new Array(8).fill(target));
    const banned = await collect(engine.generate(req([1], 8, { logitBias: { [plain.ids[0]]: -100 } })));
    assert.notEqual(banned.ids[0], plain.ids[0]);
  });

  it('logprobs: 5 sorted alternatives, the greedy token first, probabilities consistent', async () => {
    const r = await collect(engine.generate(req([1], 12, { logprobs: 5 })));
    for (const t of r.tokens) {
      assert.equal(t.topLogprobs?.length, 5);
      const lps = t.topLogprobs!.map((a) => a.logprob);
      for (let i = 1; i < lps.length; i++) assert.ok(lps[i] <= lps[i - 1], 'sorted, most likely first');
      assert.equal(t.topLogprobs![0].id, t.id, 'greedy: the chosen token is the top alternative');
      assert.equal(t.logprob, lps[0]);
      assert.ok(t.logprob! <= 0 && t.logprob! > -50);
      const mass = lps.reduce((a, l) => a + Math.exp(l), 0);
      assert.ok(mass <= 1 + 1e-4 && mass > 0.1, `top-5 mass ${mass}`);
      assert.equal(t.topLogprobs![0].text, tok.decode([t.id]));
    }
    // logprobs: 0 gives the chosen token's logprob and no alternatives; absent gives neither.
    const zero = await collect(engine.generate(req([1], 3, { logprobs: 0 })));
    for (const t of zero.tokens) { assert.deepEqual(t.topLogprobs, []); assert.equal(typeof t.logprob, 'number'); }
    const none = await collect(engine.generate(req([1], 3)));
    for (const t of none.tokens) { assert.equal(t.logprob, undefined); assert.equal(t.topLogprobs, undefined); }
  });

  it('sampled logprobs are the chosen id\'s, before temperature (the same under T = 0.7 and greedy logits)', async () => {
    const r = await collect(engine.generate(req([1], 10, { temperature: 0.7, seed: 5, logprobs: 3 })));
    for (const t of r.tokens) {
      const alt = t.topLogprobs!.find((a) => a.id === t.id);
      if (alt) assert.equal(alt.logprob, t.logprob);
      else assert.ok(t.logprob! <= t.topLogprobs![2].logprob);
    }
  });

  it('frequency, presence and repetition penalties change a repetitive greedy output', async () => {
    const rep = (ids: number[]) => ids.length - new Set(ids).size;
    const plain = await collect(engine.generate(req([1], 64)));
    assert.ok(rep(plain.ids) > 10, `greedy stories260K repeats itself (${rep(plain.ids)} repeats)`);
    for (const extra of [{ frequencyPenalty: 2 }, { presencePenalty: 2 }, { repetitionPenalty: 1.8 }] as Partial<GenerateRequest>[]) {
      const r = await collect(engine.generate(req([1], 64, extra)));
      assert.notDeepEqual(r.ids, plain.ids, JSON.stringify(extra));
      assert.ok(rep(r.ids) < rep(plain.ids), `${JSON.stringify(extra)}: ${rep(r.ids)} repeats < ${rep(plain.ids)}`);
    }
    // A negative frequency penalty encourages repeats.
    const neg = await collect(engine.generate(req([1], 64, { frequencyPenalty: -2 })));
    assert.ok(rep(neg.ids) >= rep(plain.ids));
  });

  it('top_k: 1 is greedy whatever the temperature; min_p 1 keeps only the likeliest', async () => {
    const plain = await collect(engine.generate(req([1], 16)));
    const k1 = await collect(engine.generate(req([1], 16, { temperature: 1.5, topK: 1, seed: 3 })));
    assert.deepEqual(k1.ids, plain.ids);
    const mp = await collect(engine.generate(req([1], 16, { temperature: 1.5, minP: 1, seed: 3 })));
    assert.deepEqual(mp.ids, plain.ids);
    const hot = await collect(engine.generate(req([1], 16, { temperature: 1.5, seed: 3 })));
    assert.notDeepEqual(hot.ids, plain.ids, 'without them T = 1.5 departs from greedy');
  });

  it('n: 3 gives 3 distinct seeded choices from one shared prefill; one done with finishReasons', async () => {
    const prompt = [1, 403, 407, 261, 378, 432, 383];
    const r = await collect(engine.generate(req(prompt, 24, { n: 3, temperature: 1, seed: 42 })));
    const outs = [0, 1, 2].map((c) => r.byChoice(c));
    for (const o of outs) assert.equal(o.length, 24);
    assert.equal(new Set(outs.map((o) => o.join())).size, 3, 'distinct choices');
    assert.deepEqual(r.done.finishReasons, ['length', 'length', 'length']);
    assert.equal(r.done.completionTokens, 72);
    assert.equal(r.done.promptTokens, prompt.length);
    // Reproducible: the same seed gives the same three choices; choice 0 is what n = 1 gives with that seed.
    const again = await collect(engine.generate(req(prompt, 24, { n: 3, temperature: 1, seed: 42 })));
    for (const c of [0, 1, 2]) assert.deepEqual(again.byChoice(c), outs[c]);
    const one = await collect(engine.generate(req(prompt, 24, { temperature: 1, seed: 42 })));
    assert.deepEqual(one.ids, outs[0]);
    // The forked KV is the prefill's: greedy choices are identical to each other and to n = 1 greedy.
    const g1 = await collect(engine.generate(req(prompt, 24)));
    const g3 = await collect(engine.generate(req(prompt, 24, { n: 3 })));
    for (const c of [0, 1, 2]) assert.deepEqual(g3.byChoice(c), g1.ids);
  });

  it('n > 1 and logprobs with a one-token prompt (nothing to share) and with stop/EOS per choice', async () => {
    const r = await collect(engine.generate(req([1], 40, { n: 2, temperature: 1, seed: 9, logprobs: 2, stop: ['.'] })));
    assert.equal(r.done.finishReasons?.length, 2);
    for (const c of [0, 1]) {
      const text = r.tokens.filter((t) => t.choice === c).map((t) => t.text).join('');
      if (r.done.finishReasons![c] === 'stop') assert.ok(!text.includes('.'));
    }
    for (const t of r.tokens) assert.equal(t.topLogprobs?.length, 2);
  });

  it('same seed, same tokens whatever the batch (each parameter on)', async () => {
    const extra: Partial<GenerateRequest> = { temperature: 0.9, topK: 40, minP: 0.05, frequencyPenalty: 0.5, presencePenalty: 0.3, repetitionPenalty: 1.2, logitBias: { 300: 2 }, logprobs: 3, seed: 77 };
    const alone = await collect(engine.generate(req([1, 403], 24, extra)));
    const others = [[1], [1, 385, 410], [1, 317, 426, 338]].map((p, i) => engine.generate(req(p, 30, { temperature: 1, seed: i })));
    const [mixed] = await Promise.all([collect(engine.generate(req([1, 403], 24, extra))), ...others.map(collect)]);
    assert.deepEqual(mixed.ids, alone.ids);
    assert.deepEqual(mixed.tokens.map((t) => t.logprob), alone.tokens.map((t) => t.logprob));
  });

  it('refuses malformed parameters with a typed error', () => {
    for (const bad of [{ logprobs: 21 }, { n: 0 }, { n: 17 }, { minP: 2 }, { presencePenalty: 3 }, { repetitionPenalty: 0 }, { logitBias: { 99999: 1 } }, { logitBias: { 5: 200 } }] as Partial<GenerateRequest>[]) {
      assert.throws(() => engine.generate(req([1], 4, bad)), (e: unknown) => e instanceof EngineError && e.code === 'invalid_request', JSON.stringify(bad));
    }
  });
});
