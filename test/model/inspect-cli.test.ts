// `swapserve inspect`: human and --json output for good models, a clear error and exit 1 for bad ones.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { run } from '../../services/cli/inspect.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { makeTempDir, makeTinyModel } from '../helpers/make-model.ts';

async function inspect(argv: string[]): Promise<{ rc: number; out: string; err: string }> {
  let out = '', err = '';
  const rc = await run(argv, { out: (s) => { out += s; }, err: (s) => { err += s; } });
  return { rc, out, err };
}

describe('swapserve inspect', () => {
  it('prints architecture, parameters, dtype, bytes and shape of stories260K', { skip: needsData() }, async () => {
    const r = await inspect([STORIES260K_GGUF]);
    assert.equal(r.rc, 0, r.err);
    assert.match(r.out, /^arch\s+llama$/m);
    assert.match(r.out, /^parameters\s+260,032 \(260\.0K\)$/m);
    assert.match(r.out, /^dtype\s+f32$/m);
    assert.match(r.out, /^arena bytes\s+1,040,128 /m);
    assert.match(r.out, /^layers\s+5$/m);
    assert.match(r.out, /^heads\s+8 \(kv 4, head dim 8\)$/m);
    assert.match(r.out, /^rms eps\s+0\.00001$/m);
    assert.match(r.out, /^chat\s+llama2 \(from the architecture\)$/m);
  });

  it('--json gives the whole ModelSource for machines', async () => {
    const dir = await makeTinyModel({ family: 'qwen2', format: 'hf', dtype: 'bf16' });
    const r = await inspect([dir, '--json']);
    assert.equal(r.rc, 0);
    const j = JSON.parse(r.out);
    assert.equal(j.ok, true);
    assert.equal(j.model.format, 'safetensors');
    assert.equal(j.model.dtype, 'bf16');
    assert.equal(j.model.config.attentionBias, true);
    assert.equal(j.model.chat.family, 'chatml');
    assert.equal(j.model.chat.fromTemplate, true);
    assert.equal(j.model.layout.groups.length, j.model.config.numLayers + 2);
  });

  it('a bad file prints its error code and exits 1 (text and --json)', async () => {
    const f = join(await makeTempDir('inspect'), 'bad.gguf');
    await writeFile(f, 'GGUF but not really');
    const t = await inspect([f]);
    assert.equal(t.rc, 1);
    assert.equal(t.out, '');
    assert.match(t.err, /bad_version: .*bad\.gguf: GGUF version \d+ is not supported/);
    const j = await inspect([f, '--json']);
    assert.equal(j.rc, 1);
    assert.deepEqual(Object.keys(JSON.parse(j.out).error), ['code', 'file', 'message']);
    assert.equal(JSON.parse(j.out).error.code, 'bad_version');
  });

  it('usage errors exit 2', async () => {
    assert.equal((await inspect([])).rc, 2);
    assert.equal((await inspect(['a', 'b'])).rc, 2);
    assert.equal((await inspect(['--bogus', 'x'])).rc, 2);
  });

  it('runs as `swapserve inspect` from the command line', { skip: needsData() }, () => {
    const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
    const r = spawnSync(process.execPath, [join(root, 'bin', 'swapserve.js'), 'inspect', STORIES260K_GGUF, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).model.parameterCount, 260_032);
  });
});
