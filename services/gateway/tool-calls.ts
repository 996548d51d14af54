// Tool calls in a model's output, parsed into OpenAI `tool_calls`: the formats of the families served
// (Llama 3.1/3.2 JSON, Qwen2.5/Hermes <tool_call>, Mistral [TOOL_CALLS]), and the streaming hold-back that keeps a
// call's text out of the content deltas.
import { randomInt } from 'node:crypto';

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ParsedOutput {
  /** Text outside the calls (null when there is none). */
  content: string | null;
  calls: ToolCall[];
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** A call id: 9 alphanumerics (Mistral's templates refuse any other shape when the call comes back in the history). */
export function toolCallId(): string {
  let s = '';
  for (let i = 0; i < 9; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

const QWEN_OPEN = '<tool_call>';
const QWEN_CLOSE = '</tool_call>';
const MISTRAL = '[TOOL_CALLS]';
const PYTHON_TAG = '<|python_tag|>';

/** One call object as the families write it: {name, arguments|parameters}; null if it is not one of `names`. */
function callOf(v: unknown, names: ReadonlySet<string>): ToolCall | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const fn = o.function && typeof o.function === 'object' ? (o.function as Record<string, unknown>) : o;
  const name = fn.name;
  if (typeof name !== 'string' || !names.has(name)) return null;
  const args = 'arguments' in fn ? fn.arguments : 'parameters' in fn ? fn.parameters : {};
  const argText = typeof args === 'string' ? args : JSON.stringify(args ?? {});
  return { id: toolCallId(), type: 'function', function: { name, arguments: argText } };
}

function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Calls from a JSON value: one object or a list of them; null unless every element is a call. */
function callsOfValue(v: unknown, names: ReadonlySet<string>): ToolCall[] | null {
  const list = Array.isArray(v) ? v : [v];
  if (!list.length) return null;
  const calls = list.map((x) => callOf(x, names));
  return calls.every((c): c is ToolCall => c !== null) ? calls : null;
}

/**
 * The calls in `text` (the whole output of one choice), or null when it holds none: Qwen/Hermes `<tool_call>{…}
 * </tool_call>` blocks (content before them kept), Mistral `[TOOL_CALLS][{…}]`, or an output that is a JSON call
 * object or list of them (Llama 3.x, `<|python_tag|>` allowed before; `;`-separated objects too).
 */
export function parseToolCalls(text: string, toolNames: Iterable<string>): ParsedOutput | null {
  const names = new Set(toolNames);
  const start = text.indexOf(QWEN_OPEN);
  if (start >= 0) {
    const calls: ToolCall[] = [];
    let i = start;
    while (i >= 0 && i < text.length) {
      const from = i + QWEN_OPEN.length;
      const end = text.indexOf(QWEN_CLOSE, from);
      const body = text.slice(from, end < 0 ? undefined : end).trim();
      const got = callsOfValue(json(body), names);
      if (!got) return null;
      calls.push(...got);
      if (end < 0) break;
      i = text.indexOf(QWEN_OPEN, end + QWEN_CLOSE.length);
      const between = text.slice(end + QWEN_CLOSE.length, i < 0 ? undefined : i).trim();
      if (between) return null; // text after a call: not a well-formed call list
    }
    const content = text.slice(0, start).trim();
    return { content: content || null, calls };
  }
  let t = text.trim();
  if (t.startsWith(MISTRAL)) t = t.slice(MISTRAL.length).trim();
  if (t.startsWith(PYTHON_TAG)) t = t.slice(PYTHON_TAG.length).trim();
  if (!t.startsWith('{') && !t.startsWith('[')) return null;
  let calls = callsOfValue(json(t), names);
  if (!calls && t.startsWith('{') && t.includes(';')) {
    const pieces = t.split(/;\s*(?=\{)/);
    const all = pieces.map((p) => callsOfValue(json(p.trim()), names));
    if (all.every((c) => c !== null)) calls = all.flat() as ToolCall[];
  }
  return calls ? { content: null, calls } : null;
}

/** Starts of a call in each format: an output beginning with one of these is held back while streaming. */
const CALL_STARTS = ['{', '[', QWEN_OPEN, MISTRAL, PYTHON_TAG];

/**
 * Streaming hold-back for one choice of a request with tools (tool_choice auto): push() returns the content that
 * may go out now; text that may be (the start of) a call is held until end() decides. `forced` holds everything
 * (the output is a call by construction).
 */
export class ToolStream {
  private text = '';
  /** Length of `text` already sent as content. */
  private sent = 0;
  /** From here on the output is held to the end (a call started, or may have). */
  private holdFrom: number | null = null;

  constructor(private readonly names: readonly string[], forced: boolean) {
    if (forced) this.holdFrom = 0;
  }

  /** Adds generated text; returns the content to stream now ('' when held). */
  push(piece: string): string {
    this.text += piece;
    if (this.holdFrom !== null) return '';
    const lead = this.text.trimStart();
    if (this.sent === 0) {
      // Nothing sent yet: an output that starts (or may start) like a call is held whole.
      if (lead === '' || CALL_STARTS.some((s) => s.startsWith(lead) || lead.startsWith(s))) {
        if (lead !== '' && CALL_STARTS.some((s) => lead.startsWith(s))) this.holdFrom = 0;
        return '';
      }
    }
    // Content: a `<tool_call>` may still come (Qwen writes text, then calls); hold any tail that may begin one.
    const at = this.text.indexOf(QWEN_OPEN, this.sent);
    if (at >= 0) {
      this.holdFrom = at;
      return this.flushTo(at);
    }
    let keep = this.text.length;
    for (let k = Math.min(QWEN_OPEN.length - 1, this.text.length - this.sent); k > 0; k--) {
      if (QWEN_OPEN.startsWith(this.text.slice(this.text.length - k))) { keep = this.text.length - k; break; }
    }
    return this.flushTo(keep);
  }

  private flushTo(n: number): string {
    const out = this.text.slice(this.sent, n);
    this.sent = Math.max(this.sent, n);
    return out;
  }

  /**
   * At the end: the calls found (with content still unsent before them), or the held text as content — also when
   * `accept` refuses the calls (a strict tool's arguments that do not validate).
   */
  end(accept: (calls: ToolCall[]) => boolean = () => true): { content: string; calls: ToolCall[] } {
    const held = this.text.slice(this.sent);
    const parsed = held ? parseToolCalls(held, this.names) : null;
    this.sent = this.text.length;
    if (parsed && parsed.calls.length && accept(parsed.calls)) return { content: parsed.content ?? '', calls: parsed.calls };
    return { content: held, calls: [] };
  }
}
