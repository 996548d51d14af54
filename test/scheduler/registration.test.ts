// The scheduler's registration judges model files with the same openModel as inspect and the worker: a valid
// model reports its arena bytes, a hostile or blocking one a one-line log and 0 bytes, without stalling.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { openModel } from '../../native/ts/model/index.ts';
import { validatedBytes } from '../../services/cli/scheduler.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { fifo, gguf } from '../helpers/hostile-models.ts';
import { makeTempDir } from '../helpers/make-model.ts';
import { needsData } from '../helpers/requires.ts';
import type { GgufKv } from '../../native/ts/model/index.ts';

const entry = (id: string, path: string) => ({ id, path }) as Parameters<typeof validatedBytes>[0];

describe('scheduler registration', () => {
  it('a valid model registers with its arena bytes', { skip: needsData() }, async () => {
    const lines: string[] = [];
    assert.equal(await validatedBytes(entry('story', STORIES260K_GGUF), (l) => lines.push(l)), (await openModel(STORIES260K_GGUF)).layout.totalBytes);
    assert.deepEqual(lines, []);
  });

  it('a FIFO and a block_count of 2^26 are each logged in one line and registered with 0 bytes, at once', async () => {
    const pipe = fifo(join(await makeTempDir('sched-fifo'), 'm.gguf'));
    const huge = await gguf((s) => { s.metadata = [...s.metadata.filter((m: GgufKv) => m.key !== 'llama.block_count'), { key: 'llama.block_count', type: 'u32', value: 2 ** 26 }]; });
    const lines: string[] = [];
    const t0 = performance.now();
    assert.equal(await validatedBytes(entry('piped', pipe), (l) => lines.push(l)), 0);
    assert.equal(await validatedBytes(entry('huge', huge), (l) => lines.push(l)), 0);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^swapserve scheduler: model "piped" rejected: not_found .*not a regular file \(a FIFO\)$/);
    assert.match(lines[1], /^swapserve scheduler: model "huge" rejected: bad_config .*67108864, over the limit of 1024$/);
  });
});
