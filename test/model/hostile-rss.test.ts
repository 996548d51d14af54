// Every crafted file of the hostile table is rejected in under a second with a one-line message, and without a
// memory spike: measured in a fresh child process through its peak RSS (getrusage maxrss).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { CASES, gguf } from '../helpers/hostile-models.ts';

/** Largest peak-RSS growth over the whole table (bytes): 5 GB once; a 4 MB crafted file legitimately buffers 4 MB. */
const MAX_RSS_GROWTH = 64 * 1024 ** 2;
/** Longest time one file may take to be rejected (ms). */
const MAX_MS = 1000;

const CHILD = fileURLToPath(new URL('../helpers/hostile-open-child.ts', import.meta.url));

describe('hostile model files: time and memory', () => {
  it(`all ${CASES.length} cases: rejected in < ${MAX_MS} ms each, one-line messages, peak RSS grows < 64 MiB`, async () => {
    const paths = [];
    for (const c of CASES) paths.push(await c.make());
    const warm = await gguf();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    child.stdin.end(JSON.stringify({ warm, paths }));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, 'the child exits cleanly (no abort, no OOM)');
    const { baseline, results } = JSON.parse(out) as { baseline: number; results: { path: string; ms: number; code: string; message: string; peakRss: number }[] };
    for (const [i, r] of results.entries()) {
      const c = CASES[i];
      assert.equal(r.code, c.code, `${c.name}: ${r.message}`);
      assert.ok(r.ms < MAX_MS, `${c.name}: rejected in ${r.ms.toFixed(0)} ms`);
      assert.ok(!r.message.includes('\n'), `${c.name}: one-line message`);
    }
    const growth = results[results.length - 1].peakRss - baseline;
    const slowest = results.reduce((a, b) => (b.ms > a.ms ? b : a));
    process.stdout.write(`# ${results.length} crafted files: slowest ${slowest.ms.toFixed(1)} ms (${CASES[results.indexOf(slowest)].name}), ` +
      `peak RSS ${(baseline / 2 ** 20).toFixed(0)} -> ${(results[results.length - 1].peakRss / 2 ** 20).toFixed(0)} MiB\n`);
    assert.ok(growth < MAX_RSS_GROWTH, `peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
  });
});
