// Constrained decoding for JSON (response_format json_object / json_schema, tool arguments): a grammar compiled
// from the schema, and per sequence a TokenConstraint that gives the engine the allowed-token mask each step.
// native/ts/grammar/design.md explains the automaton, the tries and the mask cache.
import type { TokenConstraint } from '../engine.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import { accepting, DONE, Start, step, T, type Frame } from './automaton.ts';
import { closureOf, minDoc, rootChildren, tokensToSpell } from './closure.ts';
import { anyObjectNode, compileJsonSchema, type GNode } from './schema.ts';
import { vocabIndex, type ByteTrie, type VocabIndex } from './vocab.ts';

export { compileJsonSchema, validateJsonSchema, SchemaError, type GNode } from './schema.ts';
export { validateInstance } from '../../../contracts/json-instance.ts';
export { VocabIndex, vocabIndex } from './vocab.ts';

export type JsonConstraintSpec = { type: 'json_object' } | { type: 'json_schema'; schema: Record<string, unknown>; strict?: boolean };

/** Cached masks per grammar (16 KiB each at a 128K vocabulary). */
const MAX_CACHED_MASKS = 2048;
const MAX_GRAMMARS_PER_VOCAB = 64;
/** Cached closing costs per grammar (one number per automaton stack seen). */
const MAX_CACHED_COSTS = 65536;

/** A mask and the largest closing cost (tokens) among the tokens it allows. */
interface Masked { m: Uint32Array; maxAfter: number }

/** A compiled grammar over one vocabulary: the root node and the masks of the automaton states seen so far. */
export class Grammar {
  private readonly cache = new Map<string, Masked>();
  /** Closing cost in tokens per stack key (closure.ts); cleared when it grows past MAX_CACHED_COSTS. */
  private readonly costs = new Map<string, number>();
  private rootChild: Int32Array | null = null;
  /** Masks computed (cache misses) and served, for the benchmark. */
  misses = 0;
  hits = 0;

  constructor(readonly root: GNode, readonly index: VocabIndex, readonly eosIds: readonly number[]) {}

  /** The fewest tokens that complete the document from stack `f` (0 when it is complete; Infinity if none spell it). */
  closingTokens(f: Frame | Start): number {
    if (f instanceof Start) return this.spell(minDoc(this.root));
    const key = f.key;
    let c = this.costs.get(key);
    if (c === undefined) {
      c = this.spell(closureOf(f));
      if (this.costs.size >= MAX_CACHED_COSTS) this.costs.clear();
      this.costs.set(key, c);
    }
    return c;
  }

  /** The fewest tokens of the shortest complete document: a max_tokens below it cannot be honoured (400). */
  minTokens(): number {
    return this.closingTokens(new Start(this.root));
  }

  private spell(w: Uint8Array): number {
    this.rootChild ??= rootChildren(this.index.all);
    return tokensToSpell(this.index.all, this.rootChild, w);
  }

  private costOfState(st: Frame[]): number {
    let c = Infinity;
    for (const f of st) c = Math.min(c, this.closingTokens(f));
    return c;
  }

  /**
   * The allowed ids from one stack (or the start) when at most `budget` tokens may follow the next one: a token is
   * kept only if the document can still be completed in `budget` tokens after it. Unbudgeted masks are cached by the
   * stack's key with the largest closing cost among their tokens; a budget at or above that is the same mask, so
   * only the last steps before max_tokens compute (and cache) a budgeted one. Empty if no token fits.
   */
  maskOf(f: Frame | Start, budget = Infinity): Uint32Array {
    const key = f instanceof Start ? 'start' : f.key;
    const base = this.cached(key, f, Infinity);
    if (budget >= base.maxAfter) return base.m;
    return this.cached(`${key}#${budget}`, f, budget).m;
  }

