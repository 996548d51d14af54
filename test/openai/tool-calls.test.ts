// Tool calls parsed from model output (services/gateway/tool-calls.ts) in each family's format, the streaming
// hold-back, and the SSE/JSON assembly of n choices, logprobs and tool calls (services/gateway/openai-format.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseToolCalls, ToolStream } from '../../services/gateway/tool-calls.ts';
import { ChoiceCollector, ChunkWriter, fullBody, type OutputShape } from '../../services/gateway/openai-format.ts';
import type { DoneEvent, TokenEvent } from '../../contracts/stream.ts';

const NAMES = ['get_weather', 'get_time'];
const args = (s: string) => JSON.parse(s) as unknown;

describe('parseToolCalls', () => {
  it('Llama 3.1/3.2 JSON: {"name", "parameters"}, with or without <|python_tag|>, ;-separated', () => {
    const one = parseToolCalls('{"name": "get_weather", "parameters": {"city": "Paris"}}', NAMES)!;
    assert.equal(one.content, null);
    assert.equal(one.calls.length, 1);
    assert.equal(one.calls[0].function.name, 'get_weather');
    assert.deepEqual(args(one.calls[0].function.arguments), { city: 'Paris' });
    assert.match(one.calls[0].id, /^[A-Za-z0-9]{9}$/);
    assert.equal(one.calls[0].type, 'function');
    const tagged = parseToolCalls('<|python_tag|>{"name": "get_time", "arguments": {"city": "Oslo"}}', NAMES)!;
    assert.deepEqual(args(tagged.calls[0].function.arguments), { city: 'Oslo' });
    const two = parseToolCalls('{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "get_time", "parameters": {"city": "B"}}', NAMES)!;
    assert.deepEqual(two.calls.map((c) => c.function.name), ['get_weather', 'get_time']);
    assert.notEqual(two.calls[0].id, two.calls[1].id);
  });

  it('Qwen2.5 <tool_call> blocks, content before them kept, an unclosed last block accepted', () => {
    const out = parseToolCalls('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>', NAMES)!;
    assert.equal(out.content, 'Let me check.');
    assert.deepEqual(out.calls.map((c) => c.function.name), ['get_weather', 'get_time']);
    const open = parseToolCalls('<tool_call>\n{"name": "get_time", "arguments": {}}', NAMES)!;
    assert.equal(open.calls[0].function.arguments, '{}');
  });

  it('Mistral [TOOL_CALLS] list (the marker may be a control token the decoder dropped)', () => {
    for (const text of ['[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome"}}]', ' [{"name": "get_weather", "arguments": {"city": "Rome"}}]']) {
      const out = parseToolCalls(text, NAMES)!;
      assert.deepEqual(args(out.calls[0].function.arguments), { city: 'Rome' });
    }
  });

  it('no call: plain text, JSON that is not a call, a call to a tool that was not offered, broken JSON', () => {
    assert.equal(parseToolCalls('The weather is nice.', NAMES), null);
    assert.equal(parseToolCalls('{"city": "Paris"}', NAMES), null);
    assert.equal(parseToolCalls('{"name": "rm_rf", "parameters": {}}', NAMES), null);
    assert.equal(parseToolCalls('{"name": "get_weather", "parameters": {', NAMES), null);
    assert.equal(parseToolCalls('<tool_call>not json</tool_call>', NAMES), null);
  });
});

