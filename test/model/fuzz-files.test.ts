// Seeded corruption of real and synthetic model files: every outcome is a valid model or a typed error —
// never another exception, a hang or a crash. (Deterministic: fixed seeds, fixed cut points.)
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { ModelFileError, openModel, prng } from '../../native/ts/model/index.ts';
import { loadTokenizer, TokenizerError } from '../../native/ts/tokenizer/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { makeTempDir, makeTinyModel } from '../helpers/make-model.ts';

type Outcome = 'ok' | string;

/** Open (and load the tokenizer of) `path`; any error but a typed one fails the test. */
async function outcome(path: string): Promise<Outcome> {
  try {
    const m = await openModel(path);
    if (m.tokenizer) await loadTokenizer(m);
    return 'ok';
  } catch (e) {
    if (e instanceof ModelFileError) return e.code;
    if (e instanceof TokenizerError) return `tokenizer:${e.code}`;
    throw e;
  }
}

async function mutateRuns(label: string, original: Buffer, file: string, open: string, region: number, runs: number, seed: number) {
  const next = prng(seed);
  const seen = new Map<Outcome, number>();
  for (let r = 0; r < runs; r++) {
    const b = Buffer.from(original);
    const flips = 1 + (next() % 4);
    for (let f = 0; f < flips; f++) b[next() % Math.min(region, b.length)] = next() & 0xff;
    await writeFile(file, b);
    const o = await outcome(open);
    seen.set(o, (seen.get(o) ?? 0) + 1);
  }
  // Most corruptions must be caught (the test would fail if validation did nothing).
  assert.ok((seen.get('ok') ?? 0) < runs, `${label}: some corruption is detected`);
  return seen;
}

describe('corrupted model files', () => {
  it('stories260K.gguf with random bytes changed in its header: a model or a typed error, every time', { skip: needsData() }, async () => {
    const file = join(await makeTempDir('fuzz'), 'm.gguf');
    const original = await readFile(STORIES260K_GGUF);
    await mutateRuns('gguf', original, file, file, 14_176, 250, 1);
  });

  it('stories260K.gguf cut at 200 points: always truncated or out_of_bounds-style typed errors', { skip: needsData() }, async () => {
    const file = join(await makeTempDir('fuzz'), 'm.gguf');
    const original = await readFile(STORIES260K_GGUF);
    for (let i = 0; i < 200; i++) {
      const cut = Math.floor((i * original.length) / 200);
      await writeFile(file, original.subarray(0, cut));
      const o = await outcome(file);
      assert.notEqual(o, 'ok', `cut at ${cut}`);
      assert.ok(['truncated', 'out_of_bounds', 'bad_magic'].includes(o), `cut at ${cut}: ${o}`);
    }
  });

  it('an HF safetensors file with random header bytes changed: a model or a typed error, every time', async () => {
    const dir = await makeTinyModel({ family: 'qwen2', format: 'hf', dtype: 'bf16' });
    const file = join(dir, 'model.safetensors');
    const original = await readFile(file);
    const headerEnd = 8 + Number(original.readBigUInt64LE(0));
    await mutateRuns('safetensors', original, file, dir, headerEnd, 250, 2);
  });
});
