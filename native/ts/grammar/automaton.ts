// The byte-level pushdown automaton over JSON text of a grammar (native/ts/grammar/design.md). A state is an
// immutable stack of frames (each frame points at its parent, so advancing shares the rest of the stack and a trie
// walk can backtrack for free); a nondeterministic state is a small array of such stacks.
import { MAX_DEPTH, type GNode } from './schema.ts';

/** Longest whitespace run allowed between tokens of JSON structure: one byte (compact JSON with an optional space or newline), so a model cannot spend its max_tokens on whitespace (random-weight models did, at 16). */
export const MAX_WS = 1;
/** Digits allowed in the integer part, the fraction and the exponent of a number. */
const MAX_INT_DIGITS = 16;
const MAX_FRAC_DIGITS = 16;
const MAX_EXP_DIGITS = 2; // 1e999 would parse as Infinity

export const T = { Obj: 0, Arr: 1, Str: 2, Lit: 3, Num: 4, Done: 5 } as const;
export type T = (typeof T)[keyof typeof T];

/**
 * One frame. Fields by type:
 *  Obj: a = phase (0 after '{', 1 in key, 2 after key, 3 after ':', 4 after value, 5 after ','), b = property index
 *       (last done in 0/4/5; current in 1-3), c = whitespace run, or position in the key literal (phase 1).
 *  Arr: a = phase (0 after '[', 4 after value, 5 after ','), b = items so far, c = whitespace run.
 *  Str: a = escape (0 none, 1 after '\', 2..5 hex digits of \u read), b = length so far (code points, saturated),
 *       c = UTF-8 continuation bytes still due (4..7: the first of them has a narrower range).
 *  Lit: a = which text, b = bytes matched.  Num: a = phase, b = digits in the current part.
 * The parent `p` is the frame to return to when this value completes, already in its after-value phase.
 */
export class Frame {
  private k: string | undefined;
  constructor(readonly t: T, readonly n: GNode | null, readonly a: number, readonly b: number, readonly c: number, readonly p: Frame | null, readonly d: number) {}
  /** Identifies the whole stack (frames are immutable, so it is computed once). */
  get key(): string {
    if (this.k === undefined) this.k = `${this.t}.${this.n ? this.n.uid : -1}.${this.a}.${this.b}.${this.c}/${this.p ? this.p.key : ''}`;
    return this.k;
  }
}

export const DONE = new Frame(T.Done, null, 0, 0, 0, null, 0);

const ANY_KEY: GNode = { k: 'str', uid: -2, min: 0, max: Infinity };
let anyValueNode: GNode | null = null;
/** The value of a json_object member: any JSON value (depth is bounded by the frames, not the node). */
function anyValue(): GNode {
  if (!anyValueNode) {
    const v: GNode = { k: 'alt', uid: -3, alts: [] };
    const alts: GNode[] = [
      { k: 'anyobj', uid: -4 }, { k: 'arr', uid: -5, items: v, min: 0, max: Infinity },
      { k: 'str', uid: -6, min: 0, max: Infinity }, { k: 'num', uid: -7, int: false },
      { k: 'lit', uid: -8, texts: ['true', 'false', 'null'].map((t) => new TextEncoder().encode(t)) },
    ];
    (v as { alts: GNode[] }).alts = alts;
    anyValueNode = v;
  }
  return anyValueNode;
}

const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x09 || b === 0x0d;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** The frame to continue with once `f`'s value is complete. */
const close = (f: Frame): Frame => f.p ?? DONE;

/** The stacks after reading `byte` as the first byte of a value of `node` whose completion returns to `parent`. */
export function startValue(node: GNode, parent: Frame | null, byte: number, out: Frame[]): void {
  const d = parent ? parent.d + 1 : 0;
  switch (node.k) {
    case 'alt': for (const a of node.alts) startValue(a, parent, byte, out); return;
    case 'obj': case 'anyobj': if (byte === 0x7b && d < MAX_DEPTH) out.push(new Frame(T.Obj, node, 0, -1, 0, parent, d)); return;
    case 'arr': if (byte === 0x5b && d < MAX_DEPTH) out.push(new Frame(T.Arr, node, 0, 0, 0, parent, d)); return;
    case 'str': if (byte === 0x22) out.push(new Frame(T.Str, node, 0, 0, 0, parent, d)); return;
    case 'lit':
      for (let i = 0; i < node.texts.length; i++) {
        const t = node.texts[i];
        if (t[0] !== byte) continue;
        out.push(t.length === 1 ? parent ?? DONE : new Frame(T.Lit, node, i, 1, 0, parent, d));
      }
      return;
    case 'num':
      if (byte === 0x2d) out.push(new Frame(T.Num, node, 0, 0, 0, parent, d));
      else if (byte === 0x30) out.push(new Frame(T.Num, node, 1, 1, 0, parent, d));
      else if (byte > 0x30 && byte <= 0x39) out.push(new Frame(T.Num, node, 2, 1, 0, parent, d));
      return;
  }
}

