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

/** Render `messages` as `family` does, ending with the generation prompt. bos/eos are the tokens' text. */
export function renderChat(family: ChatFamily, messages: ChatMessage[], bos: string, eos: string): string {
  if (!Array.isArray(messages) || messages.length === 0) throw new TokenizerError('BAD_MESSAGES', 'Expected at least one chat message but received none');
  for (const [i, m] of messages.entries()) {
    if (!m || typeof m.content !== 'string' || !ROLES.has(m.role)) {
      throw new TokenizerError('BAD_MESSAGES', `Expected message ${i} to have role system|user|assistant and string content but received ${JSON.stringify(m)?.slice(0, 80)}`);
    }
  }
  switch (family) {
    case 'llama3': {
      let s = bos;
      for (const m of messages) s += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`;
      return s + '<|start_header_id|>assistant<|end_header_id|>\n\n';
    }
    case 'chatml': {
      let s = '';
      for (const m of messages) s += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
      return s + '<|im_start|>assistant\n';
    }
    case 'llama2':
    case 'mistral': {
      // A system message folds into the first user turn (Llama 2: <<SYS>> block; Mistral: a paragraph before it).
      let system: string | null = null;
      let rest = messages;
      if (messages[0].role === 'system') { system = messages[0].content; rest = messages.slice(1); }
      let s = family === 'mistral' ? bos : '';
      let first = true;
      for (const m of rest) {
        if (m.role === 'system') continue;
        if (m.role === 'user') {
          let content = m.content;
          if (first && system !== null) {
            content = family === 'llama2' ? `<<SYS>>\n${system}\n<</SYS>>\n\n${content}` : `${system}\n\n${content}`;
          }
          s += family === 'llama2' ? `${bos}[INST] ${content.trim()} [/INST]` : `[INST] ${content} [/INST]`;
          first = false;
        } else {
          s += family === 'llama2' ? ` ${m.content.trim()} ${eos}` : `${m.content}${eos}`;
        }
      }
      if (first && system !== null) s += family === 'llama2' ? `${bos}[INST] <<SYS>>\n${system}\n<</SYS>>\n\n [/INST]` : `[INST] ${system} [/INST]`;
      return s;
    }
  }
}

/** Ids of the end-of-turn tokens a family's template emits, when the vocabulary has them. */
export function familyStopTokens(family: ChatFamily): string[] {
  if (family === 'llama3') return ['<|eot_id|>', '<|end_of_text|>'];
  if (family === 'chatml') return ['<|im_end|>', '<|endoftext|>'];
  return [];
}
