// OpenAI response shapes (chat/completions, streamed chunks, usage), plus the swapserve figures on final ones.
// A request's n choices, their logprobs and their tool calls are assembled here from the stream's token events.
import { validateInstance } from '../../contracts/json-instance.ts';
import { toolMode, type RequestBody } from '../../contracts/job.ts';
import type { DoneEvent, Timings, TokenEvent } from '../../contracts/stream.ts';
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';
import { parseToolCalls, ToolStream, type ToolCall } from './tool-calls.ts';

export type Kind = 'chat' | 'completion';

export interface SwapserveFigures {
  path: ServePath;
  cold_reason: ColdReason | null;
  timings: { queue_ms: number; load_ms: number; swap_ms: number; prefill_ms: number; ttft_ms: number; decode_ms: number; total_ms: number };
}

export function figures(ev: { path: ServePath; coldReason?: ColdReason; timings: Timings }): SwapserveFigures {
  const t = ev.timings;
  return {
    path: ev.path,
    cold_reason: ev.coldReason ?? null,
    timings: { queue_ms: t.queueMs, load_ms: t.loadMs, swap_ms: t.swapMs, prefill_ms: t.prefillMs, ttft_ms: t.ttftMs, decode_ms: t.decodeMs, total_ms: t.totalMs },
  };
}

