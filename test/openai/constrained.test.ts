// Request parameters against grammar-constrained output (response_format json_object / json_schema, a forced
// tool_choice), over HTTP with the official `openai` client and through the SDK, on a real gateway + CPU worker with
// stories260K: a parameter that would cut or contradict the constrained JSON is a 400 naming it; the others keep the
// output valid (logit_bias, n, seed, max_tokens at the shortest document). README "OpenAI parameters" states the rules.
// Every assert.ok carries a message (see conformance.test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import OpenAI from 'openai';
import { parseConfig } from '../../services/config/config.ts';
import { Client, RequestError } from '../../services/sdk/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { jsonGrammar } from '../../native/ts/grammar/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { buildJob, chatRequestSchema } from '../../contracts/job.ts';
import { keys } from '../../contracts/queues.ts';
import { follow } from '../../services/client/delivery.ts';
import { Producer } from '../../services/client/producer.ts';
import { connect } from '../../services/client/queues.ts';
import { BlockingPool } from '../../services/client/stream.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { needsData } from '../helpers/requires.ts';
import { DATA_MODELS, STORIES, startStack, type Stack } from '../spine/stack.ts';
import { schemaErrors, type Schema } from './helpers.ts';

const SKIP = needsData();

let redis: TestRedis;
let stack: Stack;
let client: OpenAI;
let sdk: Client;
let tok: Tokenizer;
let source: ModelSource;

before(async () => {
  if (SKIP) return;
  redis = await startRedis();
  const config = parseConfig({
    prefix: redis.prefix(),
    modelRoots: [DATA_MODELS],
    budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
    gateway: { port: 0, keepAliveMs: 30_000 },
    worker: { concurrency: 2 },
    models: [{ id: 'story', path: STORIES, contextLength: 512 }, { id: 'story-capped', path: STORIES, contextLength: 512, maxTokens: 4 }],
  }, { REDIS_URL: redis.url });
  stack = await startStack(config);
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  sdk = new Client({ redisUrl: redis.url, prefix: config.prefix, models: [{ id: 'story' }] });
  source = await openModel(join(DATA_MODELS, STORIES));
  tok = await loadTokenizer(source);
});
after(async () => {
  await sdk?.close();
  await stack?.close();
  await redis?.stop();
}, { timeout: 60_000 });

const PLAN: Schema = { type: 'object', properties: { name: { type: 'string', maxLength: 40 }, days: { type: 'integer' }, tags: { type: 'array', items: { type: 'string', maxLength: 12 } } }, required: ['name', 'days', 'tags'], additionalProperties: false };
const schemaFormat = (strict: boolean) => ({ type: 'json_schema', json_schema: { name: 'plan', strict, schema: PLAN } });
const TIME_TOOL = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string', maxLength: 12 } }, required: ['tz'], additionalProperties: false } } };
const base = { model: 'story', messages: [{ role: 'user', content: 'Plan a trip' }], max_tokens: 80, temperature: 1, seed: 5 };
// Cast: some bodies carry vLLM extensions the client's types do not know; it sends what it is given.
const chatBody = (extra: Record<string, unknown>) => ({ ...base, ...extra }) as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;

type ApiErr = { status: number; code: string; param: string | null; message: string };
/** The request's OpenAI error, failing the test if it was answered. */
async function refused(p: Promise<unknown>): Promise<ApiErr> {
  let answered: unknown;
  try {
    answered = await p;
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status!, code: String(e.code), param: e.param ?? null, message: e.message };
    throw e;
  }
  assert.fail(`expected a 400, got an answer: ${JSON.stringify(answered).slice(0, 400)}`);
}
/** The SDK's RequestError for the same body, failing the test if it completed. */
async function sdkRefused(body: Record<string, unknown>): Promise<RequestError> {
  try {
    const r = await sdk.complete(body as never);
    assert.fail(`expected the SDK to refuse, got: ${JSON.stringify(r.choices).slice(0, 400)}`);
  } catch (e) {
    if (e instanceof RequestError) return e;
    throw e;
  }
}
/** Drains a streamed chat request: each choice's content, tool-call arguments and finish reason. */
async function drain(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
  const out: { content: string; args: string; finish: string | null }[] = [];
  for await (const c of stream) {
    for (const ch of c.choices) {
      out[ch.index] ??= { content: '', args: '', finish: null };
      out[ch.index].content += ch.delta.content ?? '';
      for (const t of ch.delta.tool_calls ?? []) out[ch.index].args += t.function?.arguments ?? '';
      out[ch.index].finish = ch.finish_reason ?? out[ch.index].finish;
    }
  }
  return out;
}

