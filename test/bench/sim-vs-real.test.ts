// The simulator against the real H100 replays it was checked on (bench/fleet/replay.ts; issue 19's bar: per-path
// TTFT medians within 15 %, path counts within 10 %). The recorded runs are committed; re-simulating them is
// deterministic, so a change to the simulator or the policy that breaks the agreement fails here, not on a GPU.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { resimulate, type Recorded } from '../../bench/fleet/resimulate.ts';

const DIR = new URL('../../bench/results/fleet/2026-12-08-h100-sim-vs-real/', import.meta.url).pathname;
const load = (file: string): Recorded => (JSON.parse(readFileSync(DIR + file, 'utf8')) as { run: Recorded }).run;

describe('simulator vs reality: the committed H100 replays, re-simulated', () => {
  it('run 17 (with the warm-up phase): every path within the bars, the warm-up left out of the comparison', () => {
    const run = load('run17-5f5f407.json');
    assert.equal(run.warmup?.real.length, 3, 'the run recorded its warm-up');
    const r = resimulate(run, 'H100 run 17');
    for (const row of r.rows) assert.ok(row.pass, `${row.path}: ${JSON.stringify(row)}`);
    assert.deepEqual(r.rows.map((x) => [x.path, x.realN]), [['warm', 138], ['swap', 57], ['cold', 5]]);
    // The warm-up model is simulated (it occupies the worker before the measured zero) but compared nowhere.
    assert.ok(r.cluster.served.some((s) => s.model === 'fleet-warmup'));
    assert.equal(r.rows.reduce((n, x) => n + x.simN, 0), r.cluster.served.filter((s) => s.model !== 'fleet-warmup').length);
    assert.ok(r.perRequest.cold.medianAbsMs < 10, `cold per request ${r.perRequest.cold.medianAbsMs} ms`);
  });

  it('run 16 (no warm-up): warm and swap within the bars; cold is not, on the process\'s first event', () => {
    const r = resimulate(load('run16-a3a0ba2.json'), 'H100 run 16');
    const by = Object.fromEntries(r.rows.map((x) => [x.path, x]));
    assert.ok(by.warm.pass && by.swap.pass, JSON.stringify(r.rows));
    // What the warm-up phase was added for (run16-a3a0ba2.md): the first cold event paid ~60 ms the simulator does
    // not model. If the simulator learns to model it, this is the line to change.
    assert.ok(by.cold.medianDiff > 0.15, `cold ${by.cold.medianDiff}`);
  });
});