/** Properties an object may continue with after property `last`: those after it, up to the next required one. */
function nextProps(node: Extract<GNode, { k: 'obj' }>, last: number): number[] {
  const out: number[] = [];
  for (let j = last + 1; j < node.props.length; j++) {
    out.push(j);
    if (node.props[j].req) break;
  }
  return out;
}
const requiredAfter = (node: Extract<GNode, { k: 'obj' }>, last: number) => node.props.some((p, j) => j > last && p.req);

/** Whether the value `f` is reading may end here (a number or a top-level value that is complete). */
export function canEnd(f: Frame): boolean {
  return f.t === T.Num && (f.a === 1 || f.a === 2 || f.a === 4 || f.a === 7);
}

/** True when the text so far is a complete document (EOS may follow). */
export function accepting(f: Frame): boolean {
  for (let x: Frame = f; ; x = close(x)) {
    if (x.t === T.Done) return true;
    if (!canEnd(x)) return false;
  }
}

/** Appends to `out` every stack reachable from `f` by reading `byte`. */
export function feed(f: Frame, byte: number, out: Frame[]): void {
  const { a, b, c, p, d } = f;
  switch (f.t) {
    case T.Done: return;
    case T.Str: {
      const n = f.n as Extract<GNode, { k: 'str' }>;
      // Length counts code points (not UTF-8 continuation bytes); it saturates where no bound needs it.
      const sat = n.max !== Infinity ? n.max : n.min;
      if (a === 0) {
        if (c !== 0) { // inside a multi-byte UTF-8 character: only its continuation bytes, in their valid ranges
          const lo = c === 4 ? 0xa0 : c === 6 ? 0x90 : 0x80, hi = c === 5 ? 0x9f : c === 7 ? 0x8f : 0xbf;
          if (byte < lo || byte > hi) return;
          const rest = c <= 3 ? c - 1 : c <= 5 ? 1 : 2;
          out.push(new Frame(T.Str, n, 0, b, rest, p, d));
          return;
        }
        if (byte === 0x22) { if (b >= n.min) out.push(close(f)); return; }
        if (byte < 0x20) return;
        if (byte === 0x5c) { if (b + 1 <= n.max) out.push(new Frame(T.Str, n, 1, b, 0, p, d)); return; }
        // A lead byte opens a character (counted now): c = continuation bytes to come, 4..7 = a first one with a
        // narrower range (E0, ED, F0, F4), so the text is always valid UTF-8 (never decodes to U+FFFD).
        let cont = 0;
        if (byte >= 0x80) {
          if (byte >= 0xc2 && byte <= 0xdf) cont = 1;
          else if (byte === 0xe0) cont = 4;
          else if (byte === 0xed) cont = 5;
          else if (byte >= 0xe1 && byte <= 0xef) cont = 2;
          else if (byte === 0xf0) cont = 6;
          else if (byte >= 0xf1 && byte <= 0xf3) cont = 3;
          else if (byte === 0xf4) cont = 7;
          else return; // a continuation byte here, or C0/C1/F5..FF: never valid
        }
        if (b + 1 > n.max) return;
        out.push(b + 1 > sat && cont === 0 ? f : new Frame(T.Str, n, 0, Math.min(b + 1, Math.max(sat, 0)), cont, p, d));
        return;
      }
      const len = Math.min(b + 1, sat);
      if (a === 1) {
        if (byte === 0x75) out.push(new Frame(T.Str, n, 2, b, 0, p, d));
        else if (byte === 0x22 || byte === 0x5c || byte === 0x2f || byte === 0x62 || byte === 0x66 || byte === 0x6e || byte === 0x72 || byte === 0x74) out.push(new Frame(T.Str, n, 0, len, 0, p, d));
        return;
      }
      if (!isHex(byte)) return;
      out.push(a === 5 ? new Frame(T.Str, n, 0, len, 0, p, d) : new Frame(T.Str, n, a + 1, b, 0, p, d));
      return;
    }
    case T.Lit: {
      const t = (f.n as Extract<GNode, { k: 'lit' }>).texts[a];
      if (t[b] !== byte) return;
      out.push(b + 1 === t.length ? close(f) : new Frame(T.Lit, f.n, a, b + 1, 0, p, d));
      return;
    }
    case T.Num: {
      const int = (f.n as Extract<GNode, { k: 'num' }>).int;
      const to = (ph: number, digits: number) => out.push(new Frame(T.Num, f.n, ph, digits, 0, p, d));
      const dig = isDigit(byte);
      switch (a) {
        case 0: if (byte === 0x30) to(1, 1); else if (dig) to(2, 1); return;
        case 1: case 2:
          if (a === 2 && dig) { if (b < MAX_INT_DIGITS) to(2, b + 1); return; }
          if (!int && byte === 0x2e) { to(3, 0); return; }
          if (!int && (byte === 0x65 || byte === 0x45)) { to(5, 0); return; }
          break;
        case 3: if (dig) to(4, 1); return;
        case 4:
          if (dig) { if (b < MAX_FRAC_DIGITS) to(4, b + 1); return; }
          if (byte === 0x65 || byte === 0x45) { to(5, 0); return; }
          break;
        case 5: if (byte === 0x2b || byte === 0x2d) to(6, 0); else if (dig) to(7, 1); return;
        case 6: if (dig) to(7, 1); return;
        case 7: if (dig) { if (b < MAX_EXP_DIGITS) to(7, b + 1); return; } break;
      }
      feed(close(f), byte, out); // the number ended before this byte
      return;
    }
    case T.Arr: {
      const n = f.n as Extract<GNode, { k: 'arr' }>;
      const ws = () => { if (c < MAX_WS) out.push(new Frame(T.Arr, n, a, b, c + 1, p, d)); };
      if (isWs(byte)) { ws(); return; }
      if (a === 0 || a === 5) {
        if (a === 0 && byte === 0x5d) { if (n.min === 0) out.push(close(f)); return; }
        if (b < n.max) startValue(n.items, new Frame(T.Arr, n, 4, b + 1, 0, p, d), byte, out);
        return;
      }
      if (byte === 0x2c) { if (b < n.max) out.push(new Frame(T.Arr, n, 5, b, 0, p, d)); return; }
      if (byte === 0x5d && b >= n.min) out.push(close(f));
      return;
    }
    case T.Obj: {
      const ws = () => { if (c < MAX_WS) out.push(new Frame(T.Obj, f.n, a, b, c + 1, p, d)); };
      if (f.n!.k === 'anyobj') {
        switch (a) {
          case 0: case 5:
            if (isWs(byte)) { ws(); return; }
            if (byte === 0x22) out.push(new Frame(T.Str, ANY_KEY, 0, 0, 0, new Frame(T.Obj, f.n, 2, 0, 0, p, d), d + 1));
            else if (a === 0 && byte === 0x7d) out.push(close(f));
            return;
          case 2: if (isWs(byte)) ws(); else if (byte === 0x3a) out.push(new Frame(T.Obj, f.n, 3, 0, 0, p, d)); return;
          case 3: if (isWs(byte)) ws(); else startValue(anyValue(), new Frame(T.Obj, f.n, 4, 0, 0, p, d), byte, out); return;
          case 4:
            if (isWs(byte)) ws();
            else if (byte === 0x2c) out.push(new Frame(T.Obj, f.n, 5, 0, 0, p, d));
            else if (byte === 0x7d) out.push(close(f));
            return;
        }
        return;
      }
      const n = f.n as Extract<GNode, { k: 'obj' }>;
      switch (a) {
        case 0: case 5:
          if (isWs(byte)) { ws(); return; }
          if (byte === 0x22) for (const j of nextProps(n, b)) out.push(new Frame(T.Obj, n, 1, j, 1, p, d));
          else if (a === 0 && byte === 0x7d && !requiredAfter(n, -1)) out.push(close(f));
          return;
        case 1: {
          const key = n.props[b].key;
          if (key[c] !== byte) return;
          out.push(c + 1 === key.length ? new Frame(T.Obj, n, 2, b, 0, p, d) : new Frame(T.Obj, n, 1, b, c + 1, p, d));
          return;
        }
        case 2: if (isWs(byte)) ws(); else if (byte === 0x3a) out.push(new Frame(T.Obj, n, 3, b, 0, p, d)); return;
        case 3: if (isWs(byte)) ws(); else startValue(n.props[b].node, new Frame(T.Obj, n, 4, b, 0, p, d), byte, out); return;
        case 4:
          if (isWs(byte)) ws();
          else if (byte === 0x2c) { if (b + 1 < n.props.length) out.push(new Frame(T.Obj, n, 5, b, 0, p, d)); }
          else if (byte === 0x7d && !requiredAfter(n, b)) out.push(close(f));
          return;
      }
      return;
    }
  }
}

/** The initial state: nothing read yet (the first byte starts the root value; no leading whitespace). */
export class Start {
  constructor(readonly root: GNode) {}
}

/** Reads `byte` from a state (array of stacks; null = the start). Deduplicates by key when it branches. */
export function step(state: Frame[] | Start, byte: number): Frame[] {
  const out: Frame[] = [];
  if (state instanceof Start) startValue(state.root, null, byte, out);
  else for (const f of state) feed(f, byte, out);
  if (out.length < 2) return out;
  const seen = new Set<string>();
  return out.filter((f) => { const k = f.key; if (seen.has(k)) return false; seen.add(k); return true; });
}
