// Chat prompts rendered from the model's own Jinja chat template (tokenizer_config.json `chat_template`, GGUF
// `tokenizer.chat_template`) with @huggingface/jinja, as transformers' apply_chat_template renders them.
import { Template } from '@huggingface/jinja';

import type { ChatPart } from './types.ts';
import { TokenizerError, type ChatMessage, type ChatOptions } from './types.ts';

/** Private-use characters that mark a special token's text inside message content during a render. */
const OPEN = '\uE000';
const CLOSE = '\uE001';
const MARKS = /[\uE000\uE001]/g;

const compiled = new Map<string, Template | Error>();

/** The compiled template (cached), or the parse error. */
export function compileTemplate(text: string): Template | Error {
  let t = compiled.get(text);
  if (!t) {
    try {
      t = new Template(text);
    } catch (e) {
      t = e instanceof Error ? e : new Error(String(e));
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(text, t);
  }
  return t;
}

export interface TemplateTokens {
  bos: string;
  eos: string;
  /** Texts of the vocabulary's special tokens (CONTROL / added): content that spells one is kept literal. */
  specials: readonly string[];
}

/** JSON arguments as the templates expect them (a mapping, as transformers documents); unparsable ones stay text. */
function argumentsValue(args: string): unknown {
  try {
    const v: unknown = JSON.parse(args);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : args;
  } catch {
    return args;
  }
}

/** Mark every special token's text inside `content` so it stays literal once rendered. */
function markSpecials(content: string, specials: readonly string[]): string {
  let s = content.replace(MARKS, '\uFFFD');
  if (!specials.length) return s;
  let out = '';
  let i = 0;
  outer: while (i < s.length) {
    for (const sp of specials) {
      if (sp && s.startsWith(sp, i)) {
        out += OPEN + sp + CLOSE;
        i += sp.length;
        continue outer;
      }
    }
    out += s[i++];
  }
  s = out;
  return s;
}

/**
 * Render `messages` (and `tools`) with the template, ending with the generation prompt. Message content that spells
 * a special token comes back as a literal part (never a special token); the rest is template text. A template that
 * raises (e.g. roles that do not alternate) throws TokenizerError bad_messages with its message.
 */
export function renderTemplateParts(template: Template, templateText: string, messages: ChatMessage[], tok: TemplateTokens, opts: ChatOptions = {}): ChatPart[] {
  // `developer` is OpenAI's newer name for system: kept where the template knows the role, else a system message.
  const knowsDeveloper = templateText.includes('developer');
  const specials = [...tok.specials].sort((a, b) => b.length - a.length);
  const msgs = messages.map((m) => {
    const out: Record<string, unknown> = {
      role: m.role === 'developer' && !knowsDeveloper ? 'system' : m.role,
      content: markSpecials(m.content, specials),
    };
    if (m.name !== undefined) out.name = m.name;
    if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
    if (m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: argumentsValue(c.function.arguments) } }));
    }
    return out;
  });
  let text: string;
  try {
    text = template.render({
      messages: msgs,
      ...(opts.tools?.length ? { tools: opts.tools } : {}),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: tok.bos,
      eos_token: tok.eos,
    });
  } catch (e) {
    throw new TokenizerError('bad_messages', `the model's chat template refused the messages: ${(e as Error).message}`, { cause: e });
  }
  const parts: ChatPart[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf(OPEN, i);
    if (open < 0) { parts.push({ text: text.slice(i), literal: false }); break; }
    if (open > i) parts.push({ text: text.slice(i, open), literal: false });
    const close = text.indexOf(CLOSE, open + 1);
    const end = close < 0 ? text.length : close;
    parts.push({ text: text.slice(open + 1, end), literal: true });
    i = end + 1;
  }
  // A template that slices content could split a mark: no mark survives into the prompt.
  return parts.map((p) => ({ ...p, text: p.text.replace(MARKS, '') })).filter((p) => p.text.length > 0);
}

/**
 * Messages for a family renderer (models without a template): developer → system; tools described in a system
 * message; an assistant's tool calls and tool results written in the Hermes/Qwen form the output parser reads.
 */
export function foldToolsForFamily(messages: ChatMessage[], opts: ChatOptions = {}): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const m of messages) {
    if (m.role === 'developer') out.push({ role: 'system', content: m.content });
    else if (m.role === 'tool') out.push({ role: 'user', content: `<tool_response>\n${m.content}\n</tool_response>` });
    else if (m.role === 'assistant' && m.tool_calls?.length) {
      const calls = m.tool_calls.map((c) => `<tool_call>\n${JSON.stringify({ name: c.function.name, arguments: argumentsValue(c.function.arguments) })}\n</tool_call>`);
      out.push({ role: 'assistant', content: [m.content, ...calls].filter(Boolean).join('\n') });
    } else out.push({ role: m.role, content: m.content });
  }
  if (opts.tools?.length) {
    const sys = 'You may call these functions:\n<tools>\n' + opts.tools.map((t) => JSON.stringify(t)).join('\n')
      + '\n</tools>\nTo call one, answer with <tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call>';
    if (out[0]?.role === 'system') out[0] = { role: 'system', content: `${out[0].content}\n\n${sys}` };
    else out.unshift({ role: 'system', content: sys });
  }
  // Consecutive messages of one role (a tool result after a user turn) are joined, as the family templates alternate.
  const merged: ChatMessage[] = [];
  for (const m of out) {
    const last = merged[merged.length - 1];
    if (last && last.role === m.role && m.role !== 'system') merged[merged.length - 1] = { role: m.role, content: `${last.content}\n${m.content}` };
    else merged.push(m);
  }
  return merged;
}
