// Prompts of a requested token count for the target model's tokenizer, counted as the worker counts them (chat:
// the chat template's tokens included; completions: BOS included), clamped to the model's context.
import type { Tokenizer } from '../../native/ts/tokenizer/index.ts';
import { rng } from './traces.ts';

const WORDS = ('once upon a time there was a little girl named lily she liked to play in the park with her dog ' +
  'one day the sun was bright and the sky was blue they ran to the big tree and found a red ball under it ' +
  'mom said we can share the toys and be kind to our friends the boy was happy because he learned something new ' +
  'the cat jumped over the fence and the bird sang a song in the garden near the small house by the river').split(' ');

export type Endpoint = 'chat' | 'completions';

export interface Prompt {
  /** The user message (chat) or the prompt (completions). */
  text: string;
  /** Tokens the worker will count for it. */
  tokens: number;
}

export class PromptBuilder {
  private readonly base: number[];
  private readonly overhead: number;

  /** `maxTokens`: the longest prompt asked for (the base text is built to cover it from any offset). */
  constructor(private readonly tok: Tokenizer, private readonly endpoint: Endpoint, maxTokens: number, seed = 1) {
    const r = rng(seed);
    const words: string[] = [];
    let ids: number[] = [];
    // Grow the base until it holds 2 × maxTokens (+ slack) tokens: prompts start at an offset inside it.
    while (ids.length < 2 * maxTokens + 64) {
      for (let i = 0; i < 256; i++) words.push(WORDS[Math.floor(r() * WORDS.length)]);
      ids = tok.encode(words.join(' '), { addBos: false });
    }
    this.base = ids;
    this.overhead = this.count('');
  }

  /** Tokens the worker counts for `text` (chat template or BOS included). */
  count(text: string): number {
    return this.endpoint === 'chat'
      ? this.tok.encodeChat([{ role: 'user', content: text }]).length
      : this.tok.encode(text, { addBos: true }).length;
  }

  /** A prompt of `tokens` tokens (as close as the tokenizer allows: ±1–2 where text round trips merge), from `offset`. */
  build(tokens: number, offset: number): Prompt {
    const want = Math.max(1, tokens);
    const start = Math.abs(offset) % Math.max(1, this.base.length - want);
    let n = Math.max(0, want - this.overhead);
    let best: Prompt = { text: '', tokens: this.overhead };
    for (let i = 0; i < 4; i++) {
      const text = n > 0 ? this.tok.decode(this.base.slice(start, start + n)).trim() : '';
      const got = this.count(text);
      if (Math.abs(got - want) < Math.abs(best.tokens - want) || i === 0) best = { text, tokens: got };
      if (got === want) break;
      n = Math.max(0, n + (want - got));
    }
    return best;
  }
}

/**
 * Fits a trace request into the context: output first (at most context − 2), then the prompt (at least 1 token,
 * at most context − output − 1, as the worker needs prompt < context and prompt + output ≤ context).
 */
export function clampToContext(input: number, output: number, context: number): { input: number; output: number; clamped: boolean } {
  const o = Math.max(1, Math.min(output, context - 2));
  const i = Math.max(1, Math.min(input, context - o - 1));
  return { input: i, output: o, clamped: i !== input || o !== output };
}