describe('ToolStream (streaming hold-back)', () => {
  const run = (pieces: string[], forced = false) => {
    const s = new ToolStream(NAMES, forced);
    const streamed = pieces.map((p) => s.push(p)).join('');
    return { streamed, end: s.end() };
  };

  it('plain text streams as it comes (apart from a tail that may start <tool_call>)', () => {
    const r = run(['Hello', ' there', ' <tool', 'box> ok']);
    assert.equal(r.streamed + r.end.content, 'Hello there <toolbox> ok');
    assert.equal(r.end.calls.length, 0);
    assert.ok(r.streamed.startsWith('Hello there'), r.streamed);
  });

  it('an output that starts like a call is held and becomes tool_calls; one that was not a call comes out as content', () => {
    const r = run(['{"name": "get_', 'weather", "parameters": {"city": "X"}}']);
    assert.equal(r.streamed, '');
    assert.equal(r.end.calls[0].function.name, 'get_weather');
    const notCall = run(['{"a":', ' 1}']);
    assert.equal(notCall.streamed, '');
    assert.equal(notCall.end.content, '{"a": 1}');
    assert.equal(notCall.end.calls.length, 0);
  });

  it('Qwen: content streams, then the <tool_call> part is held and parsed', () => {
    const r = run(['Sure', '. <tool_', 'call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>']);
    assert.equal(r.streamed, 'Sure. ');
    assert.equal(r.end.content, '');
    assert.equal(r.end.calls[0].function.name, 'get_time');
  });

  it('forced: everything held', () => {
    const r = run(['{"name": "get_time", ', '"arguments": {"city": "Oslo"}}'], true);
    assert.equal(r.streamed, '');
    assert.equal(r.end.calls.length, 1);
  });
});

const tok = (choice: number, index: number, text: string, extra: Partial<TokenEvent> = {}): TokenEvent => ({ type: 'token', attempt: 'a', index, id: index, text, path: 'warm', choice, ...extra });
const done = (finishReasons: ('stop' | 'length')[]): DoneEvent => ({
  type: 'done', attempt: 'a', finishReason: finishReasons[0], finishReasons, promptTokens: 3, completionTokens: 7, path: 'warm', workerId: 'w',
  timings: { queueMs: 0, loadMs: 0, swapMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, totalMs: 0 },
});

describe('response assembly', () => {
  it('non-streamed chat: n choices, each with its text, logprobs and finish reason; a parsed call gives tool_calls', () => {
    const shape: OutputShape = { kind: 'chat', n: 2, logprobs: 2, tools: { mode: 'auto', names: NAMES } };
    const c = new ChoiceCollector(shape);
    const lp = { logprob: -0.5, topLogprobs: [{ id: 1, text: 'a', logprob: -0.5 }, { id: 2, text: 'b', logprob: -1 }] };
    c.add(tok(0, 0, 'Hi', lp));
    c.add(tok(1, 0, '{"name": "get_time", "parameters": {"city": "Oslo"}}', lp));
    c.add(tok(0, 1, '!', lp));
    const body = fullBody('rid12345', 'm', 1, c, done(['stop', 'stop'])) as unknown as { choices: { index: number; message: { content: string | null; tool_calls?: { function: { name: string } }[] }; finish_reason: string; logprobs: { content: { token: string; logprob: number; bytes: number[]; top_logprobs: unknown[] }[] } }[] };
    assert.equal(body.choices.length, 2);
    assert.equal(body.choices[0].message.content, 'Hi!');
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.deepEqual(body.choices[0].logprobs.content.map((e) => e.token), ['Hi', '!']);
    assert.deepEqual(body.choices[0].logprobs.content[0].bytes, [72, 105]);
    assert.equal(body.choices[0].logprobs.content[0].top_logprobs.length, 2);
    assert.equal(body.choices[1].message.content, null);
    assert.equal(body.choices[1].message.tool_calls![0].function.name, 'get_time');
    assert.equal(body.choices[1].finish_reason, 'tool_calls');
  });

  it('completions logprobs: tokens, token_logprobs, top_logprobs maps and text offsets', () => {
    const shape: OutputShape = { kind: 'completion', n: 1, logprobs: 1, tools: null };
    const c = new ChoiceCollector(shape);
    c.add(tok(0, 0, 'Once', { logprob: -0.1, topLogprobs: [{ id: 1, text: 'Once', logprob: -0.1 }] }));
    c.add(tok(0, 1, ' upon', { logprob: -0.2, topLogprobs: [{ id: 2, text: ' upon', logprob: -0.2 }] }));
    const body = fullBody('rid12345', 'm', 1, c, done(['length'])) as unknown as { choices: { text: string; logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]; text_offset: number[] } }[] };
    assert.equal(body.choices[0].text, 'Once upon');
    assert.deepEqual(body.choices[0].logprobs, { tokens: ['Once', ' upon'], token_logprobs: [-0.1, -0.2], top_logprobs: [{ Once: -0.1 }, { ' upon': -0.2 }], text_offset: [0, 4] });
  });

  it('streamed chat with tools: the role first per choice, content deltas, then tool_calls deltas and finish reasons per choice', () => {
    const shape: OutputShape = { kind: 'chat', n: 2, logprobs: null, tools: { mode: 'auto', names: NAMES } };
    const w = new ChunkWriter(shape, 'rid12345', 'm', 1, false);
    type Chunk = { choices: { index: number; delta: { role?: string; content?: string; tool_calls?: { index: number; id: string; function: { name: string; arguments: string } }[] }; finish_reason: string | null }[] };
    const chunks = [...w.start(), ...w.token(tok(0, 0, 'Hello')), ...w.token(tok(1, 0, '<tool_call>{"name": "get_weather", "arguments": {"city": "P"}}')), ...w.end(done(['length', 'stop']))] as Chunk[];
    const of = (i: number) => chunks.filter((c) => c.choices[0].index === i).map((c) => c.choices[0]);
    assert.equal(of(0)[0].delta.role, 'assistant');
    assert.equal(of(1)[0].delta.role, 'assistant');
    assert.equal(of(0).map((c) => c.delta.content ?? '').join(''), 'Hello');
    assert.equal(of(0).at(-1)!.finish_reason, 'length');
    const call = of(1).find((c) => c.delta.tool_calls)!.delta.tool_calls![0];
    assert.equal(call.index, 0);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'P' });
    assert.equal(of(1).at(-1)!.finish_reason, 'tool_calls');
    assert.equal(of(1).map((c) => c.delta.content ?? '').join(''), '', 'no call text leaks into content');
  });
});

