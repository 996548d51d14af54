// The worker's mapping of job sampling (issue 12) onto the engine: every field reaches it (top_k included), token
// events carry choice / logprob / topLogprobs, done carries finishReasons for n > 1, a json_schema constraint gives
// output that validates, and an unsupported schema is a 400 naming response_format.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { parseConfig } from '../../services/config/config.ts';
import { RequestError } from '../../contracts/errors.ts';
import type { JobData, Sampling } from '../../contracts/job.ts';
import { validateInstance } from '../../native/ts/grammar/index.ts';
import type { GenEvent } from '../../services/worker/backend.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

let backend: NativeBackend;

const job = (sampling: Partial<Sampling>): JobData => ({
  v: 1, requestId: `nbs-test-${Math.random().toString(36).slice(2, 10)}`, model: 'tiny', kind: 'completion', input: { type: 'text', prompt: 'once upon a time' },
  sampling: { maxTokens: 12, temperature: 0, topP: 1, stop: [], ...sampling }, arrivalMs: Date.now(), source: 'sdk',
});

async function run(sampling: Partial<Sampling>) {
  const tokens: Extract<GenEvent, { type: 'token' }>[] = [];
  const dones: Extract<GenEvent, { type: 'done' }>[] = [];
  for await (const ev of backend.generate('tiny', job(sampling), new AbortController().signal)) {
    if (ev.type === 'token') tokens.push(ev); else dones.push(ev);
  }
  assert.equal(dones.length, 1, 'exactly one done');
  return { tokens, done: dones[0], text: (c = 0) => tokens.filter((t) => (t.choice ?? 0) === c).map((t) => t.text).join('') };
}

before(async () => {
  const dir = await makeTinyModel({ family: 'llama3', format: 'hf', seed: 21 });
  const config = parseConfig({ modelRoots: [dirname(dir)], budgets: { hostBytes: '64MiB', gpuBytes: '64MiB', scratchBytes: '64MiB' }, models: [{ id: 'tiny', path: dir }] }, {});
  backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
  await backend.register({ id: 'tiny', path: dir } as Parameters<NativeBackend['register']>[0]);
  await backend.move('load', 'tiny');
  await backend.move('swap_in', 'tiny');
});
after(async () => { await backend?.close(); });

describe('NativeBackend: job sampling -> engine', () => {
  it('top_k is honoured (top_k 1 at temperature 1.5 is greedy), and logit_bias reaches the sampler', async () => {
    const greedy = await run({});
    const k1 = await run({ temperature: 1.5, topK: 1, seed: 4 });
    assert.deepEqual(k1.tokens.map((t) => t.id), greedy.tokens.map((t) => t.id));
    const hot = await run({ temperature: 1.5, seed: 4 });
    assert.notDeepEqual(hot.tokens.map((t) => t.id), greedy.tokens.map((t) => t.id));
    const target = greedy.tokens[0].id === 70 ? 71 : 70;
    const biased = await run({ logitBias: { [target]: 100 } });
    assert.ok(biased.tokens.every((t) => t.id === target));
  });

  it('n: 3 with logprobs: choices, per-token logprobs, one done with finishReasons and summed tokens', async () => {
    const r = await run({ n: 3, temperature: 1, seed: 8, logprobs: 2 });
    for (const c of [0, 1, 2]) assert.equal(r.tokens.filter((t) => (t.choice ?? 0) === c).length, 12);
    for (const t of r.tokens) { assert.equal(typeof t.logprob, 'number'); assert.equal(t.topLogprobs?.length, 2); }
    assert.deepEqual(r.done.finishReasons, ['length', 'length', 'length']);
    assert.equal(r.done.completionTokens, 36);
  });

  it('json_schema constraint: the output validates; an unsupported keyword is invalid_request on response_format', async () => {
    const schema = { type: 'object', properties: { a: { type: 'integer' }, b: { enum: ['x', 'y'] } }, required: ['a', 'b'], additionalProperties: false };
    for (const seed of [1, 2, 3]) {
      const r = await run({ maxTokens: 200, temperature: 1, seed, constraint: { type: 'json_schema', schema } });
      assert.equal(r.done.finishReason, 'stop');
      assert.deepEqual(validateInstance(schema, JSON.parse(r.text())), []);
    }
    await assert.rejects(run({ constraint: { type: 'json_schema', schema: { type: 'string', pattern: 'a+' } } }),
      (e: unknown) => e instanceof RequestError && e.code === 'invalid_request' && e.param === 'response_format' && /pattern/.test(e.message));
  });
});
