// The model vocabulary as byte strings, in two tries (every token; tokens that can end or escape a JSON string),
// plus the context-independent mask of "plain string" tokens (design.md). Built once per tokenizer and reused.
import type { Tokenizer } from '../tokenizer/index.ts';

/** A byte trie in flat arrays: node 0 is the root; children in byte order through firstChild / nextSibling. */
export class ByteTrie {
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  readonly byte: Uint8Array;
  /** First token id ending at a node, then tokNext[id] (several ids may spell the same bytes). */
  readonly tokHead: Int32Array;
  readonly tokNext: Int32Array;
  readonly nodes: number;
  /** Nodes are numbered in depth-first order: node i's subtree is [i, end[i]). */
  readonly end: Int32Array;
  /** 1 when every byte below node i is printable ASCII other than '"' and '\\' (plain string text wherever it is cut). */
  readonly plainBelow: Uint8Array;

  constructor(bytes: Uint8Array[], ids: number[], vocab: number) {
    const order = ids.filter((i) => bytes[i].length > 0).sort((x, y) => Buffer.compare(bytes[x], bytes[y]));
    let cap = 1;
    for (const i of order) cap += bytes[i].length;
    const firstChild = new Int32Array(cap).fill(-1), nextSibling = new Int32Array(cap).fill(-1), lastChild = new Int32Array(cap).fill(-1);
    const byte = new Uint8Array(cap), tokHead = new Int32Array(cap).fill(-1), tokNext = new Int32Array(vocab).fill(-1);
    let n = 1;
    const path: number[] = [0]; // path[d] = node after d bytes of the previous token
    let prev: Uint8Array | null = null;
    for (const id of order) {
      const b = bytes[id];
      let l = 0;
      if (prev) while (l < b.length && l < prev.length && b[l] === prev[l]) l++;
      path.length = l + 1;
      for (let d = l; d < b.length; d++) {
        const parent = path[d];
        const node = n++;
        byte[node] = b[d];
        if (lastChild[parent] < 0) firstChild[parent] = node; else nextSibling[lastChild[parent]] = node;
        lastChild[parent] = node;
        path.push(node);
      }
      const end = path[b.length];
      tokNext[id] = tokHead[end];
      tokHead[end] = id;
      prev = b;
    }
    this.firstChild = firstChild; this.nextSibling = nextSibling; this.byte = byte; this.tokHead = tokHead; this.tokNext = tokNext;
    this.nodes = n;
    // Children are created after their parent and a subtree is finished before the next sibling starts, so the
    // subtree ends where the next sibling (or an ancestor's next sibling) begins: fill bottom-up in reverse order.
    const end = new Int32Array(n), plainBelow = new Uint8Array(n);
    const asciiPlain = (x: number) => x >= 0x20 && x < 0x7f && x !== 0x22 && x !== 0x5c;
    for (let i = n - 1; i >= 0; i--) {
      let e = i + 1, pb = 1;
      for (let ch = firstChild[i]; ch >= 0; ch = nextSibling[ch]) {
        e = Math.max(e, end[ch]);
        if (!plainBelow[ch] || !asciiPlain(byte[ch])) pb = 0;
      }
      end[i] = e;
      plainBelow[i] = pb;
    }
    this.end = end;
    this.plainBelow = plainBelow;
  }
}

/** A byte that ends, escapes or cannot appear in a JSON string. */
const special = (x: number) => x === 0x22 || x === 0x5c || x < 0x20;
const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Whether the bytes are whole, valid UTF-8 characters (then, inside a string, their meaning is context-free). */
function wholeUtf8(b: Uint8Array): boolean {
  let ascii = true;
  for (const x of b) if (x >= 0x80) { ascii = false; break; }
  if (ascii) return true;
  try { utf8.decode(b); return true; } catch { return false; }
}

export class VocabIndex {
  /** Model vocabulary (logit row length); ids past the tokenizer have no bytes and are never allowed. */
  readonly V: number;
  readonly words: number;
  readonly bytes: Uint8Array[];
  readonly all: ByteTrie;
  /** Tokens holding a string-special byte or a partial UTF-8 character: the only ones a string state must walk. */
  readonly specials: ByteTrie;
  /** Non-empty tokens of whole UTF-8 characters without a special byte, and their lengths in code points. */
  readonly plain: Uint32Array;
  readonly plainCp: Uint16Array;
  readonly buildMs: number;
  private readonly plainUpToCache = new Map<number, Uint32Array>();

  constructor(bytes: Uint8Array[], V: number) {
    const t0 = performance.now();
    this.V = V;
    this.words = Math.ceil(V / 32);
    this.bytes = bytes;
    const ids = [...bytes.keys()];
    this.all = new ByteTrie(bytes, ids, V);
    this.plain = new Uint32Array(this.words);
    this.plainCp = new Uint16Array(V);
    const sp: number[] = [];
    for (let i = 0; i < V; i++) {
      const b = bytes[i];
      if (b.length === 0) continue;
      let isSpecial = !wholeUtf8(b), cp = 0;
      for (const x of b) { if (special(x)) isSpecial = true; if ((x & 0xc0) !== 0x80) cp++; }
      if (isSpecial) sp.push(i);
      else { this.plain[i >> 5] |= 1 << (i & 31); this.plainCp[i] = Math.min(cp, 0xffff); }
    }
    this.specials = new ByteTrie(bytes, sp, V);
    this.buildMs = performance.now() - t0;
  }

  /** Plain tokens of at most r code points (a string with maxLength); cached per r. */
  plainUpTo(r: number): Uint32Array {
    let m = this.plainUpToCache.get(r);
    if (!m) {
      m = new Uint32Array(this.words);
      for (let i = 0; i < this.V; i++) if ((this.plain[i >> 5] >>> (i & 31)) & 1 && this.plainCp[i] <= r) m[i >> 5] |= 1 << (i & 31);
      if (this.plainUpToCache.size > 4096) this.plainUpToCache.clear();
      this.plainUpToCache.set(r, m);
    }
    return m;
  }
}

const indexes = new WeakMap<Tokenizer, Map<number, VocabIndex>>();

/** The bytes each id adds to decoded text: tokenizer.tokenBytes where it has it, else its decoded text's UTF-8. */
export function tokenBytesOf(tok: Tokenizer, V: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < V; i++) {
    if (i >= tok.vocabSize) { out.push(new Uint8Array(0)); continue; }
    try {
      out.push(tok.tokenBytes ? tok.tokenBytes(i) : enc.encode(tok.decode([i])));
    } catch {
      out.push(new Uint8Array(0));
    }
  }
  return out;
}

/** The index of a tokenizer over a model vocabulary of V ids (built once per pair). */
export function vocabIndex(tok: Tokenizer, V: number): VocabIndex {
  let m = indexes.get(tok);
  if (!m) indexes.set(tok, (m = new Map()));
  let ix = m.get(V);
  if (!ix) m.set(V, (ix = new VocabIndex(tokenBytesOf(tok, V), V)));
  return ix;
}