describe('parallel_tool_calls: false', () => {
  const TWO = '<tool_call>{"name": "get_weather", "arguments": {"city": "P"}}</tool_call>\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>';
  it('returns the first call only (non-streamed and streamed); true or absent returns both', () => {
    for (const parallel of [false, true, undefined]) {
      const shape: OutputShape = { kind: 'chat', n: 1, logprobs: null, tools: { mode: 'auto', names: NAMES, ...(parallel !== undefined ? { parallel } : {}) } };
      const want = parallel === false ? ['get_weather'] : ['get_weather', 'get_time'];
      const c = new ChoiceCollector(shape);
      c.add(tok(0, 0, TWO));
      const body = fullBody('rid12345', 'm', 1, c, done(['stop'])) as unknown as { choices: { message: { tool_calls: { function: { name: string } }[] } }[] };
      assert.deepEqual(body.choices[0].message.tool_calls.map((x) => x.function.name), want, `non-streamed, parallel ${parallel}`);
      const w = new ChunkWriter(shape, 'rid12345', 'm', 1, false);
      type Chunk = { choices: { delta: { tool_calls?: { function: { name: string } }[] } }[] };
      const chunks = [...w.start(), ...w.token(tok(0, 0, TWO)), ...w.end(done(['stop']))] as Chunk[];
      assert.deepEqual(chunks.flatMap((x) => x.choices[0].delta.tool_calls ?? []).map((x) => x.function.name), want, `streamed, parallel ${parallel}`);
    }
  });
});

describe('strict tools in auto mode', () => {
  const TZ = { type: 'object', properties: { tz: { type: 'string', maxLength: 5 } }, required: ['tz'], additionalProperties: false };
  it('a call to a strict tool is returned only if its arguments validate (else the text stays content), streamed and not', () => {
    for (const [text, valid] of [
      ['{"name": "get_time", "arguments": {"tz": "UTC"}}', true],
      ['{"name": "get_time", "arguments": {"tz": "Europe/Oslo"}}', false], // maxLength
      ['{"name": "get_time", "arguments": {"zone": "UTC"}}', false], // required, additionalProperties
    ] as const) {
      for (const strict of [true, false]) {
        const shape: OutputShape = { kind: 'chat', n: 1, logprobs: null, tools: { mode: 'auto', names: NAMES, strict: strict ? { get_time: TZ } : {} } };
        const returned = valid || !strict;
        const c = new ChoiceCollector(shape);
        c.add(tok(0, 0, text));
        const body = fullBody('rid12345', 'm', 1, c, done(['stop'])) as unknown as { choices: { message: { content: string | null; tool_calls?: unknown[] }; finish_reason: string }[] };
        assert.equal(body.choices[0].message.tool_calls?.length ?? 0, returned ? 1 : 0, `${text} strict ${strict}`);
        assert.equal(body.choices[0].message.content, returned ? null : text);
        assert.equal(body.choices[0].finish_reason, returned ? 'tool_calls' : 'stop');
        const w = new ChunkWriter(shape, 'rid12345', 'm', 1, false);
        type Chunk = { choices: { delta: { content?: string; tool_calls?: unknown[] } }[] };
        const chunks = [...w.start(), ...w.token(tok(0, 0, text)), ...w.end(done(['stop']))] as Chunk[];
        assert.equal(chunks.flatMap((x) => x.choices[0].delta.tool_calls ?? []).length, returned ? 1 : 0, `streamed: ${text} strict ${strict}`);
        assert.equal(chunks.map((x) => x.choices[0].delta.content ?? '').join(''), returned ? '' : text);
      }
    }
  });
});