export const responseId = (kind: Kind, requestId: string) => `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;

const usage = (d: DoneEvent) => ({ prompt_tokens: d.promptTokens, completion_tokens: d.completionTokens, total_tokens: d.promptTokens + d.completionTokens });
type Finish = 'stop' | 'length' | 'tool_calls';
/** Choice i's finish reason (cancelled reads as stop: the client that cancelled is gone). */
const finishOf = (d: DoneEvent, i: number): 'stop' | 'length' => {
  const f = d.finishReasons?.[i] ?? d.finishReason;
  return f === 'cancelled' ? 'stop' : f;
};

/** How the request's output is shaped: its choices, logprobs, and tools (auto: parsed; forced: the output is a call). */
export interface OutputShape {
  kind: Kind;
  n: number;
  /** Top alternatives asked for (null: no logprobs). */
  logprobs: number | null;
  /**
   * `parallel` false (the request's parallel_tool_calls: false): at most the first call is returned. @defaultValue true
   * `strict`: the parameters of each tool with `strict: true`. In auto mode the output is not constrained, so a call
   * to a strict tool is returned only if its arguments validate (else the output stays content). @defaultValue {}
   */
  tools: { mode: 'auto' | 'forced'; names: string[]; parallel?: boolean; strict?: Record<string, unknown> } | null;
}

/** The response's shape from the request: n choices, logprobs, and how tool calls are read from the output. */
export function outputShape(req: RequestBody, n: number, logprobs: number | null): OutputShape {
  if (req.kind !== 'chat') return { kind: req.kind, n, logprobs, tools: null };
  const t = toolMode(req.body);
  const parallel = req.body.parallel_tool_calls !== false;
  const strict = Object.fromEntries(t.tools.filter((x) => x.function.strict === true).map((x) => [x.function.name, x.function.parameters ?? { type: 'object' }]));
  return { kind: 'chat', n, logprobs, tools: t.mode === 'none' ? null : { mode: t.mode, names: t.tools.map((x) => x.function.name), parallel, strict } };
}

// ---- logprobs ----

const bytesOf = (s: string) => [...Buffer.from(s, 'utf8')];

/** Chat: one choices[].logprobs.content entry. */
export function chatLogprob(ev: TokenEvent) {
  return {
    token: ev.text, logprob: ev.logprob ?? 0, bytes: bytesOf(ev.text),
    top_logprobs: (ev.topLogprobs ?? []).map((t) => ({ token: t.text, logprob: t.logprob, bytes: bytesOf(t.text) })),
  };
}

/** Completions: the parallel arrays of choices[].logprobs, for these tokens (text offsets from `offset`). */
export function completionLogprobs(evs: TokenEvent[], offset: number) {
  const text_offset: number[] = [];
  let at = offset;
  for (const e of evs) { text_offset.push(at); at += e.text.length; }
  return {
    tokens: evs.map((e) => e.text),
    token_logprobs: evs.map((e) => e.logprob ?? 0),
    top_logprobs: evs.map((e) => Object.fromEntries((e.topLogprobs ?? []).map((t) => [t.text, t.logprob]))),
    text_offset,
  };
}

// ---- non-streamed bodies ----

/** Collects a non-streamed request's token events per choice. */
export class ChoiceCollector {
  readonly texts: string[];
  readonly tokens: TokenEvent[][];

  constructor(readonly shape: OutputShape) {
    this.texts = Array.from({ length: shape.n }, () => '');
    this.tokens = Array.from({ length: shape.n }, () => []);
  }

  add(ev: TokenEvent): void {
    const i = ev.choice ?? 0;
    if (i >= this.shape.n) return;
    this.texts[i] += ev.text;
    if (this.shape.logprobs !== null) this.tokens[i].push(ev);
  }
}

/** The calls a response may carry: all, or with parallel_tool_calls false only the first. */
const firstCalls = (calls: ToolCall[], shape: OutputShape): ToolCall[] => (shape.tools?.parallel === false ? calls.slice(0, 1) : calls);

/** Whether every call to a strict tool has arguments that validate against its parameters. */
export function strictCallsValid(calls: ToolCall[], shape: OutputShape): boolean {
  const strict = shape.tools?.strict ?? {};
  return calls.every((c) => {
    const schema = strict[c.function.name];
    if (schema === undefined) return true;
    try {
      return validateInstance(schema, JSON.parse(c.function.arguments)).length === 0;
    } catch {
      return false;
    }
  });
}

function wrapCalls(text: string, shape: OutputShape): { content: string | null; calls: ToolCall[] } | null {
  if (!shape.tools) return null;
  const parsed = parseToolCalls(text, shape.tools.names);
  return parsed && parsed.calls.length && strictCallsValid(parsed.calls, shape) ? { content: parsed.content, calls: firstCalls(parsed.calls, shape) } : null;
}

/** One chat choice of a non-streamed body (also the SDK's result): the message with any parsed tool calls. */
export interface ChatChoice {
  index: number;
  message: { role: 'assistant'; content: string | null; refusal: null; tool_calls?: ToolCall[] };
  logprobs: { content: ReturnType<typeof chatLogprob>[]; refusal: null } | null;
  finish_reason: Finish;
}
/** One text-completion choice of a non-streamed body (also the SDK's result). */
export interface TextChoice {
  index: number;
  text: string;
  logprobs: ReturnType<typeof completionLogprobs> | null;
  finish_reason: 'stop' | 'length';
}

/** The choices of a finished request in OpenAI's shape (the gateway's body and the SDK's result alike). */
export function choicesOf(c: ChoiceCollector, done: DoneEvent): ChatChoice[] | TextChoice[] {
  const { kind, logprobs } = c.shape;
  if (kind === 'chat') {
    return c.texts.map((text, index): ChatChoice => {
      const wrapped = wrapCalls(text, c.shape);
      let finish: Finish = finishOf(done, index);
      const message: ChatChoice['message'] = { role: 'assistant', content: wrapped ? wrapped.content : text, refusal: null };
      if (wrapped) {
        message.tool_calls = wrapped.calls;
        if (finish === 'stop') finish = 'tool_calls';
      }
      return { index, message, logprobs: logprobs === null ? null : { content: c.tokens[index].map(chatLogprob), refusal: null }, finish_reason: finish };
    });
  }
  return c.texts.map((text, index): TextChoice => ({
    index, text, logprobs: logprobs === null ? null : completionLogprobs(c.tokens[index], 0), finish_reason: finishOf(done, index),
  }));
}

export function fullBody(requestId: string, model: string, created: number, c: ChoiceCollector, done: DoneEvent) {
  const { kind } = c.shape;
  const base = { id: responseId(kind, requestId), created, model, system_fingerprint: null, usage: usage(done), swapserve: figures(done) };
  return { ...base, object: kind === 'chat' ? 'chat.completion' : 'text_completion', choices: choicesOf(c, done) };
}

// ---- streamed chunks ----

/**
 * Turns a request's events into its SSE chunks: per choice, the role delta first (chat), content deltas (held back
 * while a tool call may be starting), then at the end any tool_calls deltas and each choice's finish reason.
 */
export class ChunkWriter {
  private readonly id: string;
  private readonly object: string;
  private readonly started: boolean[];
  private readonly tools: (ToolStream | null)[];
  /** Logprobs of tokens whose text is held back (sent with the text when it goes out). */
  private readonly heldLogprobs: TokenEvent[][];
  private readonly offsets: number[];

  constructor(private readonly shape: OutputShape, requestId: string, private readonly model: string, private readonly created: number, private readonly includeUsage: boolean) {
    this.id = responseId(shape.kind, requestId);
    this.object = shape.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    this.started = Array.from({ length: shape.n }, () => false);
    this.tools = Array.from({ length: shape.n }, () => (shape.tools ? new ToolStream(shape.tools.names, shape.tools.mode === 'forced') : null));
    this.heldLogprobs = Array.from({ length: shape.n }, () => []);
    this.offsets = Array.from({ length: shape.n }, () => 0);
  }

  private base(choice: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    const head = this.shape.kind === 'chat'
      ? { id: this.id, object: this.object, created: this.created, model: this.model, system_fingerprint: null }
      : { id: this.id, object: this.object, created: this.created, model: this.model };
    return { ...head, choices: [choice], ...(this.includeUsage ? { usage: null } : {}), ...extra };
  }

  private logprobsFor(i: number, evs: TokenEvent[]) {
    if (this.shape.logprobs === null) return null;
    if (this.shape.kind === 'chat') return { content: evs.map(chatLogprob), refusal: null };
    const lp = completionLogprobs(evs, this.offsets[i]);
    for (const e of evs) this.offsets[i] += e.text.length;
    return lp;
  }

  /** The chat role chunk of choice i (once). */
  private open(i: number): object[] {
    if (this.shape.kind !== 'chat' || this.started[i]) return [];
    this.started[i] = true;
    return [this.base({ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })];
  }

  /** Chunks for the start of the stream (chat: choice 0's role, as before any token). */
  start(): object[] {
    return this.open(0);
  }

  private content(i: number, text: string, evs: TokenEvent[]): object {
    const logprobs = this.logprobsFor(i, evs);
    return this.shape.kind === 'chat'
      ? this.base({ index: i, delta: { content: text }, logprobs, finish_reason: null })
      : this.base({ index: i, text, logprobs, finish_reason: null });
  }

  token(ev: TokenEvent): object[] {
    const i = ev.choice ?? 0;
    if (i >= this.shape.n) return [];
    const out = this.open(i);
    const ts = this.tools[i];
    if (!ts) return [...out, this.content(i, ev.text, [ev])];
    this.heldLogprobs[i].push(ev);
    const text = ts.push(ev.text);
    if (!text) return out;
    const evs = this.heldLogprobs[i];
    this.heldLogprobs[i] = [];
    return [...out, this.content(i, text, evs)];
  }

  /** The last chunks: held text or tool_calls deltas, each choice's finish reason (figures on the last), usage. */
  end(done: DoneEvent): object[] {
    const out: object[] = [];
    for (let i = 0; i < this.shape.n; i++) {
      out.push(...this.open(i));
      let finish: Finish = finishOf(done, i);
      const ts = this.tools[i];
      if (ts) {
        const ended = ts.end((calls) => strictCallsValid(calls, this.shape));
        const { content } = ended;
        const calls = firstCalls(ended.calls, this.shape);
        const evs = this.heldLogprobs[i];
        this.heldLogprobs[i] = [];
        if (content) out.push(this.content(i, content, calls.length ? [] : evs));
        if (calls.length) {
          if (finish === 'stop') finish = 'tool_calls';
          calls.forEach((c, k) => out.push(this.base({
            index: i, delta: { tool_calls: [{ index: k, id: c.id, type: 'function', function: c.function }] },
            logprobs: k === 0 ? this.logprobsFor(i, evs) : null, finish_reason: null,
          })));
        }
      }
      const last = i === this.shape.n - 1 ? { swapserve: figures(done) } : {};
      out.push(this.shape.kind === 'chat'
        ? this.base({ index: i, delta: {}, logprobs: null, finish_reason: finish }, last)
        : this.base({ index: i, text: '', logprobs: null, finish_reason: finish }, last));
    }
    if (this.includeUsage) out.push(usageChunk(this.shape.kind, this.id, this.model, this.created, done));
    return out;
  }
}

/** The usage-only chunk sent last when stream_options.include_usage is set. */
function usageChunk(kind: Kind, id: string, model: string, created: number, done: DoneEvent) {
  return {
    id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model,
    choices: [], usage: usage(done), swapserve: figures(done),
  };
}
