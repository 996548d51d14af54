// The tokenizer interface every model's tokenizer implements, and its typed error.
import { SwapserveError, type TokenizerErrorCode } from '../../../contracts/errors.ts';

export interface ChatMessage {
  role: string;
  content: string;
}

/** Incremental detokenizer: push(id) returns the text that is now complete (split UTF-8 characters are held). */
export interface TokenDecoder {
  push(id: number): string;
  /** Whatever is still held (an incomplete character decodes to U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  /** Special tokens spelled in `text` (e.g. "<|im_start|>") are parsed as those tokens. addBos defaults to false. */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  decodeStream(): TokenDecoder;
  /** Control tokens (BOS, EOS, ...) decode to nothing. */
  decode(ids: number[]): string;
  bosId: number | null;
  eosIds: number[];
  vocabSize: number;
  /** The prompt text for `messages`, with the generation prompt; encode it with addBos false (BOS is in it). */
  applyChatTemplate(messages: ChatMessage[]): string;
  /**
   * The ids of applyChatTemplate(messages), except that message content never becomes special tokens: a user who
   * types "<|im_end|>" gets those characters, not an end of turn. Use this for untrusted chat input.
   */
  encodeChat(messages: ChatMessage[]): number[];
  /** The bytes `id` adds to decoded text (empty for control tokens), for constrained decoding; optional. */
  tokenBytes?(id: number): Uint8Array;
}


export class TokenizerError extends SwapserveError<TokenizerErrorCode> {
  override readonly name = 'TokenizerError';
}
