// Chat prompts: rendered from the model's own Jinja template (jinja.ts) when it has one that parses; else by one of
// the template families (Llama 3, Llama 2, Mistral [INST], ChatML/Qwen), chosen from the template text when there
// is one, else from the architecture and vocabulary.
import type { Arch } from '../types.ts';
import { templateFamily, type ChatFamily } from './templates.ts';
import type { Template } from '@huggingface/jinja';
import { compileTemplate, foldToolsForFamily, renderTemplateParts } from './jinja.ts';
import { TokenizerError, type ChatMessage, type ChatOptions, type ChatPart } from './types.ts';

export { templateFamily, type ChatFamily } from './templates.ts';

export function chooseFamily(template: string | null, arch: Arch, hasToken: (t: string) => boolean): ChatFamily {
  const fromTemplate = template ? templateFamily(template) : null;
  if (fromTemplate) return fromTemplate;
  if (arch === 'qwen2' || hasToken('<|im_start|>')) return 'chatml';
  if (hasToken('<|start_header_id|>')) return 'llama3';
  return arch === 'mistral' ? 'mistral' : 'llama2';
}

const ROLES = new Set(['system', 'user', 'assistant']);
const ALL_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

export type { ChatPart } from './types.ts';

/** What a tokenizer renders chats with: its family, its template text (if any), and its special tokens' texts. */
export interface ChatSource {
  family: ChatFamily;
  template: string | null;
  bos: string;
  eos: string;
  specials: readonly string[];
}

/** The compiled template of a source, or null when it has none or it does not parse (the family renders then). */
export function usableTemplate(src: Pick<ChatSource, 'template'>): Template | null {
  if (!src.template) return null;
  const t = compileTemplate(src.template);
  return t instanceof Error ? null : t;
}

/** The prompt parts for `messages`: from the model's Jinja template, else from its family (tools folded in). */
export function chatParts(src: ChatSource, messages: ChatMessage[], opts: ChatOptions = {}): ChatPart[] {
  checkMessages(messages);
  const t = usableTemplate(src);
  if (t) return renderTemplateParts(t, src.template!, messages, src, opts);
  return renderChatParts(src.family, foldToolsForFamily(messages, opts), src.bos, src.eos);
}

function checkMessages(messages: ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError('bad_messages', 'Expected at least one chat message but received none');
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.content !== 'string' || !ALL_ROLES.has(m.role)) {
      throw new TokenizerError('bad_messages', `Expected message ${i} to have role system|developer|user|assistant|tool and string content but received ${JSON.stringify(m)?.slice(0, 80)}`);
    }
  }
}

/** Render `messages` as `family` does, ending with the generation prompt. bos/eos are the tokens' text. */
export function renderChat(family: ChatFamily, messages: ChatMessage[], bos: string, eos: string): string {
  return renderChatParts(family, messages, bos, eos).map((p) => p.text).join('');
}

/** renderChat, keeping apart the template's text and the messages' content. */
export function renderChatParts(family: ChatFamily, messages: ChatMessage[], bos: string, eos: string): ChatPart[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError('bad_messages', 'Expected at least one chat message but received none');
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.content !== 'string' || !ROLES.has(m.role)) {
      throw new TokenizerError('bad_messages', `Expected message ${i} to have role system|user|assistant and string content but received ${JSON.stringify(m)?.slice(0, 80)}`);
    }
  }
  const parts: ChatPart[] = [];
  const t = (text: string) => { if (text) parts.push({ text, literal: false }); };
  const c = (text: string) => { if (text) parts.push({ text, literal: true }); };
  switch (family) {
    case 'llama3': {
      t(bos);
      for (const m of messages) { t(`<|start_header_id|>${m.role}<|end_header_id|>\n\n`); c(m.content.trim()); t('<|eot_id|>'); }
      t('<|start_header_id|>assistant<|end_header_id|>\n\n');
      break;
    }
    case 'chatml': {
      for (const m of messages) { t(`<|im_start|>${m.role}\n`); c(m.content); t('<|im_end|>\n'); }
      t('<|im_start|>assistant\n');
      break;
    }
    case 'llama2':
    case 'mistral': {
      // A system message folds into the first user turn (Llama 2: <<SYS>> block; Mistral: a paragraph before it).
      let system: string | null = null;
      let rest = messages;
      if (messages[0].role === 'system') { system = messages[0].content; rest = messages.slice(1); }
      if (family === 'mistral') t(bos);
      let first = true;
      for (const m of rest) {
        if (m.role === 'system') continue;
        if (m.role === 'user') {
          const sys = first && system !== null;
          // Llama 2 strips the whole "<<SYS>>…" + content string, so a leading space survives after a system block.
          const content = family === 'llama2' ? (sys ? m.content.trimEnd() : m.content.trim()) : m.content;
          if (family === 'llama2') {
            t(`${bos}[INST] `);
            if (sys) { t('<<SYS>>\n'); c(system!); t('\n<</SYS>>\n\n'); }
          } else {
            t('[INST] ');
            if (sys) { c(system!); t('\n\n'); }
          }
          c(content);
          t(' [/INST]');
          first = false;
        } else if (family === 'llama2') {
          t(' '); c(m.content.trim()); t(` ${eos}`);
        } else {
          c(m.content); t(eos);
        }
      }
      if (first && system !== null) {
        if (family === 'llama2') { t(`${bos}[INST] <<SYS>>\n`); c(system); t('\n<</SYS>>\n\n [/INST]'); }
        else { t('[INST] '); c(system); t(' [/INST]'); }
      }
      break;
    }
  }
  return parts;
}

/** Ids of the end-of-turn tokens a family's template emits, when the vocabulary has them. */
export function familyStopTokens(family: ChatFamily): string[] {
  // <|eom_id|>: Llama 3.1's end of a message that awaits a tool's result (built-in tool calls).
  if (family === 'llama3') return ['<|eot_id|>', '<|eom_id|>', '<|end_of_text|>'];
  if (family === 'chatml') return ['<|im_end|>', '<|endoftext|>'];
  return [];
}
