// Issue 12's sampling on the CUDA backend (runs where the CUDA addon is built and a GPU is visible; skipped
// elsewhere): the n > 1 KV fork (CudaBackend::forkSeq), the host sampler path with bias / logprobs / a grammar mask,
// and the vocab limit of a padded model, each checked against the CPU backend or the request's effect.
import assert from 'node:assert/strict';
import { describe, it, after } from 'node:test';

import { resolveBackend } from '../../native/ts/addon.ts';
import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent, type GenerateRequest } from '../../native/ts/engine.ts';
import { jsonConstraint, validateInstance } from '../../native/ts/grammar/index.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { needsData } from '../helpers/requires.ts';

const MiB = 1 << 20;
const cuda = resolveBackend('auto') === 'cuda';
const req = (prompt: number[], maxTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest =>
  ({ prompt, maxTokens, temperature: 0, topP: 1, topK: 0, ...extra });

async function collect(it: AsyncIterable<GenerateEvent>) {
  const tokens: Extract<GenerateEvent, { type: 'token' }>[] = [];
  let done: Extract<GenerateEvent, { type: 'done' }> | null = null;
  for await (const e of it) if (e.type === 'token') tokens.push(e); else done = e;
  assert.ok(done);
  return { tokens, done, ids: (c = 0) => tokens.filter((t) => t.choice === c).map((t) => t.id), text: (c = 0) => tokens.filter((t) => t.choice === c).map((t) => t.text).join('') };
}

describe('CUDA engine: sampling parameters, n > 1, grammars', { skip: cuda ? needsData() : 'no CUDA build or no GPU visible' }, () => {
  let rt: Runtime;
  after(async () => { await rt?.close(); });

  it('stories260K: n, logit_bias, logprobs and a json_schema agree with the CPU backend', async () => {
    const source = await openModel(STORIES260K_GGUF);
    const tok = await loadTokenizer(source);
    rt = Runtime.open({ backend: 'cuda', hostBudgetBytes: 64 * MiB, gpuBudgetBytes: 256 * MiB, scratchBudgetBytes: 512 * MiB });
    rt.register('stories', source.layout);
    await rt.loadToGpu('stories');
    const gpu = await Engine.create(rt, 'stories', source, tok, { maxContext: 512 });
    const cpu = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 512 });
    try {
      const prompt = [1, 403, 407, 261, 378, 432, 383];
      // The forked KV: greedy choices equal each other and the CPU's n = 1 greedy.
      const one = await collect(cpu.generate(req(prompt, 24)));
      const three = await collect(gpu.generate(req(prompt, 24, { n: 3 })));
      for (const c of [0, 1, 2]) assert.deepEqual(three.ids(c), one.ids(0), `choice ${c}`);
      const biased = await collect(gpu.generate(req([1], 6, { logitBias: { 300: 100 } })));
      assert.deepEqual(biased.ids(), new Array(6).fill(300));
      const lg = await collect(gpu.generate(req([1], 8, { logprobs: 5 })));
      const lc = await collect(cpu.generate(req([1], 8, { logprobs: 5 })));
      assert.deepEqual(lg.ids(), lc.ids());
      for (const [i, t] of lg.tokens.entries()) {
        assert.equal(t.topLogprobs![0].id, t.id);
        assert.ok(Math.abs(t.logprob! - lc.tokens[i].logprob!) < 0.05, `logprob ${t.logprob} vs CPU ${lc.tokens[i].logprob}`);
      }
      const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, n: { type: 'integer' } }, required: ['name', 'n'], additionalProperties: false };
      const constraint = jsonConstraint(tok, source.config.vocabSize, source.config.eosTokenIds, { type: 'json_schema', schema });
      for (let seed = 0; seed < 10; seed++) {
        const r = await collect(gpu.generate(req([1], 300, { temperature: 1, seed, constraint })));
        if (r.done.finishReason === 'length') continue;
        assert.deepEqual(validateInstance(schema, JSON.parse(r.text())), [], r.text());
      }
    } finally {
      await gpu.close();
      await cpu.close();
    }
  });

  it('a padded vocabulary: greedy and sampled ids stay inside the tokenizer on CUDA', async () => {
    const path = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'bf16', seed: 3, config: { vocabSize: 4096 } });
    const source = await openModel(path);
    const tok = await loadTokenizer(source);
    rt.register('padded', source.layout);
    await rt.loadToGpu('padded');
    const gpu = await Engine.create(rt, 'padded', source, tok, { maxContext: 256 });
    try {
      for (const temperature of [0, 1]) {
        for (const seed of [1, 2, 3]) {
          const r = await collect(gpu.generate(req(tok.encode('hello'), 64, { temperature, seed })));
          assert.ok(r.ids().every((id) => id < tok.vocabSize), `T=${temperature}: every id < ${tok.vocabSize}`);
        }
      }
    } finally { await gpu.close(); }
  });
});
