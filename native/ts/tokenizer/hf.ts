// tokenizer.json (Hugging Face) through @huggingface/tokenizers, behind swapserve's Tokenizer interface.
import { dirname, join } from 'node:path';

import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';

import { readSmallText } from '../model/safe-io.ts';
import type { ModelConfig } from '../types.ts';
import { chatParts, chooseFamily, familyStopTokens, usableTemplate, type ChatFamily, type ChatSource } from './chat.ts';
import { PrefixDiffDecoder } from './decode-stream.ts';
import { TokenizerError, type ChatMessage, type ChatOptions, type TokenDecoder, type Tokenizer } from './types.ts';

/** Largest tokenizer.json read (bytes); real ones are a few MB to ~20 MB. */
const MAX_TOKENIZER_JSON = 256 << 20;

const tokenText = (t: unknown): string | null =>
  typeof t === 'string' ? t : t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string' ? (t as { content: string }).content : null;

export class HfTokenizer implements Tokenizer {
  readonly bosId: number | null;
  readonly eosIds: number[];
  readonly vocabSize: number;
  readonly family: ChatFamily;
  readonly chatSource: 'template' | 'family';
  private readonly chat: ChatSource;
  private readonly bosText: string;
  private readonly eosText: string;
  /** Text of every added token (the library matches all of them in any text it encodes). */
  private readonly addedTexts: string[];

  constructor(private readonly impl: HfTokenizerImpl, tokConfig: Record<string, unknown>, cfg: ModelConfig, chatTemplate: string | null) {
    const id = (t: string | null) => (t === null ? undefined : impl.token_to_id(t));
    this.vocabSize = impl.get_vocab(true).size;
    const bosText = tokenText(tokConfig.bos_token);
    this.bosId = id(bosText) ?? cfg.bosTokenId;
    this.family = chooseFamily(chatTemplate, cfg.arch, (t) => impl.token_to_id(t) !== undefined);
    const eos = [id(tokenText(tokConfig.eos_token)), ...cfg.eosTokenIds, ...familyStopTokens(this.family).map((t) => id(t))];
    this.eosIds = [...new Set(eos.filter((x): x is number => x !== undefined))];
    this.bosText = this.bosId === null ? '' : impl.id_to_token(this.bosId) ?? '';
    this.eosText = this.eosIds.length ? impl.id_to_token(this.eosIds[0]) ?? '' : '';
    this.addedTexts = [...impl.get_added_tokens_decoder().values()].map((t) => t.content).filter((t) => t.length > 0);
    this.chat = { family: this.family, template: chatTemplate, bos: this.bosText, eos: this.eosText, specials: this.addedTexts };
    this.chatSource = usableTemplate(this.chat) ? 'template' : 'family';
  }

  encode(text: string, opts: { addBos?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`Expected a string for text but received ${typeof text}`);
    const ids = this.impl.encode(text, { add_special_tokens: false }).ids;
    return opts.addBos && this.bosId !== null ? [this.bosId, ...ids] : ids;
  }

  decode(ids: number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError('bad_token_id', `Expected a token id in [0, ${this.vocabSize}) but received ${id}`);
      }
    }
    if (ids.length === 0) return '';
    return this.impl.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  decodeStream(): TokenDecoder {
    return new PrefixDiffDecoder((ids) => this.decode(ids));
  }

  /**
   * The bytes id adds to decoded text, for constrained decoding: byte-level BPE pieces through GPT-2's byte table,
   * SentencePiece pieces with "▁" as a space and <0xNN> as that byte; special tokens are empty.
   */
  tokenBytes(id: number): Uint8Array {
    if (!this.pieceBytes) {
      const byteLevel = this.impl.token_to_id('Ġ') !== undefined;
      const special = new Set([...this.impl.get_added_tokens_decoder().entries()].filter(([, t]) => t.special).map(([i]) => i));
      const inv = new Map<string, number>();
      let extra = 0;
      for (let b = 0; b < 256; b++) {
        const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        inv.set(String.fromCharCode(printable ? b : 256 + extra++), b);
      }
      this.pieceBytes = (i: number) => {
        const piece = this.impl.id_to_token(i);
        if (piece === undefined || special.has(i)) return new Uint8Array(0);
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (m) return Uint8Array.of(parseInt(m[1], 16));
        if (byteLevel) {
          const out: number[] = [];
          for (const ch of piece) {
            const b = inv.get(ch);
            if (b === undefined) return Buffer.from(piece, 'utf8'); // an added (non-special) token spelled plainly
            out.push(b);
          }
          return Uint8Array.from(out);
        }
        return Buffer.from(piece.replaceAll('\u2581', ' '), 'utf8');
      };
    }
    return this.pieceBytes(id);
  }
  private pieceBytes: ((id: number) => Uint8Array) | null = null;

  applyChatTemplate(messages: ChatMessage[], opts?: ChatOptions): string {
    return chatParts(this.chat, messages, opts).map((p) => p.text).join('');
  }

  encodeChat(messages: ChatMessage[], opts?: ChatOptions): number[] {
    // The library matches added tokens everywhere, so content that spells one is cut before it and its first
    // character encoded on its own; content without one is encoded together with the template (same ids as
    // encode(applyChatTemplate(...))). A tokenizer.json whose normalizer prepends "▁" adds a space at each cut,
    // as Hugging Face's own tokenizer does around added tokens; only content that spells a special token is cut.
    const ids: number[] = [];
    let acc = '';
    const flush = () => { if (acc) ids.push(...this.encode(acc)); acc = ''; };
    for (const p of chatParts(this.chat, messages, opts)) {
      if (!p.literal) { acc += p.text; continue; }
      let text = p.text;
      for (;;) {
        let at = -1;
        for (const a of this.addedTexts) {
          const k = text.indexOf(a);
          if (k >= 0 && (at < 0 || k < at)) at = k;
        }
        if (at < 0) { acc += text; break; }
        acc += text.slice(0, at);
        flush();
        const ch = String.fromCodePoint(text.codePointAt(at)!);
        ids.push(...this.encode(ch));
        text = text.slice(at + ch.length);
      }
    }
    flush();
    return ids;
  }
}

export async function loadHfTokenizer(tokenizerJson: string, cfg: ModelConfig, chatTemplate: string | null): Promise<HfTokenizer> {
  let json: unknown;
  let config: Record<string, unknown> = {};
  try {
    // Non-blocking open and deadlines (model/safe-io.ts): a FIFO or a dead mount fails this model, not the process.
    json = JSON.parse(await readSmallText(tokenizerJson, MAX_TOKENIZER_JSON));
  } catch (e) {
    throw new TokenizerError('bad_vocab', `${tokenizerJson}: cannot read tokenizer.json: ${(e as Error).message}`, { cause: e });
  }
  try {
    config = JSON.parse(await readSmallText(join(dirname(tokenizerJson), 'tokenizer_config.json'), MAX_TOKENIZER_JSON)) as Record<string, unknown>;
  } catch {
    config = {};
  }
  let impl: HfTokenizerImpl;
  try {
    impl = new HfTokenizerImpl(json as object, config);
  } catch (e) {
    throw new TokenizerError('unsupported', `${tokenizerJson}: ${(e as Error).message}`, { cause: e });
  }
  return new HfTokenizer(impl, config, cfg, chatTemplate);
}
