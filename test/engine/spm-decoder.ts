// A plain reference decoder for GGUF SentencePiece vocabularies (tests only): control tokens skipped, byte
// tokens <0xNN> as raw bytes, '▁' as a space, one leading space dropped (SentencePiece's dummy prefix).
import { readGguf } from '../../native/ts/model/index.ts';
import type { TokenDecoder } from '../../native/ts/engine.ts';

export async function spmDecoderFromGguf(file: string): Promise<TokenDecoder & { tokens: string[] }> {
  const g = await readGguf(file);
  const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
  const types = g.metadata.get('tokenizer.ggml.token_type') as number[];
  const pieces = tokens.map((t, i) => {
    if (types[i] === 3) return new Uint8Array(0); // control: <s>, </s>
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
    if (types[i] === 6 && byte) return Uint8Array.of(parseInt(byte[1], 16));
    return new TextEncoder().encode(t.replaceAll('\u2581', ' '));
  });
  return {
    tokens,
    decode(ids: readonly number[]): string {
      const parts = ids.map((id) => pieces[id]);
      const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let off = 0;
      for (const p of parts) { bytes.set(p, off); off += p.length; }
      const text = new TextDecoder().decode(bytes);
      return text.startsWith(' ') ? text.slice(1) : text;
    },
  };
}
