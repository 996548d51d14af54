// Test helper: a tiny model of a given family and format in a fresh temp dir, removed when the process exits.
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { writeTinyModel, type TinyModelOptions } from '../../native/ts/model/tiny.ts';

export type { TinyFamily, TinyModelOptions } from '../../native/ts/model/tiny.ts';

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp dir (removed at exit), for tests that write their own files. */
export async function makeTempDir(label = 'model'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `swapserve-${label}-`));
  dirs.push(dir);
  return dir;
}

/** Write a tiny model (seeded weights + tokenizer) and return its path: a folder for 'hf', a .gguf for 'gguf'. */
export async function makeTinyModel(opts: TinyModelOptions): Promise<string> {
  const dir = await makeTempDir(`${opts.family}-${opts.format}`);
  return writeTinyModel(opts.format === 'hf' ? join(dir, 'model') : join(dir, 'model.gguf'), opts);
}
