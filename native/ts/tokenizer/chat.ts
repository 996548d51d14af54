// Chat prompts for the template families (Llama 3, Llama 2, Mistral [INST], ChatML/Qwen), chosen from the
// model's own template text when it has one, else from the architecture and vocabulary.
import type { Arch } from '../types.ts';
import { templateFamily, type ChatFamily } from './templates.ts';
import { TokenizerError, type ChatMessage } from './types.ts';

export { templateFamily, type ChatFamily } from './templates.ts';

export function chooseFamily(template: string | null, arch: Arch, hasToken: (t: string) => boolean): ChatFamily {
  const fromTemplate = template ? templateFamily(template) : null;
  if (fromTemplate) return fromTemplate;
  if (arch === 'qwen2' || hasToken('<|im_start|>')) return 'chatml';
  if (hasToken('<|start_header_id|>')) return 'llama3';
  return arch === 'mistral' ? 'mistral' : 'llama2';
}

const ROLES = new Set(['system', 'user', 'assistant']);

/** A piece of a rendered prompt: template scaffolding (may spell special tokens) or message content (literal). */
export interface ChatPart {
  text: string;
  /** Message content: its text must never turn into special tokens. */
  literal: boolean;
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
  if (family === 'llama3') return ['<|eot_id|>', '<|end_of_text|>'];
  if (family === 'chatml') return ['<|im_end|>', '<|endoftext|>'];
  return [];
}
