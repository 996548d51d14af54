// Hostile and broken model files: each is rejected with a ModelFileError of its own code and a clear message,
// never a crash, a hang, a huge allocation or a partial model.
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { ModelFileError, openModel, writeSafetensors } from '../../native/ts/model/index.ts';
import { makeTempDir } from '../helpers/make-model.ts';
import { STORIES260K_GGUF as STORIES } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { CASES, gguf, hfFolder, hfTensors } from '../helpers/hostile-models.ts';

describe('hostile model files', () => {
  it('the table has at least 12 distinct error codes', () => {
    assert.ok(new Set(CASES.map((c) => c.code)).size >= 12);
  });

  for (const c of CASES) {
    it(`rejects: ${c.name} → ${c.code}`, async () => {
      const path = await c.make();
      await assert.rejects(openModel(path), (e: unknown) => {
        assert.ok(e instanceof ModelFileError, `expected a ModelFileError, got ${String(e)}`);
        assert.equal(e.code, c.code, e.message);
        assert.match(e.message, c.message);
        assert.ok(e.file.startsWith(path) || path.startsWith(e.file), `error names the file (${e.file})`);
        return true;
      });
    });
  }

  it('the valid base files of the table do open (the table tests what it claims)', async () => {
    await openModel(await hfFolder((f) => writeSafetensors(f, hfTensors())));
    await openModel(await gguf());
  });

  it('a GGUF whose separate output differs from the embedding stays untied, with the head loaded', { skip: needsData() }, async () => {
    const file = join(await makeTempDir('untied'), 'm.gguf');
    await copyFile(STORIES, file);
    const b = await readFile(file);
    const m0 = await openModel(file);
    // Flip one byte of output.weight: the file's tensor data is found through readGguf's offsets.
    const { readGguf } = await import('../../native/ts/model/index.ts');
    const out = (await readGguf(file)).tensors.find((t) => t.name === 'output.weight')!;
    b[out.fileOffset + 5] ^= 1;
    await writeFile(file, b);
    const m = await openModel(file);
    assert.equal(m0.config.tieWordEmbeddings, true);
    assert.equal(m.config.tieWordEmbeddings, false);
    assert.equal(m.parameterCount, 260_032 + 512 * 64);
    assert.ok(m.layout.tensors.some((t) => t.name === 'output' && t.group === 6));
  });
});
