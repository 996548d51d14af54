// Turning generated token ids into streamed text: incremental detokenisation (a token's text is emitted as soon
// as it is complete; byte-fallback tokens that split a UTF-8 character are held until it is whole) and stop
// strings (text that could still become a stop string is held back; a match truncates the output before it).

/** What the engine needs from a tokenizer: ids → text (special tokens skipped, as a tokenizer's decode does). */
export interface TokenDecoder {
  decode(ids: readonly number[]): string;
}

/**
 * Incremental detokenizer. Decoding a token alone is wrong for SentencePiece (a leading space is dropped at the
 * start of a text) and for byte tokens (half a character decodes to U+FFFD). So it decodes a short window
 * [prefix, end) and emits what that window adds beyond [prefix, read), only once it ends in a whole character.
 */
export class IncrementalDecoder {
  private readonly ids: number[] = [];
  private prefix = 0; // window start
  private read = 0; // ids before this index have been emitted

  constructor(private readonly tokenizer: TokenDecoder) {}

  /** Adds one token; returns the text it completes ('' while a UTF-8 character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const after = this.tokenizer.decode(this.ids.slice(this.prefix));
    if (after.length > before.length && !after.endsWith('\uFFFD')) {
      this.prefix = this.read;
      this.read = this.ids.length;
      return after.slice(before.length);
    }
    return '';
  }

  /** Text still held (an incomplete character at the end decodes to U+FFFD); resets the hold. */
  flush(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefix, this.read));
    const after = this.tokenizer.decode(this.ids.slice(this.prefix));
    this.prefix = this.read = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : '';
  }
}

/** Holds back text that may begin a stop string; reports the first stop string found. */
export class StopMatcher {
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns the part safe to emit, and whether a stop string ended the output. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text, stopped: false };
    const buf = this.held + text;
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    // Longest suffix of buf that is a proper prefix of some stop string: it must wait for more text.
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > keep; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The held text, at the end of the output (no stop string can complete any more). */
  flush(): string {
    const t = this.held;
    this.held = '';
    return t;
  }
}
