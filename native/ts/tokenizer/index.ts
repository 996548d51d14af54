// Tokenizers: GGUF-embedded vocabs (SentencePiece-style, byte-level BPE) and tokenizer.json, one interface.
import { metaArray, metaNumber, metaString, readGguf, type GgufScalar } from '../model/gguf.ts';
import type { ModelSource } from '../types.ts';
import { BpeTokenizer } from './bpe.ts';
import { loadHfTokenizer } from './hf.ts';
import { SpmTokenizer } from './spm.ts';
import { TokenizerError, type Tokenizer } from './types.ts';

export { TokenizerError, type Tokenizer, type TokenDecoder, type ChatMessage } from './types.ts';
export { TOKENIZER_ERROR_CODES, type TokenizerErrorCode } from '../../../contracts/errors.ts';
export { renderChat, chooseFamily, type ChatFamily } from './chat.ts';
export { templateFamily, REFERENCE_TEMPLATES } from './templates.ts';
export { SpmTokenizer } from './spm.ts';
export { BpeTokenizer } from './bpe.ts';

const isStr = (x: GgufScalar): x is string => typeof x === 'string';
const isNum = (x: GgufScalar): x is number => typeof x === 'number';

/** The model's own tokenizer (from its GGUF metadata or its tokenizer.json). */
export async function loadTokenizer(source: ModelSource): Promise<Tokenizer> {
  const t = source.tokenizer;
  if (!t) throw new TokenizerError('no_tokenizer', `${source.path}: the model carries no tokenizer (no tokenizer.json / tokenizer.ggml.*)`);
  if (t.kind === 'hf') return loadHfTokenizer(t.path, source.config, t.chatTemplate);
  const g = await readGguf(t.path);
  const model = metaString(g, 'tokenizer.ggml.model');
  const tokens = metaArray(g, 'tokenizer.ggml.tokens', isStr, 'strings');
  if (!tokens) throw new TokenizerError('bad_vocab', `${t.path}: tokenizer.ggml.tokens is missing`);
  const types = metaArray(g, 'tokenizer.ggml.token_type', isNum, 'integers') ?? tokens.map(() => 1);
  const id = (k: string) => {
    const v = metaNumber(g, k);
    return v === undefined || v < 0 || v >= tokens.length ? null : v; // 0xFFFFFFFF means "none"
  };
  const base = {
    tokens, types, bosId: id('tokenizer.ggml.bos_token_id'), unkId: id('tokenizer.ggml.unknown_token_id'),
    eosIds: [id('tokenizer.ggml.eos_token_id'), id('tokenizer.ggml.eot_token_id')].filter((x): x is number => x !== null),
    chatTemplate: t.chatTemplate, arch: source.config.arch,
  };
  if (model === 'llama') {
    const scores = metaArray(g, 'tokenizer.ggml.scores', isNum, 'numbers');
    if (!scores) throw new TokenizerError('bad_vocab', `${t.path}: tokenizer.ggml.scores is missing (needed by the llama/SPM tokenizer)`);
    const addSpace = g.metadata.get('tokenizer.ggml.add_space_prefix');
    return new SpmTokenizer({ ...base, scores, addSpacePrefix: typeof addSpace === 'boolean' ? addSpace : true });
  }
  if (model === 'gpt2') {
    const merges = metaArray(g, 'tokenizer.ggml.merges', isStr, 'strings');
    if (!merges) throw new TokenizerError('bad_vocab', `${t.path}: tokenizer.ggml.merges is missing (needed by the gpt2/BPE tokenizer)`);
    return new BpeTokenizer({ ...base, merges, pre: metaString(g, 'tokenizer.ggml.pre') ?? null });
  }
  throw new TokenizerError('unsupported', `${t.path}: tokenizer.ggml.model "${model}" is not supported (llama, gpt2)`);
}