  /** The smallest budget (≥ `budget`) under which some token of `f` fits: for a state whose budget was overrun. */
  fittingBudget(f: Frame | Start, budget: number): number {
    const base = this.cached(f instanceof Start ? 'start' : f.key, f, Infinity);
    let lo = Math.max(0, budget), hi = base.maxAfter;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.maskOf(f, mid).some((w) => w !== 0)) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  private cached(key: string, f: Frame | Start, budget: number): Masked {
    let r = this.cache.get(key);
    if (r) { this.hits++; return r; }
    this.misses++;
    r = this.compute(f, budget);
    if (this.cache.size >= MAX_CACHED_MASKS) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, r);
    return r;
  }

  private compute(f: Frame | Start, budget: number): Masked {
    const ix = this.index;
    let m: Uint32Array;
    const acc = { max: 0 };
    const inString = !(f instanceof Start) && f.t === T.Str && f.a === 0 && f.c === 0;
    if (inString && this.plainKeepsCost(f, budget)) {
      // Inside a string: every plain token keeps it a string (context-independent, precomputed) and never lengthens
      // its closure; only tokens with a quote, backslash or control byte are walked with the automaton.
      const n = f.n as Extract<GNode, { k: 'str' }>;
      m = (n.max === Infinity ? ix.plain : ix.plainUpTo(n.max - f.b)).slice();
      const own = this.closingTokens(f);
      if (own !== Infinity) acc.max = own;
      this.walk(ix.specials, 0, [f], m, budget, acc);
    } else if (inString && f.b >= (f.n as Extract<GNode, { k: 'str' }>).min) {
      // Out of budget in a string past its minLength: plain text leaves the closure as it is (too long), so no plain
      // token fits; only the special ones (a quote first of all) are walked.
      m = new Uint32Array(ix.words);
      this.walk(ix.specials, 0, [f], m, budget, acc);
    } else {
      m = new Uint32Array(ix.words);
      this.walk(ix.all, 0, f instanceof Start ? f : [f], m, budget, acc);
    }
    if (!(f instanceof Start) && accepting(f)) for (const e of this.eosIds) if (e < ix.V) m[e >> 5] |= 1 << (e & 31);
    return { m, maxAfter: acc.max };
  }

  /** Whether, in string state `f`, every plain token may be allowed wholesale under `budget`. */
  private plainKeepsCost(f: Frame, budget: number): boolean {
    return budget === Infinity || this.closingTokens(f) <= budget;
  }

  /** Depth-first over the trie below `node`, carrying the automaton state; dead prefixes prune their subtree. */
  private walk(trie: ByteTrie, node: number, st: Frame[] | Start, m: Uint32Array, budget: number, acc: { max: number }): void {
    for (let ch = trie.firstChild[node]; ch >= 0; ch = trie.nextSibling[ch]) {
      const next = step(st, trie.byte[ch]);
      if (next.length === 0) continue;
      if (trie.plainBelow[ch] && next.length === 1 && isFreeString(next[0])) {
        // Inside an unbounded string, below a subtree of plain ASCII only: every token there stays in the string,
        // with the closure of this node (or, below a minLength, a shorter one).
        const cost = this.closingTokens(next[0]);
        if (cost <= budget) {
          if (cost !== Infinity) acc.max = Math.max(acc.max, cost);
          for (let x = ch, e = trie.end[ch]; x < e; x++) for (let t = trie.tokHead[x]; t >= 0; t = trie.tokNext[t]) m[t >> 5] |= 1 << (t & 31);
          continue;
        }
      }
      if (trie.tokHead[ch] >= 0) {
        const cost = this.costOfState(next);
        if (cost <= budget) {
          // A cost of Infinity (a closure no token sequence spells: a vocabulary without some byte) is left out of
          // maxAfter, or every step of such a grammar would take the budgeted walk; those tokens stay allowed until
          // a budgeted mask is needed for another reason.
          if (cost > acc.max && cost !== Infinity) acc.max = cost;
          for (let t = trie.tokHead[ch]; t >= 0; t = trie.tokNext[t]) m[t >> 5] |= 1 << (t & 31);
        }
      }
      if (trie.firstChild[ch] >= 0) this.walk(trie, ch, next, m, budget, acc);
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

  /**
   * The allowed ids when `remaining` tokens may still be sampled (this one included): only tokens after which the
   * document can be completed in `remaining - 1` tokens, so a document always closes by max_tokens. Should the
   * state have overrun its budget (a max_tokens below minTokens), the tokens that close it soonest.
   */
  fillMask(mask: Uint32Array, offset: number, remaining = Infinity): void {
    const st = this.state;
    const W = this.g.index.words;
    const stacks: (Frame | Start)[] = st instanceof Start ? [st] : st;
    let budget = remaining - 1;
    const union = (bud: number) => {
      mask.fill(0, offset, offset + W);
      let any = false;
      for (const f of stacks) {
        const m = this.g.maskOf(f, bud);
        for (let w = 0; w < W; w++) if (m[w]) { mask[offset + w] |= m[w]; any = true; }
      }
      return any;
    };
    if (union(budget) || budget === Infinity) return;
    budget = Math.min(...stacks.map((f) => this.g.fittingBudget(f, budget)));
    union(budget);
  }

  /** The fewest tokens that complete the document from here (0 once it is complete). */
  closingTokens(): number {
    const st = this.state;
    if (st instanceof Start) return this.g.closingTokens(st);
    return Math.min(...st.map((f) => this.g.closingTokens(f)));
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
