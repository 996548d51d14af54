// Random-weight models (bench/headline/make_models.py) carry no tokenizer: give one the tiny byte-level BPE tokenizer
// (prompt token counts exact), its vocab padded with `<|pad_N|>` entries up to the model's vocab_size so every id
// the model samples decodes. usage: node --import tsx bench/load/tokenizer.ts MODEL_DIR
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tinyHfTokenizer } from '../../native/ts/model/tiny.ts';

export function ensureTokenizer(dir: string): boolean {
  if (existsSync(join(dir, 'tokenizer.json'))) return false;
  const t = tinyHfTokenizer('llama3');
  const vocabSize = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  const vocab = (t.files.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
  for (let id = Object.keys(vocab).length; id < vocabSize; id++) vocab[`<|pad_${id}|>`] = id;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t.files.tokenizerJson));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(t.files.tokenizerConfig));
  return true;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node --import tsx bench/load/tokenizer.ts MODEL_DIR\n');
    process.exit(2);
  }
  process.stderr.write(`${dir}: ${ensureTokenizer(dir) ? 'tokenizer written' : 'has a tokenizer'}\n`);
}