describe('stop strings and constrained output', { skip: SKIP, timeout: 300_000 }, () => {
  it('the constrained output would contain each stop string tried below (so applying it would cut the JSON)', async () => {
    const r = await client.chat.completions.create(chatBody({ response_format: schemaFormat(true) }));
    const text = r.choices[0].message.content!;
    assert.deepEqual(schemaErrors(JSON.parse(text), PLAN), [], text);
    for (const s of ['}', '"', ':']) assert.ok(text.includes(s), `${JSON.stringify(text)} contains ${JSON.stringify(s)}`);
  });

  // Each body is refused whole, streamed or not, n 1 or 3, on both endpoints and through the SDK alike.
  const cases: [string, Record<string, unknown>][] = [
    ['json_schema strict', { response_format: schemaFormat(true), stop: ['}'] }],
    ['json_schema not strict', { response_format: schemaFormat(false), stop: '"' }],
    ['json_schema, n 3', { response_format: schemaFormat(true), stop: [':'], n: 3 }],
    ['json_object', { response_format: { type: 'json_object' }, stop: ['\n', '}'] }],
    ['tool_choice required', { tools: [TIME_TOOL], tool_choice: 'required', stop: ['"'] }],
    ['tool_choice named', { tools: [TIME_TOOL], tool_choice: { type: 'function', function: { name: 'get_time' } }, stop: ['}'] }],
  ];
  for (const [what, extra] of cases) {
    it(`${what} + stop: 400 unsupported_parameter naming stop (chat, streamed, SDK)`, async () => {
      const e = await refused(client.chat.completions.create(chatBody(extra)));
      assert.deepEqual([e.status, e.code, e.param], [400, 'unsupported_parameter', 'stop'], e.message);
      assert.match(e.message, /stop.*would cut/, e.message);
      const s = await refused(client.chat.completions.create({ ...chatBody(extra), stream: true }));
      assert.deepEqual([s.status, s.param], [400, 'stop'], s.message);
      const d = await sdkRefused({ ...base, ...extra });
      assert.deepEqual([d.status, d.code, d.param], [400, 'unsupported_parameter', 'stop'], d.message);
    });
  }

  it('completions: response_format + stop is refused the same way (HTTP and SDK)', async () => {
    const body = { model: 'story', prompt: 'Once', max_tokens: 60, response_format: { type: 'json_object' }, stop: ['}'] };
    const e = await refused(client.completions.create(body as unknown as OpenAI.CompletionCreateParamsNonStreaming));
    assert.deepEqual([e.status, e.code, e.param], [400, 'unsupported_parameter', 'stop'], e.message);
    const d = await sdkRefused(body);
    assert.equal(d.param, 'stop');
  });

  it('stop null or [] with a response_format is no stop: answered, valid JSON, finish_reason stop', async () => {
    for (const stop of [null, []]) {
      const r = await client.chat.completions.create(chatBody({ response_format: schemaFormat(true), stop }));
      assert.deepEqual(schemaErrors(JSON.parse(r.choices[0].message.content!), PLAN), [], r.choices[0].message.content!);
      assert.equal(r.choices[0].finish_reason, 'stop');
    }
  });

  it('the worker refuses a job that carries both (enqueued past the gateway and the SDK): an error naming stop', async () => {
    const req = { kind: 'chat' as const, body: chatRequestSchema.parse({ ...base, response_format: schemaFormat(true) }) };
    const job = buildJob(req, { model: 'story', maxTokensCap: 80, arrivalMs: Date.now(), source: 'sdk' });
    job.sampling.stop = ['}'];
    const conn = connect(redis.url);
    const producer = new Producer(conn, stack.config.prefix);
    const pool = new BlockingPool(redis.url);
    try {
      await producer.submit(job, { maxQueued: 100 });
      const events = [];
      for await (const ev of follow(pool, keys(stack.config.prefix).stream(job.requestId), { blockMs: 1000, firstTokenTimeoutMs: 30_000 })) {
        events.push(ev);
        if (ev.type === 'done' || ev.type === 'error') break;
      }
      const last = events.at(-1)!;
      assert.equal(events.filter((e) => e.type === 'token').length, 0, 'no token was generated');
      assert.ok(last.type === 'error', `an error, not ${last.type}`);
      assert.deepEqual([last.error.status, last.error.code, last.error.param], [400, 'unsupported_parameter', 'stop'], last.error.message);
    } finally {
      await producer.close();
      await pool.close();
      conn.disconnect();
    }
  });

  it('tool_choice auto + stop: served (the output is free text, the stop applies to it)', async () => {
    const plain = await client.chat.completions.create(chatBody({ tools: [TIME_TOOL], temperature: 0, max_tokens: 24 }));
    const text = plain.choices[0].message.content!;
    const word = text.trim().split(/\s+/)[1];
    assert.ok(word, `a second word in ${JSON.stringify(text)}`);
    const cut = await client.chat.completions.create(chatBody({ tools: [TIME_TOOL], temperature: 0, max_tokens: 24, stop: [word] }));
    assert.equal(cut.choices[0].message.content, text.slice(0, text.indexOf(word)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(cut.choices[0].message.tool_calls, undefined);
  });
});

describe('other parameters against constrained output', { skip: SKIP, timeout: 300_000 }, () => {
  it('ignore_eos with a response_format or a forced tool_choice: 400 naming ignore_eos (HTTP and SDK)', async () => {
    for (const extra of [{ response_format: schemaFormat(true) }, { response_format: { type: 'json_object' } }, { tools: [TIME_TOOL], tool_choice: 'required' }]) {
      const e = await refused(client.chat.completions.create(chatBody({ ...extra, ignore_eos: true })));
      assert.deepEqual([e.status, e.code, e.param], [400, 'unsupported_parameter', 'ignore_eos'], e.message);
      const d = await sdkRefused({ ...base, ...extra, ignore_eos: true });
      assert.equal(d.param, 'ignore_eos');
    }
  });

  it('max_tokens: the shortest document exactly fits (valid, finish stop); one token less is a 400 naming max_tokens', async () => {
    const least = jsonGrammar(tok, source.config.vocabSize, source.config.eosTokenIds, { type: 'json_schema', schema: PLAN }).minTokens();
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create(chatBody({ response_format: schemaFormat(true), max_tokens: least, seed }));
      const text = r.choices[0].message.content!;
      assert.deepEqual(schemaErrors(JSON.parse(text), PLAN), [], text);
      assert.ok(r.usage!.completion_tokens <= least, `${r.usage!.completion_tokens} tokens within ${least}`);
      assert.equal(r.choices[0].finish_reason, 'stop', 'the closed object ends the output (not cut by the length)');
    }
    const e = await refused(client.chat.completions.create(chatBody({ response_format: schemaFormat(true), max_tokens: least - 1 })));
    assert.deepEqual([e.status, e.param], [400, 'max_tokens'], e.message);
    const d = await sdkRefused({ ...base, response_format: schemaFormat(true), max_tokens: least - 1 });
    assert.equal(d.param, 'max_tokens');
    // A max_tokens above the model's cap (config maxTokens 4) is refused, not clamped, whatever the constraint.
    const capped = await refused(client.chat.completions.create(chatBody({ model: 'story-capped', response_format: schemaFormat(true), max_tokens: 200 })));
    assert.deepEqual([capped.status, capped.param], [400, 'max_tokens'], capped.message);
    assert.match(capped.message, /max_tokens is 200, but this model serves at most 4 tokens/);
    const plain = await refused(client.chat.completions.create({ model: 'story-capped', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5 }));
    assert.deepEqual([plain.status, plain.param], [400, 'max_completion_tokens'], plain.message);
    // An SDK without the models' config sends the request on; the worker's config refuses it the same way.
    const bare = new Client({ redisUrl: redis.url, prefix: stack.config.prefix });
    try {
      await assert.rejects(bare.complete({ ...base, model: 'story-capped', max_tokens: 200 } as never), (e: unknown) => e instanceof RequestError && e.param === 'max_tokens' && /at most 4 tokens/.test(e.message));
    } finally {
      await bare.close();
    }
    // Without the cap in the way a constrained document shorter than it still needs its own room (the 400 above).
    const ok = await client.chat.completions.create({ model: 'story-capped', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    assert.ok(ok.usage!.completion_tokens <= 4);
  });

  it('logit_bias cannot break the grammar: -100 on every token the JSON needs, +100 on one it forbids; still valid', async () => {
    const bias: Record<string, number> = {};
    for (let id = 0; id < tok.vocabSize && id < source.config.vocabSize; id++) {
      const t = tok.decode([id]);
      if (/["{}:\[\],]/.test(t)) bias[id] = -100;
    }
    const dragon = tok.encode(' dragon')[0];
    bias[dragon] = 100;
    assert.ok(Object.keys(bias).length > 5 && Object.keys(bias).length <= 1024, `${Object.keys(bias).length} biased ids`);
    const r = await client.chat.completions.create(chatBody({ response_format: schemaFormat(true), logit_bias: bias, n: 2 }));
    for (const ch of r.choices) {
      assert.deepEqual(schemaErrors(JSON.parse(ch.message.content!), PLAN), [], ch.message.content!);
      assert.equal(ch.finish_reason, 'stop');
    }
    const f = await client.chat.completions.create(chatBody({ tools: [TIME_TOOL], tool_choice: 'required', logit_bias: bias }));
    const call = f.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.deepEqual(schemaErrors(JSON.parse(call.function.arguments), TIME_TOOL.function.parameters as Schema), []);
  });

  it('n 3 with a seed, streamed and not, HTTP and SDK: every choice valid, the same texts each way', async () => {
    const extra = { response_format: schemaFormat(true), n: 3, seed: 8 };
    const r = await client.chat.completions.create(chatBody(extra));
    const texts = r.choices.map((c) => c.message.content!);
    for (const t of texts) assert.deepEqual(schemaErrors(JSON.parse(t), PLAN), [], t);
    assert.ok(new Set(texts).size > 1, `the choices differ: ${JSON.stringify(texts)}`);
    const streamed = await drain(await client.chat.completions.create({ ...chatBody(extra), stream: true }));
    assert.deepEqual(streamed.map((c) => c.content), texts);
    assert.deepEqual(streamed.map((c) => c.finish), ['stop', 'stop', 'stop']);
    const viaSdk = await sdk.complete({ ...base, ...extra } as never);
    assert.deepEqual((viaSdk.choices as { message: { content: string | null } }[]).map((c) => c.message.content), texts);
    const tools = await drain(await client.chat.completions.create({ ...chatBody({ tools: [TIME_TOOL], tool_choice: 'required', n: 3 }), stream: true }));
    for (const c of tools) {
      assert.equal(c.finish, 'tool_calls');
      assert.deepEqual(schemaErrors(JSON.parse(c.args), TIME_TOOL.function.parameters as Schema), [], c.args);
    }
  });
});
