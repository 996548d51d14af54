// Byte-level BPE vocab with merges (GGUF tokenizer.ggml.model = "gpt2"): bytes → printable symbols, a
// pre-tokenizer regex chosen by tokenizer.ggml.pre, then merges applied by rank.
import { bytesToUnicode } from '../model/tiny-vocab.ts';
import { TokenizerError } from './types.ts';
import { TT, VocabTokenizer, type VocabInfo } from './vocab-tokenizer.ts';

// JavaScript has no inline (?i:...): the contractions are spelled out case-insensitively.
const CONTRACTIONS = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
/** Pre-tokenizer regexes (llama.cpp llama-vocab.cpp, by tokenizer.ggml.pre). */
export const PRE_TOKENIZERS: Record<string, string> = {
  'llama-bpe': `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  qwen2: `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  gpt2: `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`,
};

export interface BpeVocabInfo extends VocabInfo {
  merges: string[];
  /** tokenizer.ggml.pre; unknown names fall back to 'gpt2'. */
  pre: string | null;
}

export class BpeTokenizer extends VocabTokenizer {
  private readonly ranks = new Map<string, number>();
  private readonly re: RegExp;
  private readonly b2u = bytesToUnicode();
  private readonly u2b = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  /** Llama 3's tokenizer emits a pre-token that is itself in the vocab without merging (HF "ignore_merges"). */
  private readonly ignoreMerges: boolean;

  constructor(v: BpeVocabInfo) {
    super(v);
    v.merges.forEach((m, i) => {
      const sp = m.indexOf(' ', 1);
      if (sp <= 0) throw new TokenizerError('bad_vocab', `merge #${i} "${m}" is not "left right"`);
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    });
    this.ignoreMerges = v.pre === 'llama-bpe';
    this.re = new RegExp(PRE_TOKENIZERS[v.pre ?? 'gpt2'] ?? PRE_TOKENIZERS.gpt2, 'gu');
    this.b2u.forEach((u, b) => this.u2b.set(u, b));
  }

  private bpe(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    if (this.ignoreMerges) {
      const whole = this.ids.get(word);
      if (whole !== undefined && this.types[whole] === TT.NORMAL) return [whole];
    }
    let parts = [...word];
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      const a = parts[best], b = parts[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) { merged.push(a + b); i++; }
        else merged.push(parts[i]);
      }
      parts = merged;
    }
    const out: number[] = [];
    for (const p of parts) {
      const id = this.ids.get(p);
      if (id !== undefined) { out.push(id); continue; }
      for (const ch of p) { // a merge result missing from the vocab: fall back to its byte symbols
        const cid = this.ids.get(ch);
        if (cid !== undefined) out.push(cid);
        else if (this.unkId !== null) out.push(this.unkId);
        else throw new TokenizerError('bad_vocab', `byte symbol "${ch}" is missing from the vocabulary`);
      }
    }
    if (this.cache.size < 50_000) this.cache.set(word, out);
    return out;
  }

  protected encodeFragment(text: string, _afterSpecial: boolean, out: number[]): void {
    for (const m of text.matchAll(this.re)) {
      const sym = [...Buffer.from(m[0], 'utf8')].map((b) => this.b2u[b]).join('');
      for (const id of this.bpe(sym)) out.push(id);
    }
  }

  protected bytesOfPiece(id: number): Uint8Array {
    const piece = this.tokens[id];
    const out: number[] = [];
    for (const ch of piece) {
      const b = this.u2b.get(ch);
      if (b !== undefined) out.push(b);
      else for (const x of Buffer.from(ch, 'utf8')) out.push(x);
    }
    return Uint8Array.from(out);
  }
}

export { TT };
