// contracts/job.ts: every OpenAI parameter maps onto the job (sampling, input), the job parses under its own schema,
// and the SDK's jobs are built the same as the gateway's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildJob, chatRequestSchema, completionRequestSchema, jobDataSchema, toolCallSchema, type RequestBody } from '../../contracts/job.ts';
import { RequestError } from '../../contracts/errors.ts';
import { schemaErrors, type Schema } from './helpers.ts';

const opts = { model: 'm', maxTokensCap: 100, arrivalMs: 1, source: 'gateway' as const };
const chat = (extra: Record<string, unknown>): RequestBody => ({ kind: 'chat', body: chatRequestSchema.parse({ model: 'm', messages: [{ role: 'user', content: 'Hi' }], ...extra }) });
const completion = (extra: Record<string, unknown>): RequestBody => ({ kind: 'completion', body: completionRequestSchema.parse({ model: 'm', prompt: 'x', ...extra }) });
const WEATHER = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
const tools = [
  { type: 'function', function: { name: 'get_weather', parameters: WEATHER } },
  { type: 'function', function: { name: 'noop' } },
];

describe('buildJob', () => {
  it('maps every sampling parameter (vLLM extensions included) and the job parses', () => {
    const job = buildJob(completion({
      max_tokens: 7, temperature: 0.5, top_p: 0.9, top_k: 40, min_p: 0.05, presence_penalty: 0.5, frequency_penalty: -0.5, repetition_penalty: 1.2,
      logit_bias: { 42: 100, 7: -100 }, logprobs: 3, n: 4, ignore_eos: true, seed: 9, stop: 'x',
    }), opts);
    assert.deepEqual(job.sampling, {
      maxTokens: 7, maxTokensAsked: 7, temperature: 0.5, topP: 0.9, topK: 40, minP: 0.05, presencePenalty: 0.5, frequencyPenalty: -0.5,
      repetitionPenalty: 1.2, logitBias: { 42: 100, 7: -100 }, logprobs: 3, n: 4, ignoreEos: true, seed: 9, stop: ['x'],
    });
    assert.ok(jobDataSchema.safeParse(job).success, 'the job parses');
  });

  it('defaults stay off: no top_k (or -1), no penalties, no logprobs, n 1, max_tokens a default (not asked)', () => {
    const s = buildJob(chat({ top_k: -1, n: 1, presence_penalty: 0, repetition_penalty: 1 }), opts).sampling;
    assert.deepEqual(s, { maxTokens: 100, temperature: 1, topP: 1, stop: [] });
  });

  it('chat logprobs: logprobs true with top_logprobs k (0 without)', () => {
    assert.equal(buildJob(chat({ logprobs: true, top_logprobs: 5 }), opts).sampling.logprobs, 5);
    assert.equal(buildJob(chat({ logprobs: true }), opts).sampling.logprobs, 0);
    assert.equal(buildJob(chat({ logprobs: false }), opts).sampling.logprobs, undefined);
  });

  it('response_format: json_object and json_schema (strict kept) become the constraint; text none', () => {
    assert.deepEqual(buildJob(chat({ response_format: { type: 'json_object' } }), opts).sampling.constraint, { type: 'json_object' });
    assert.deepEqual(buildJob(chat({ response_format: { type: 'json_schema', json_schema: { name: 'w', schema: WEATHER, strict: true } } }), opts).sampling.constraint,
      { type: 'json_schema', schema: WEATHER, strict: true });
    assert.equal(buildJob(chat({ response_format: { type: 'text' } }), opts).sampling.constraint, undefined);
  });

  it('tools: rendered unless tool_choice none; required / named constrain the output to a call object of the tool(s)', () => {
    const auto = buildJob(chat({ tools }), opts);
    assert.equal((auto.input as { tools?: unknown[] }).tools?.length, 2);
    assert.equal(auto.sampling.constraint, undefined);
    assert.equal((buildJob(chat({ tools, tool_choice: 'none' }), opts).input as { tools?: unknown[] }).tools, undefined);
    const named = buildJob(chat({ tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }), opts).sampling.constraint!;
    assert.equal(named.type, 'json_schema');
    const schema = (named as { schema: Schema }).schema;
    assert.deepEqual(schemaErrors({ name: 'get_weather', arguments: { city: 'Oslo' } }, schema), []);
    assert.notDeepEqual(schemaErrors({ name: 'noop', arguments: {} }, schema), [], 'only the named tool');
    assert.notDeepEqual(schemaErrors({ name: 'get_weather', arguments: {} }, schema), [], "the tool's parameters hold");
    const required = buildJob(chat({ tools, tool_choice: 'required' }), opts).sampling.constraint as { schema: Schema };
    assert.deepEqual(required.schema, toolCallSchema(tools.map((t) => ({ type: 'function' as const, function: t.function }))));
    assert.deepEqual(schemaErrors({ name: 'noop', arguments: {} }, required.schema), []);
  });

  it('history: tool calls and tool results go into the job as the template takes them', () => {
    const job = buildJob(chat({
      tools, messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"A"}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: '2' }, { type: 'text', text: '1' }] },
      ],
    }), opts);
    assert.ok(job.input.type === 'chat', 'a chat job');
    assert.deepEqual(job.input.messages[1], { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"A"}' } }] });
    assert.deepEqual(job.input.messages[2], { role: 'tool', content: '21', tool_call_id: 'c1' });
  });

  it('the SDK builds the same job as the gateway (n, logprobs, tools, response_format all carried)', () => {
    const sdk = { ...opts, source: 'sdk' as const };
    for (const req of [chat({ n: 2 }), chat({ logprobs: true, top_logprobs: 3 }), chat({ tools, tool_choice: 'required' }), completion({ logprobs: 2 }), chat({ response_format: { type: 'json_object' } })]) {
      const a = buildJob(req, sdk), b = buildJob(req, { ...opts, source: 'gateway' });
      assert.deepEqual({ ...a, requestId: '', source: '' }, { ...b, requestId: '', source: '' });
      assert.ok(jobDataSchema.safeParse(a).success, 'the SDK job parses');
    }
  });
});

