// Test helper: a tiny model of a given family and format in a fresh temp dir (removed by the caller or the OS).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { writeTinyModel, type TinyModelOptions } from '../../native/ts/model/tiny.ts';

export type { TinyFamily, TinyModelOptions } from '../../native/ts/model/tiny.ts';

/** Write a tiny model (seeded weights + tokenizer) and return its path: a folder for 'hf', a .gguf for 'gguf'. */
export async function makeTinyModel(opts: TinyModelOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `swapserve-${opts.family}-${opts.format}-`));
  return writeTinyModel(opts.format === 'hf' ? join(dir, 'model') : join(dir, 'model.gguf'), opts);
}
