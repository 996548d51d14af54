// A synthetic 128,256-id vocabulary shaped like Llama 3's (no real 128K tokenizer is available offline here or on
// the GPU machine): ids 0..255 the single bytes, 127,744 merged pieces, ids 128000..128255 special tokens (empty
// text; 128000 BOS, 128001 and 128009 EOS). Merged pieces, drawn from a seeded PRNG:
//   ~55% " word" (leading space, 1-12 letters, short words likelier; some capitalised), ~24% word pieces without a
//   space, 1,110 numbers (0-9, 00-99, 000-999: Llama 3 splits digits in runs of 3), ~3% punctuation / code runs
//   of 1-4 characters (quotes, braces, commas, colons, backslashes: '",', '":', '{"', '\"', '"}' ...), ~2%
//   whitespace runs (spaces, newlines + indentation, tabs), ~8% whole non-ASCII characters (accented Latin,
//   Cyrillic, CJK, 1-3 characters, some with a leading space), ~2% partial UTF-8 (a CJK character cut after 1 or 2
//   bytes, as byte-level BPE has).
import { ByteStreamDecoder } from '../../native/ts/tokenizer/decode-stream.ts';
import type { ChatMessage, TokenDecoder, Tokenizer } from '../../native/ts/tokenizer/index.ts';

export const SYNTH_V = 128256;
export const SYNTH_BOS = 128000;
export const SYNTH_EOS = [128001, 128009];

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function syntheticVocab(seed = 1): Uint8Array[] {
  const r = prng(seed);
  const enc = new TextEncoder();
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  const add = (b: Uint8Array) => {
    const k = Buffer.from(b).toString('latin1');
    if (seen.has(k)) return;
    seen.add(k);
    out.push(b);
  };
  for (let b = 0; b < 256; b++) add(Uint8Array.of(b));
  for (let n = 0; n < 1000; n++) { add(enc.encode(String(n))); if (n < 100) add(enc.encode(String(n).padStart(2, '0'))); add(enc.encode(String(n).padStart(3, '0'))); }
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  const pick = (s: string) => s[Math.min(s.length - 1, Math.floor(-Math.log(1 - r()) * s.length / 4))];
  const word = () => {
    const len = 1 + Math.min(11, Math.floor(-Math.log(1 - r()) * 4));
    let w = '';
    for (let i = 0; i < len; i++) w += pick(letters);
    return r() < 0.15 ? w[0].toUpperCase() + w.slice(1) : w;
  };
  const punct = '"{}[],:.;!?()-_/\\\'`*#=<>+&|@$%^~';
  const nonAscii = 'éèêàçöüñßøåæœłščžřДЖЗИКЛМНОПабвгдежзиклмнопрстуфхцчшщыэюя的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话';
  const target = SYNTH_BOS;
  while (out.length < target) {
    const x = r();
    if (x < 0.55) add(enc.encode(' ' + word()));
    else if (x < 0.79) add(enc.encode(word()));
    else if (x < 0.82) { let p = ''; const n = 1 + Math.floor(r() * 4); for (let i = 0; i < n; i++) p += punct[Math.floor(r() * punct.length)]; add(enc.encode(p)); }
    else if (x < 0.84) {
      const k = 1 + Math.floor(r() * 16), c = r();
      add(enc.encode(c < 0.4 ? ' '.repeat(k) : c < 0.8 ? '\n' + ' '.repeat(k - 1) : c < 0.9 ? '\n'.repeat(Math.min(k, 4)) : '\t'.repeat(Math.min(k, 4))));
    } else if (x < 0.92) {
      let s = r() < 0.3 ? ' ' : '';
      const n = 1 + Math.floor(r() * 3);
      for (let i = 0; i < n; i++) s += nonAscii[Math.floor(r() * nonAscii.length)];
      add(enc.encode(s));
    } else if (x < 0.94) {
      const ch = enc.encode(nonAscii[40 + Math.floor(r() * (nonAscii.length - 40))]);
      add(ch.subarray(0, 1 + Math.floor(r() * Math.max(1, ch.length - 1))));
    } else add(enc.encode(word() + word()));
  }
  while (out.length < SYNTH_V) out.push(new Uint8Array(0)); // specials: no text
  return out;
}

/** A Tokenizer over the synthetic vocabulary: encodes byte by byte (ids 0..255), decodes exactly. */
export class SyntheticTokenizer implements Tokenizer {
  readonly bosId = SYNTH_BOS;
  readonly eosIds = SYNTH_EOS;
  readonly vocabSize = SYNTH_V;
  readonly chatSource = 'family' as const;
  constructor(readonly pieces: Uint8Array[] = syntheticVocab()) {}
  encode(text: string, opts?: { addBos?: boolean }): number[] {
    const ids = [...new TextEncoder().encode(text)];
    return opts?.addBos ? [SYNTH_BOS, ...ids] : ids;
  }
  tokenBytes(id: number): Uint8Array { return this.pieces[id] ?? new Uint8Array(0); }
  decodeStream(): TokenDecoder { return new ByteStreamDecoder((id) => this.tokenBytes(id)); }
  decode(ids: number[]): string { const d = this.decodeStream(); return ids.map((i) => d.push(i)).join('') + d.flush(); }
  applyChatTemplate(messages: ChatMessage[]): string { return messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant: '; }
  encodeChat(messages: ChatMessage[]): number[] { return this.encode(this.applyChatTemplate(messages), { addBos: true }); }
}
