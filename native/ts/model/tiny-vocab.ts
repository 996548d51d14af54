// Small but real vocabularies for synthetic models: a SentencePiece-style (llama) vocab and a byte-level BPE
// (gpt2-style) vocab, both able to encode any text (byte fallback / byte alphabet) and chat-template specials.

/** llama.cpp token types (llama_token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** A vocabulary as GGUF stores it (tokenizer.ggml.*). */
export interface GgufVocab {
  model: 'llama' | 'gpt2';
  tokens: string[];
  /** SPM merge priorities (llama); optional for gpt2. */
  scores?: number[];
  tokenTypes: number[];
  /** gpt2 merges, "a b" each. */
  merges?: string[];
  /** tokenizer.ggml.pre for gpt2 vocabs (which pre-tokenizer regex), e.g. 'llama-bpe' | 'qwen2'. */
  pre?: string;
  bosId: number | null;
  eosId: number;
  eotId?: number;
  addBos?: boolean;
  chatTemplate?: string;
}

const WORDS = (
  'the a an and to of in on at is was it he she they we you i my your his her their with for as but not ' +
  'once upon time there little girl boy named lily tim ben mom dad day one big red ball play played park ' +
  'happy sad saw said see look went go had have has be were so very too up down out of with friend friends ' +
  'hello hi how are what who where when why yes no please thank thanks help can could would will do did ' +
  'dog cat bird tree sun sky water food home house story tell me about this that like love fun good bad ' +
  'user assistant system answer question model text word words write make made new old cold warm fast slow'
).split(' ');
const PUNCT = '.,!?\'"-:;()[]<>/|_*#=+0123456789\n';

/** All prefixes of w of length >= 2 (so left-to-right merges can reach w). */
function prefixes(w: string): string[] {
  const out: string[] = [];
  const cps = [...w];
  for (let n = 2; n <= cps.length; n++) out.push(cps.slice(0, n).join(''));
  return out;
}

/**
 * SentencePiece-style vocab: <unk>, <s>, </s>, 256 byte tokens <0xNN>, then '▁', letters, punctuation and
 * word pieces ('▁the', ...) with scores favouring longer pieces; anything else falls back to bytes.
 */
export function tinySpmVocab(extraSpecials: string[] = []): GgufVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.BYTE);
  }
  for (const s of extraSpecials) { tokens.push(s); types.push(TOKEN_TYPE.CONTROL); }
  const pieces = new Set<string>(['▁']);
  for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ' + PUNCT) pieces.add(ch);
  for (const w of WORDS) {
    for (const form of [w, w[0].toUpperCase() + w.slice(1)]) {
      for (const p of prefixes('▁' + form)) pieces.add(p);
      for (const p of prefixes(form)) pieces.add(p);
    }
  }
  const scores = tokens.map(() => 0);
  for (const p of pieces) {
    tokens.push(p);
    types.push(TOKEN_TYPE.NORMAL);
    scores.push(-1000 + [...p].length * 10 - tokens.length * 1e-3);
  }
  return { model: 'llama', tokens, scores, tokenTypes: types, bosId: 1, eosId: 2, addBos: true };
}

/** GPT-2's byte → printable code point map (each byte becomes one visible character). */
export function bytesToUnicode(): string[] {
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return map;
}

/** Byte-level BPE vocab: 256 byte symbols, merges building common words (with and without a leading space), specials last. */
export function tinyBpeVocab(specials: string[]): { tokens: string[]; merges: string[]; specials: Record<string, number> } {
  const b2u = bytesToUnicode();
  const tokens = [...b2u];
  const have = new Set(tokens);
  const merges: string[] = [];
  const enc = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => b2u[b]).join('');
  for (const w of WORDS) {
    for (const form of [' ' + w, w, ' ' + w[0].toUpperCase() + w.slice(1)]) {
      const sym = [...enc(form)];
      let cur = sym[0];
      for (let i = 1; i < sym.length; i++) {
        const next = cur + sym[i];
        if (!have.has(next)) {
          merges.push(`${cur} ${sym[i]}`);
          tokens.push(next);
          have.add(next);
        }
        cur = next;
      }
    }
  }
  // A whole-word token no merge sequence reaches: only tokenizers that look words up first (Llama 3's
  // "ignore_merges") emit it, which lets tests tell the two behaviours apart.
  tokens.push(enc(' swapserve'));
  const ids: Record<string, number> = {};
  for (const s of specials) { ids[s] = tokens.length; tokens.push(s); }
  return { tokens, merges, specials: ids };
}