describe('tool_choice auto with stop strings: a call a stop string cut is not a call', () => {
  // Under auto the output is free text and stop strings apply to all of it (README "OpenAI parameters"): a call the
  // engine cut at a stop string (finish 'stop') is returned as the content it is, never as partial tool_calls.
  const cut: [string, string][] = [
    ['Llama JSON cut inside the arguments', '{"name": "get_weather", "parameters": {"city": "Pa'],
    ['Llama JSON cut before its last brace', '{"name": "get_weather", "parameters": {"city": "Paris"}'],
    ['Qwen block cut inside the object', 'Checking.\n<tool_call>\n{"name": "get_time", "arguments": {"tz"'],
    ['Mistral list cut between calls', '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome"}}, {"name": "get_time"'],
  ];
  for (const [what, text] of cut) {
    it(`${what}: content, no tool_calls, finish_reason stop (n 2, streamed and not)`, () => {
      const whole = '{"name": "get_time", "arguments": {"tz": "UTC"}}';
      const shape: OutputShape = { kind: 'chat', n: 2, logprobs: null, tools: { mode: 'auto', names: NAMES } };
      const c = new ChoiceCollector(shape);
      c.add(tok(0, 0, text));
      c.add(tok(1, 0, whole));
      const body = fullBody('rid12345', 'm', 1, c, done(['stop', 'stop'])) as unknown as { choices: { message: { content: string | null; tool_calls?: unknown[] }; finish_reason: string }[] };
      assert.equal(body.choices[0].message.content, text);
      assert.equal(body.choices[0].message.tool_calls, undefined);
      assert.equal(body.choices[0].finish_reason, 'stop');
      assert.equal(body.choices[1].finish_reason, 'tool_calls', 'the other choice, complete, is a call');
      const w = new ChunkWriter(shape, 'rid12345', 'm', 1, false);
      type Chunk = { choices: { index: number; delta: { content?: string; tool_calls?: unknown[] }; finish_reason: string | null }[] };
      const chunks = [...w.start(), ...w.token(tok(0, 0, text)), ...w.token(tok(1, 0, whole)), ...w.end(done(['stop', 'stop']))] as Chunk[];
      const of = (i: number) => chunks.filter((x) => x.choices[0].index === i).map((x) => x.choices[0]);
      assert.equal(of(0).map((x) => x.delta.content ?? '').join(''), text);
      assert.equal(of(0).flatMap((x) => x.delta.tool_calls ?? []).length, 0);
      assert.equal(of(0).at(-1)!.finish_reason, 'stop');
      assert.equal(of(1).at(-1)!.finish_reason, 'tool_calls');
    });
  }
});

describe('delivery of n choices', () => {
  it("the attempt filter delivers every choice's tokens (indexes count per choice) and still drops repeats", async () => {
    const { AttemptFilter } = await import('../../services/client/stream.ts');
    const f = new AttemptFilter();
    const got = [tok(0, 0, 'a'), tok(1, 0, 'b'), tok(0, 1, 'c'), tok(1, 1, 'd'), tok(1, 1, 'd')].map((e) => f.accept(e));
    assert.deepEqual(got.map((e) => (e && e.type === 'token' ? e.text : null)), ['a', 'b', 'c', 'd', null]);
    assert.equal(f.tokensDelivered, 4);
  });
});
