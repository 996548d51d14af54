// Incremental detokenizers: byte-exact for GGUF vocabs, prefix-diff for tokenizer.json ones.
import type { TokenDecoder } from './types.ts';

/** Tokens → bytes → text, holding bytes of a UTF-8 character split across tokens until it is whole. */
export class ByteStreamDecoder implements TokenDecoder {
  private readonly td = new TextDecoder('utf-8', { fatal: false });
  constructor(private readonly bytesOf: (id: number) => Uint8Array) {}
  push(id: number): string {
    return this.td.decode(this.bytesOf(id), { stream: true });
  }
  flush(): string {
    return this.td.decode();
  }
}

/**
 * For decoders we only have as ids → string: decode a short window and emit what it adds, holding back while it
 * ends in U+FFFD (an incomplete character). The window keeps a few tokens of left context so decoders that treat
 * the first token specially (leading-space stripping) see it in place.
 */
export class PrefixDiffDecoder implements TokenDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  constructor(private readonly decodeIds: (ids: number[]) => string) {}
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.decodeIds(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decodeIds(this.ids.slice(this.prefixOffset));
    if (text.length > prefix.length && !text.endsWith('\uFFFD')) {
      const out = text.slice(prefix.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      if (this.prefixOffset > 64) { // keep the window short: ids before prefixOffset are never decoded again
        this.ids = this.ids.slice(this.prefixOffset);
        this.readOffset -= this.prefixOffset;
        this.prefixOffset = 0;
      }
      return out;
    }
    return '';
  }
  flush(): string {
    const prefix = this.decodeIds(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decodeIds(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.slice(prefix.length);
  }
}
