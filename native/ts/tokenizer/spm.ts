// SentencePiece-style vocab with scores (GGUF tokenizer.ggml.model = "llama"): BPE-by-score merging as
// llama.cpp's SPM tokenizer does, '▁' for spaces, a space prefix, and byte fallback (<0xNN>).
import { TokenizerError } from './types.ts';
import { TT, VocabTokenizer, type VocabInfo } from './vocab-tokenizer.ts';

interface Bigram { left: number; right: number; score: number; size: number }

/** Max-heap by score, ties to the leftmost pair (llama.cpp's llm_bigram_spm comparator). */
class BigramHeap {
  private a: Bigram[] = [];
  get size(): number { return this.a.length; }
  private before(x: Bigram, y: Bigram): boolean { return x.score > y.score || (x.score === y.score && x.left < y.left); }
  push(b: Bigram): void {
    const a = this.a;
    a.push(b);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Bigram {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

export interface SpmVocabInfo extends VocabInfo {
  scores: number[];
  /** Prefix raw text with a space (SentencePiece add_dummy_prefix). @defaultValue true */
  addSpacePrefix?: boolean;
}

export class SpmTokenizer extends VocabTokenizer {
  private readonly scores: number[];
  private readonly addSpacePrefix: boolean;
  private readonly byteIds: number[] = new Array(256).fill(-1);

  constructor(v: SpmVocabInfo) {
    super(v);
    if (v.scores.length !== v.tokens.length) throw new TokenizerError('bad_vocab', `scores has ${v.scores.length} entries for ${v.tokens.length} tokens`);
    this.scores = v.scores;
    this.addSpacePrefix = v.addSpacePrefix ?? true;
    v.tokens.forEach((t, i) => {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      if (m && v.types[i] === TT.BYTE) this.byteIds[parseInt(m[1], 16)] = i;
    });
  }

  protected encodeFragment(raw: string, afterSpecial: boolean, out: number[]): void {
    const text = ((this.addSpacePrefix && afterSpecial ? ' ' : '') + raw).replaceAll(' ', '▁');
    if (text.length === 0) return;
    // Symbols: one per code point, as a doubly linked list over `text` slices.
    const chars = [...text];
    const n = chars.length;
    const sym = chars.slice();
    const prev = chars.map((_, i) => i - 1);
    const next = chars.map((_, i) => (i + 1 < n ? i + 1 : -1));
    const heap = new BigramHeap();
    const tryAdd = (l: number, r: number) => {
      if (l < 0 || r < 0) return;
      const s = sym[l] + sym[r];
      const id = this.ids.get(s);
      if (id === undefined) return;
      heap.push({ left: l, right: r, score: this.scores[id], size: s.length });
    };
    for (let i = 0; i + 1 < n; i++) tryAdd(i, i + 1);
    while (heap.size > 0) {
      const b = heap.pop();
      // Stale entry: one side was merged away, or grew since the bigram was queued.
      if (sym[b.left] === '' || sym[b.right] === '' || sym[b.left].length + sym[b.right].length !== b.size) continue;
      sym[b.left] += sym[b.right];
      sym[b.right] = '';
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryAdd(prev[b.left], b.left);
      tryAdd(b.left, next[b.left]);
    }
    for (let i = 0; i >= 0; i = next[i]) {
      const id = this.ids.get(sym[i]);
      if (id !== undefined && this.types[id] !== TT.CONTROL) {
        out.push(id);
        continue;
      }
      for (const byte of Buffer.from(sym[i], 'utf8')) {
        const bid = this.byteIds[byte];
        if (bid >= 0) out.push(bid);
        else if (this.unkId !== null) out.push(this.unkId);
        else throw new TokenizerError('bad_vocab', `no byte token <0x${byte.toString(16).padStart(2, '0').toUpperCase()}> and no <unk> to encode "${sym[i]}"`);
      }
    }
  }

  protected bytesOfPiece(id: number): Uint8Array {
    const t = this.types[id];
    const piece = this.tokens[id];
    if (t === TT.BYTE) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    if (t === TT.UNKNOWN) return Buffer.from(' \u2047 ', 'utf8');
    return Buffer.from(piece.replaceAll('▁', ' '), 'utf8');
  }
}
