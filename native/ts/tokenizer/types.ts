// The tokenizer interface every model's tokenizer implements, and its typed error.
import { SwapserveError, type TokenizerErrorCode } from '../../../contracts/errors.ts';

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
  /** An assistant's calls (OpenAI shape; arguments a JSON string). */
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
  /** A tool message: the call it answers. */
  tool_call_id?: string;
}

export interface ChatOptions {
  /** Tools (OpenAI `{type: 'function', function: {...}}` objects) the template renders into the prompt. */
  tools?: unknown[];
  /** End with the assistant's generation prompt. @defaultValue true */
  addGenerationPrompt?: boolean;
}

/** A piece of a rendered prompt: template scaffolding (may spell special tokens) or message content (literal). */
export interface ChatPart {
  text: string;
  /** Message content: its text must never turn into special tokens. */
  literal: boolean;
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
  /**
   * The prompt text for `messages` (and tools), with the generation prompt; encode it with addBos false (BOS is in
   * it). Rendered from the model's Jinja template when it has one that parses, else by its family (chat.ts).
   */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatOptions): string;
  /**
   * The ids of applyChatTemplate(messages), except that message content never becomes special tokens: a user who
   * types "<|im_end|>" gets those characters, not an end of turn. Use this for untrusted chat input.
   */
  encodeChat(messages: ChatMessage[], opts?: ChatOptions): number[];
  /** Where chat prompts come from: the model's own Jinja template, or a built-in family (no or unparsable template). */
  readonly chatSource: 'template' | 'family';
  /** The bytes `id` adds to decoded text (empty for control tokens), for constrained decoding; optional. */
  tokenBytes?(id: number): Uint8Array;
}


export class TokenizerError extends SwapserveError<TokenizerErrorCode> {
  override readonly name = 'TokenizerError';
}
