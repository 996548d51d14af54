// `bench swap --resident` on the CPU backend with a tiny model: the curve's rows move fewer bytes as more is
// resident, the bytes on the GPU tier match a full swap, and bad options are refused with a message (exit 2).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { groupsFor, runPartial } from '../../bench/swap/partial.ts';
import { run } from '../../bench/swap/swap.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

describe('bench swap --resident (CPU backend)', () => {
  it('groupsFor keeps the most leading groups within the fraction', () => {
    const ends = [10, 20, 50, 100];
    assert.deepEqual([0, 0.09, 0.1, 0.25, 0.5, 0.99, 1].map((f) => groupsFor(ends, f)), [0, 0, 1, 2, 3, 3, 4]);
  });

  it('measures each fraction: bytes moved fall with the resident fraction, the GPU bytes equal a full swap', async () => {
    const dir = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'bf16', seed: 3, config: { numLayers: 6 } });
    const r = await runPartial({ model: dir, fractions: [0, 0.5, 1], reps: 1, promptTokens: 16, backend: 'cpu' });
    assert.equal(r.ok, true);
    const [none, half, all] = r.rows;
    assert.equal(none.groups, 0);
    assert.ok(half.groups > 0 && half.bytesMoved < none.bytesMoved, `half resident moves less (${half.bytesMoved} < ${none.bytesMoved})`);
    assert.ok(half.residentFraction <= 0.5 && half.residentFraction > 0);
    assert.equal(all.bytesMoved, 0);
    for (const row of r.rows) {
      assert.equal(row.checksumOk, true);
      assert.equal(row.sameToken, true, 'greedy first token as after the full swap (CPU kernels are deterministic)');
      assert.ok(row.ttftMs > 0 && Number.isFinite(row.ttftMs));
    }
    assert.match(r.table, /\| 50% \|/);
  });

  it('refuses options that do not apply, naming them', async () => {
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
    try {
      assert.equal(await run(['--resident', '0,50']), 2);
      assert.equal(await run(['--model', '/nonexistent', '--resident', '0,150']), 2);
      assert.equal(await run(['--model', '/nonexistent', '--resident', '0,50', '--size', '1g']), 2);
      assert.equal(await run(['--prompt-tokens', '64']), 2);
    } finally {
      process.stderr.write = write;
    }
    assert.match(err[0], /--resident needs --model/);
    assert.match(err[1], /percentages in \[0, 100\].*--resident/);
    assert.match(err[2], /--resident takes only/);
    assert.match(err[3], /--prompt-tokens applies only with --resident/);
  });
});
