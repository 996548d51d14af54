// Constrained decoding for JSON (response_format json_object / json_schema, tool arguments): a grammar compiled
// from the schema, and per sequence a TokenConstraint that gives the engine the allowed-token mask each step.
// native/ts/grammar/design.md explains the automaton, the tries and the mask cache.
import type { TokenConstraint } from '../engine.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { accepting, DONE, Start, step, T, type Frame } from './automaton.ts';
import { anyObjectNode, compileJsonSchema, type GNode } from './schema.ts';
import { vocabIndex, type ByteTrie, type VocabIndex } from './vocab.ts';

export { compileJsonSchema, validateJsonSchema, SchemaError, type GNode } from './schema.ts';
export { validateInstance } from './check.ts';
export { VocabIndex, vocabIndex } from './vocab.ts';

export type JsonConstraintSpec = { type: 'json_object' } | { type: 'json_schema'; schema: Record<string, unknown>; strict?: boolean };

/** Cached masks per grammar (16 KiB each at a 128K vocabulary). */
const MAX_CACHED_MASKS = 2048;
const MAX_GRAMMARS_PER_VOCAB = 64;

/** A compiled grammar over one vocabulary: the root node and the masks of the automaton states seen so far. */
export class Grammar {
  private readonly cache = new Map<string, Uint32Array>();
  /** Masks computed (cache misses) and served, for the benchmark. */
  misses = 0;
  hits = 0;

  constructor(readonly root: GNode, readonly index: VocabIndex, readonly eosIds: readonly number[]) {}

  /** The allowed ids from one stack (or the start): cached by the stack's key. */
  maskOf(f: Frame | Start): Uint32Array {
    const key = f instanceof Start ? 'start' : f.key;
    let m = this.cache.get(key);
    if (m) { this.hits++; return m; }
    this.misses++;
    m = this.compute(f);
    if (this.cache.size >= MAX_CACHED_MASKS) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, m);
    return m;
  }

  private compute(f: Frame | Start): Uint32Array {
    const ix = this.index;
    let m: Uint32Array;
    if (!(f instanceof Start) && f.t === T.Str && f.a === 0 && f.c === 0) {
      // Inside a string: every plain token keeps it a string (context-independent, precomputed); only tokens with
      // a quote, backslash or control byte are walked with the automaton.
      const n = f.n as Extract<GNode, { k: 'str' }>;
      m = (n.max === Infinity ? ix.plain : ix.plainUpTo(n.max - f.b)).slice();
      this.walk(ix.specials, 0, [f], m);
    } else {
      m = new Uint32Array(ix.words);
      this.walk(ix.all, 0, f instanceof Start ? f : [f], m);
    }
    if (!(f instanceof Start) && accepting(f)) for (const e of this.eosIds) if (e < ix.V) m[e >> 5] |= 1 << (e & 31);
    return m;
  }

  /** Depth-first over the trie below `node`, carrying the automaton state; dead prefixes prune their subtree. */
  private walk(trie: ByteTrie, node: number, st: Frame[] | Start, m: Uint32Array): void {
    for (let ch = trie.firstChild[node]; ch >= 0; ch = trie.nextSibling[ch]) {
      const next = step(st, trie.byte[ch]);
      if (next.length === 0) continue;
      if (trie.plainBelow[ch] && next.length === 1 && isFreeString(next[0])) {
        // Inside an unbounded string, below a subtree of plain ASCII only: every token there stays in the string.
        for (let x = ch, e = trie.end[ch]; x < e; x++) for (let t = trie.tokHead[x]; t >= 0; t = trie.tokNext[t]) m[t >> 5] |= 1 << (t & 31);
        continue;
      }
      for (let t = trie.tokHead[ch]; t >= 0; t = trie.tokNext[t]) m[t >> 5] |= 1 << (t & 31);
      if (trie.firstChild[ch] >= 0) this.walk(trie, ch, next, m);
    }
  }

  /** A fresh per-sequence matcher. */
  matcher(): JsonMatcher {
    return new JsonMatcher(this);
  }
}

/** A string state that any plain ASCII text keeps a string (no length bound, not inside an escape or a character). */
function isFreeString(f: Frame): boolean {
  return f.t === T.Str && f.a === 0 && f.c === 0 && (f.n as Extract<GNode, { k: 'str' }>).max === Infinity;
}

/** One sequence's position in the grammar: the engine's TokenConstraint. */
export class JsonMatcher implements TokenConstraint {
  private state: Frame[] | Start;
  constructor(private readonly g: Grammar) { this.state = new Start(g.root); }

  fillMask(mask: Uint32Array, offset: number): void {
    const st = this.state;
    const W = this.g.index.words;
    if (st instanceof Start) { mask.set(this.g.maskOf(st), offset); return; }
    mask.set(this.g.maskOf(st[0]), offset);
    for (let i = 1; i < st.length; i++) {
      const m = this.g.maskOf(st[i]);
      for (let w = 0; w < W; w++) mask[offset + w] |= m[w];
    }
  }

  accept(id: number): boolean {
    const st = this.state;
    if (this.g.eosIds.includes(id)) {
      if (st instanceof Start || !st.some(accepting)) return false;
      this.state = [DONE];
      return true;
    }
    const bytes = this.g.index.bytes[id];
    if (!bytes || bytes.length === 0) return false;
    let s: Frame[] | Start = st;
    for (const b of bytes) {
      s = step(s, b);
      if (s.length === 0) return false;
    }
    this.state = s;
    return true;
  }

  isTerminated(): boolean {
    return !(this.state instanceof Start) && this.state.every((f) => f.t === T.Done);
  }

  /** Whether the text so far is a complete document. */
  isComplete(): boolean {
    return !(this.state instanceof Start) && this.state.some(accepting);
  }
}

const grammars = new WeakMap<VocabIndex, Map<string, Grammar>>();

/**
 * The grammar of `spec` over a model's vocabulary of V ids (tokenizer ids past V or past the tokenizer are never
 * allowed). Compiled once per (tokenizer, V, spec); throws SchemaError for an unsupported schema.
 */
export function jsonGrammar(tokenizer: Tokenizer, V: number, eosIds: readonly number[], spec: JsonConstraintSpec): Grammar {
  const index = vocabIndex(tokenizer, V);
  let m = grammars.get(index);
  if (!m) grammars.set(index, (m = new Map()));
  const key = JSON.stringify([spec.type === 'json_schema' ? spec.schema : null, [...eosIds]]);
  let g = m.get(key);
  if (!g) {
    g = new Grammar(spec.type === 'json_schema' ? compileJsonSchema(spec.schema) : anyObjectNode(), index, eosIds);
    if (m.size >= MAX_GRAMMARS_PER_VOCAB) m.delete(m.keys().next().value as string);
    m.set(key, g);
  } else {
    m.delete(key); // most recently used last
    m.set(key, g);
  }
  return g;
}

/** An engine request's `constraint`: one matcher per choice. */
export function jsonConstraint(tokenizer: Tokenizer, V: number, eosIds: readonly number[], spec: JsonConstraintSpec): () => TokenConstraint {
  const g = jsonGrammar(tokenizer, V, eosIds, spec);
  return () => g.matcher();
}
