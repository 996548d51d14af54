// Shared machinery of GGUF-embedded vocabularies: special-token splitting, byte-level decoding, chat prompts.
import type { Arch } from '../types.ts';
import { chatParts, chooseFamily, familyStopTokens, usableTemplate, type ChatFamily, type ChatSource } from './chat.ts';
import { ByteStreamDecoder } from './decode-stream.ts';
import { TokenizerError, type ChatMessage, type ChatOptions, type TokenDecoder, type Tokenizer } from './types.ts';

/** llama.cpp token types. */
export const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface VocabInfo {
  tokens: string[];
  types: number[];
  bosId: number | null;
  eosIds: number[];
  unkId: number | null;
  chatTemplate: string | null;
  arch: Arch;
}

/** A piece of input text: raw text to tokenize, or a special token spelled in the text. */
type Fragment = { text: string } | { id: number };

export abstract class VocabTokenizer implements Tokenizer {
  readonly bosId: number | null;
  readonly eosIds: number[];
  readonly vocabSize: number;
  protected readonly tokens: string[];
  protected readonly types: number[];
  protected readonly unkId: number | null;
  protected readonly ids = new Map<string, number>();
  readonly family: ChatFamily;
  readonly chatSource: 'template' | 'family';
  private readonly chatTemplate: string | null;
  /** Specials matched in text, longest first. */
  private readonly specials: { text: string; id: number }[];
  private readonly pieceBytes: (Uint8Array | undefined)[];

  constructor(v: VocabInfo) {
    if (v.tokens.length === 0) throw new TokenizerError('bad_vocab', 'the vocabulary is empty');
    if (v.types.length !== v.tokens.length) {
      throw new TokenizerError('bad_vocab', `token_type has ${v.types.length} entries for ${v.tokens.length} tokens`);
    }
    this.tokens = v.tokens;
    this.types = v.types;
    this.vocabSize = v.tokens.length;
    this.unkId = v.unkId;
    v.tokens.forEach((t, i) => { if (!this.ids.has(t)) this.ids.set(t, i); });
    const check = (id: number | null, what: string) => {
      if (id !== null && (id < 0 || id >= this.vocabSize)) throw new TokenizerError('bad_vocab', `${what} ${id} is outside the vocabulary (${this.vocabSize})`);
    };
    check(v.bosId, 'bos id');
    for (const e of v.eosIds) check(e, 'eos id');
    this.bosId = v.bosId;
    this.family = chooseFamily(v.chatTemplate, v.arch, (t) => this.ids.has(t));
    const stops = familyStopTokens(this.family).map((t) => this.ids.get(t)).filter((x): x is number => x !== undefined);
    this.eosIds = [...new Set([...v.eosIds, ...stops])];
    this.specials = v.tokens
      .map((text, id) => ({ text, id }))
      .filter(({ text, id }) => (v.types[id] === TT.CONTROL || v.types[id] === TT.USER_DEFINED) && text.length > 0)
      .sort((a, b) => b.text.length - a.text.length);
    this.pieceBytes = new Array(v.tokens.length);
    this.chatTemplate = v.chatTemplate;
    this.chatSource = usableTemplate({ template: v.chatTemplate }) ? 'template' : 'family';
  }

  private chat(): ChatSource {
    return { family: this.family, template: this.chatTemplate, bos: this.bosText(), eos: this.eosText(), specials: this.specials.map((s) => s.text) };
  }

  /** Tokenize one raw-text fragment. `afterSpecial`: at the start of the text or right after a special token. */
  protected abstract encodeFragment(text: string, afterSpecial: boolean, out: number[]): void;
  /** The bytes a (non-control) token stands for. */
  protected abstract bytesOfPiece(id: number): Uint8Array;

  /** Split out special tokens spelled in `text`, except inside `literal` ranges [start, end) (sorted). */
  private split(text: string, literal: [number, number][] = []): Fragment[] {
    if (this.specials.length === 0) return [{ text }];
    const out: Fragment[] = [];
    let start = 0;
    let i = 0;
    let r = 0;
    outer: while (i < text.length) {
      while (r < literal.length && literal[r][1] <= i) r++;
      if (r < literal.length && literal[r][0] <= i) { i = literal[r][1]; continue; }
      for (const s of this.specials) {
        if (text.startsWith(s.text, i) && !(r < literal.length && literal[r][0] < i + s.text.length)) {
          if (i > start) out.push({ text: text.slice(start, i) });
          out.push({ id: s.id });
          i += s.text.length;
          start = i;
          continue outer;
        }
      }
      i++;
    }
    if (start < text.length) out.push({ text: text.slice(start) });
    return out;
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`Expected a string for text but received ${typeof text}`);
    return this.encodeFragments(this.split(text), opts.addBos ?? false);
  }

  encodeChat(messages: ChatMessage[], opts?: ChatOptions): number[] {
    const parts = chatParts(this.chat(), messages, opts);
    let text = '';
    const literal: [number, number][] = [];
    for (const p of parts) {
      if (p.literal) literal.push([text.length, text.length + p.text.length]);
      text += p.text;
    }
    // A special token may not start inside content and end in the template (or the reverse) either: the split
    // only matches specials that begin outside a literal range, and a match may not run into one.
    return this.encodeFragments(this.split(text, literal), false);
  }

  private encodeFragments(fragments: Fragment[], addBos: boolean): number[] {
    const out: number[] = [];
    if (addBos && this.bosId !== null) out.push(this.bosId);
    let afterSpecial = true;
    for (const f of fragments) {
      if ('id' in f) {
        out.push(f.id);
        afterSpecial = true;
      } else {
        this.encodeFragment(f.text, afterSpecial, out);
        afterSpecial = false;
      }
    }
    return out;
  }

  protected bytesOf(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError('bad_token_id', `Expected a token id in [0, ${this.vocabSize}) but received ${id}`);
    }
    const t = this.types[id];
    if (t === TT.CONTROL || t === TT.UNUSED) return new Uint8Array(0);
    let b = this.pieceBytes[id];
    if (!b) b = this.pieceBytes[id] = t === TT.USER_DEFINED ? Buffer.from(this.tokens[id], 'utf8') : this.bytesOfPiece(id);
    return b;
  }

  /** The bytes id adds to decoded text (empty for control tokens): constrained decoding walks these. */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOf(id);
  }

  decode(ids: number[]): string {
    const d = this.decodeStream();
    let s = '';
    for (const id of ids) s += d.push(id);
    return s + d.flush();
  }

  decodeStream(): TokenDecoder {
    return new ByteStreamDecoder((id) => this.bytesOf(id));
  }

  private bosText(): string {
    return this.bosId === null ? '' : this.tokens[this.bosId];
  }

  private eosText(): string {
    const eosId = this.eosIds[0];
    return eosId === undefined ? '' : this.tokens[eosId];
  }

  applyChatTemplate(messages: ChatMessage[], opts?: ChatOptions): string {
    return chatParts(this.chat(), messages, opts).map((p) => p.text).join('');
  }
}
