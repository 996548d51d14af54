// Random-weight models (bench/headline/make_models.py) carry no tokenizer: give one the tiny byte-level BPE tokenizer
// (prompt token counts exact), its vocab padded with `<|pad_N|>` entries up to the model's vocab_size so every id
// the model samples decodes. usage: node --import tsx bench/load/tokenizer.ts MODEL_DIR
import { ensureTokenizer } from '../headline/models.ts';

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node --import tsx bench/load/tokenizer.ts MODEL_DIR\n');
    process.exit(2);
  }
  process.stderr.write(`${dir}: ${ensureTokenizer(dir) ? 'tokenizer written' : 'has a tokenizer'}\n`);
}
