// Budget-aware decoding (design.md, "Closing within max_tokens"): for every automaton stack, the canonical shortest
// text that completes the document (its closure), and the fewest vocabulary tokens that spell it. The mask keeps a
// token only if the closure after it still fits the tokens left, so output is complete JSON within max_tokens.
import { T, type Frame } from './automaton.ts';
import type { GNode } from './schema.ts';
import type { ByteTrie } from './vocab.ts';

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);
const cat = (...parts: Uint8Array[]): Uint8Array => {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const EMPTY = new Uint8Array(0);
/** The character a string below its minLength is filled with (one byte, plain in every vocabulary we serve). */
const FILL = 0x61; // 'a'
const fill = (k: number) => new Uint8Array(Math.max(0, k)).fill(FILL);

const minDocs = new WeakMap<GNode, Uint8Array>();

/**
 * The canonical shortest complete text of a value of `node`: objects with their required properties only (in schema
 * order), arrays of minItems shortest items, strings of minLength 'a's, numbers `0`, the shortest literal, the
 * shortest alternative (the first on a tie). Reading it from the value's start follows exactly the stacks whose
 * closures are its suffixes (closureOf), which is what makes the token count below fall by one per closing token.
 */
export function minDoc(node: GNode): Uint8Array {
  let d = minDocs.get(node);
  if (d) return d;
  switch (node.k) {
    case 'obj': d = cat(b('{'), objRest(node, -1, true)); break;
    case 'anyobj': d = b('{}'); break;
    case 'arr': d = cat(b('['), arrRest(node, 0, 0)); break;
    case 'str': d = cat(b('"'), fill(node.min), b('"')); break;
    case 'lit': d = node.texts.reduce((x, y) => (y.length < x.length ? y : x)); break;
    case 'num': d = b('0'); break;
    case 'alt': {
      // An alternative that is an array of its own alternation (json_object's any value) has min 0: `[]`, no loop.
      let best: Uint8Array | null = null;
      for (const a of node.alts) { const x = minDoc(a); if (!best || x.length < best.length) best = x; }
      d = best ?? EMPTY;
      break;
    }
  }
  minDocs.set(node, d);
  return d;
}

type ObjNode = Extract<GNode, { k: 'obj' }>;
type ArrNode = Extract<GNode, { k: 'arr' }>;
const prop = (n: ObjNode, j: number) => cat(n.props[j].key, b(':'), minDoc(n.props[j].node));

/** After property `last` (-1: right after '{'): each later required property, comma-separated, then '}'. */
function objRest(n: ObjNode, last: number, first: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  let lead = first;
  for (let j = last + 1; j < n.props.length; j++) {
    if (!n.props[j].req) continue;
    if (!lead) parts.push(b(','));
    lead = false;
    parts.push(prop(n, j));
  }
  parts.push(b('}'));
  return cat(...parts);
}

/** An array with `items` items read, in phase 0 (after '['), 4 (after a value) or 5 (after ','). */
function arrRest(n: ArrNode, items: number, phase: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let left = Math.max(0, n.min - items);
  if (phase === 5) { parts.push(minDoc(n.items)); left = Math.max(0, left - 1); } // the value after the comma
  else if (phase === 0 && left > 0) { parts.push(minDoc(n.items)); left--; }
  for (; left > 0; left--) parts.push(b(','), minDoc(n.items));
  parts.push(b(']'));
  return cat(...parts);
}

/** The bytes that complete frame `f`'s own value (not its parents'). */
function own(f: Frame): Uint8Array {
  switch (f.t) {
    case T.Done: return EMPTY;
    case T.Lit: return (f.n as Extract<GNode, { k: 'lit' }>).texts[f.a].subarray(f.b);
    case T.Num: return f.a === 0 || f.a === 3 || f.a === 5 || f.a === 6 ? b('0') : EMPTY;
    case T.Str: {
      const n = f.n as Extract<GNode, { k: 'str' }>;
      if (f.a === 0) {
        // Inside a UTF-8 character: its continuation bytes (the first in its narrower range for E0/ED/F0/F4).
        const cont = f.c === 0 ? EMPTY : f.c <= 3 ? new Uint8Array(f.c).fill(0x80) : f.c === 4 ? Uint8Array.of(0xa0, 0x80)
          : f.c === 5 ? Uint8Array.of(0x80, 0x80) : f.c === 6 ? Uint8Array.of(0x90, 0x80, 0x80) : Uint8Array.of(0x80, 0x80, 0x80);
        return cat(cont, fill(n.min - f.b), b('"'));
      }
      // An escape counts as one character when it completes: `\n`, or the hex digits of `\u` still due.
      const esc = f.a === 1 ? b('n') : new Uint8Array(6 - f.a).fill(0x30);
      return cat(esc, fill(n.min - f.b - 1), b('"'));
    }
    case T.Arr: return arrRest(f.n as ArrNode, f.b, f.a);
    case T.Obj: {
      if (f.n!.k === 'anyobj') return b(f.a === 2 ? ':0}' : f.a === 3 ? '0}' : f.a === 5 ? '"":0}' : '}');
      const n = f.n as ObjNode;
      switch (f.a) {
        case 0: return objRest(n, -1, true);
        case 1: return cat(n.props[f.b].key.subarray(f.c), b(':'), minDoc(n.props[f.b].node), objRest(n, f.b, false));
        case 2: return cat(b(':'), minDoc(n.props[f.b].node), objRest(n, f.b, false));
        case 3: return cat(minDoc(n.props[f.b].node), objRest(n, f.b, false));
        case 4: return objRest(n, f.b, false);
        default: { // 5: after ',' a property must follow: the next required one, else the shortest optional one
          const req = n.props.findIndex((p, j) => j > f.b && p.req);
          if (req >= 0) return cat(prop(n, req), objRest(n, req, false));
          let best: Uint8Array | null = null;
          for (let j = f.b + 1; j < n.props.length; j++) { const x = cat(prop(n, j), b('}')); if (!best || x.length < best.length) best = x; }
          return best ?? b('}');
        }
      }
    }
  }
  return EMPTY;
}

const closures = new WeakMap<Frame, Uint8Array>();

/** The canonical shortest text that completes the document from stack `f` (empty when it is complete). */
export function closureOf(f: Frame): Uint8Array {
  let w = closures.get(f);
  if (!w) {
    w = f.p ? cat(own(f), closureOf(f.p)) : own(f);
    closures.set(f, w);
  }
  return w;
}

/**
 * The fewest tokens of `trie` that spell `w` exactly (Infinity if no segmentation exists): a shortest path over
 * positions, each step one token read along the trie. O(|w| × longest token).
 */
export function tokensToSpell(trie: ByteTrie, rootChild: Int32Array, w: Uint8Array): number {
  const n = w.length;
  if (n === 0) return 0;
  const best = new Float64Array(n + 1).fill(Infinity);
  best[0] = 0;
  for (let i = 0; i < n; i++) {
    if (best[i] === Infinity) continue;
    let node = rootChild[w[i]];
    for (let j = i; node >= 0; ) {
      if (trie.tokHead[node] >= 0 && best[i] + 1 < best[j + 1]) best[j + 1] = best[i] + 1;
      if (++j >= n) break;
      let ch = trie.firstChild[node];
      while (ch >= 0 && trie.byte[ch] !== w[j]) ch = trie.nextSibling[ch];
      node = ch;
    }
  }
  return best[n];
}

/** rootChild[byte] = the trie node of that first byte, or -1 (the root's child list scanned once). */
export function rootChildren(trie: ByteTrie): Int32Array {
  const out = new Int32Array(256).fill(-1);
  for (let ch = trie.firstChild[0]; ch >= 0; ch = trie.nextSibling[ch]) out[trie.byte[ch]] = ch;
  return out;
}