describe('parameters that would cut or contradict constrained output (refuseConstrainedConflicts)', () => {
  const forced = { tools, tool_choice: 'required' };
  const named = { tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } };
  const schema = { type: 'json_schema', json_schema: { name: 'w', schema: WEATHER } };
  const refusedCases: [string, RequestBody, string][] = [
    ['json_object + stop', chat({ response_format: { type: 'json_object' }, stop: '}' }), 'stop'],
    ['json_schema + stop list', chat({ response_format: schema, stop: ['\n'] }), 'stop'],
    ['json_schema without a schema + stop', chat({ response_format: { type: 'json_schema', json_schema: { name: 'w' } }, stop: 'x' }), 'stop'],
    ['completions json_schema + stop', completion({ response_format: schema, stop: ['"'] }), 'stop'],
    ['tool_choice required + stop', chat({ ...forced, stop: ['"'] }), 'stop'],
    ['tool_choice named + stop', chat({ ...named, stop: '}' }), 'stop'],
    ['json_object + ignore_eos', chat({ response_format: { type: 'json_object' }, ignore_eos: true }), 'ignore_eos'],
    ['tool_choice required + ignore_eos', chat({ ...forced, ignore_eos: true }), 'ignore_eos'],
  ];
  for (const [what, req, param] of refusedCases) {
    it(`${what}: 400 unsupported_parameter naming ${param}`, () => {
      assert.throws(() => buildJob(req, opts), (e: unknown) => e instanceof RequestError && e.status === 400 && e.code === 'unsupported_parameter' && e.param === param);
    });
  }
  it('served: stop with free output (text format, tool_choice auto or none), and an empty or null stop with a constraint', () => {
    for (const req of [
      chat({ stop: '}' }), chat({ response_format: { type: 'text' }, stop: ['}'] }), chat({ tools, stop: ['}'] }), chat({ tools, tool_choice: 'none', stop: '}' }),
      chat({ response_format: schema, stop: [] }), chat({ ...forced, stop: null }), completion({ response_format: { type: 'json_object' }, ignore_eos: false }),
    ]) {
      assert.ok(jobDataSchema.safeParse(buildJob(req, opts)).success, 'built and parses');
    }
  });
});
