// `swapserve bench multigpu` (issue 16): its figures from samples (pure), and the whole harness on the CPU backend
// with two CPU workers under `swapserve up` (the plumbing CI can run; the GPU figures come from
// bench/multigpu/run_device.sh).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReport, rounds, summarize, type SwapSample } from '../../bench/multigpu/report.ts';
import { parse } from '../../bench/multigpu/multigpu.ts';
import { BIN } from '../helpers/worker-process.ts';
import { needsData } from '../helpers/requires.ts';

const GB = 1e9;
const sample = (round: number, kind: 'single' | 'all', worker: string, startMs: number, endMs: number, ttftMs: number, path = 'swap'): SwapSample =>
  ({ round, kind, model: `m-${worker}`, worker, path, ttftMs, swap: path === 'swap' ? { startMs, endMs, bytes: 16 * GB } : null });

describe('bench multigpu figures', () => {
  const samples: SwapSample[] = [
    sample(1, 'single', 'a', 0, 320, 300), sample(2, 'single', 'a', 1000, 1320, 310),
    // Two swap-ins of 16 GB on two links, 5 ms apart: 32 GB in 335 ms.
    sample(3, 'all', 'a', 2000, 2330, 320), sample(3, 'all', 'b', 2005, 2335, 330),
    sample(4, 'all', 'a', 3000, 3340, 335), sample(4, 'all', 'b', 3000, 3330, 325),
    // A round where one request found its model warm: not a swap round, left out.
    sample(5, 'all', 'a', 4000, 4320, 300), sample(5, 'all', 'b', 0, 0, 12, 'warm'),
  ];
  it('aggregates a round over the wall time from the first start to the last end', () => {
    const r = rounds(samples);
    assert.equal(r.length, 5);
    assert.equal(r[2].bytes, 32 * GB);
    assert.equal(r[2].wallMs, 335);
    assert.ok(Math.abs(r[2].gbps - 32 * GB / 1e6 / 335) < 1e-9);
    assert.equal(r[4].allSwap, false);
    assert.ok(Math.abs(r[2].overlap - 660 / 335) < 1e-9, 'two 330 ms swap-ins within 335 ms: overlap ~2');
  });
  it('compares N at once with one alone, clean rounds only, and says which bar each meets', () => {
    const s = summarize(2, samples, { single: { gpus: 1, goodputRps: 4, throughputRps: 4, ok: 40, failed: 0, lost: 0, ttftP99Ms: 500 }, all: { gpus: 2, goodputRps: 7, throughputRps: 8, ok: 80, failed: 0, lost: 0, ttftP99Ms: 900 } });
    assert.equal(s.skipped, 1);
    assert.ok(Math.abs(s.single.gbps - 50) < 1e-9, 'one 16 GB swap-in in 320 ms: 50 GB/s');
    assert.ok(Math.abs(s.bandwidthScaling - ((32e3 / 335 + 32e3 / 340) / 2) / 100) < 1e-9);
    assert.equal(s.ttftRatio, 332.5 / 305);
    assert.equal(s.load.scaling, 7 / 8);
    const md = renderReport({ date: 'd', device: '2 x H100', argv: [], modelBytes: 16 * GB, summary: s, rounds: rounds(samples) });
    assert.match(md, /swap-in bandwidth .*\| 0\.95 of N x one \| >= 0\.9 \| meets \|/);
    assert.match(md, /TTFT, swap path .*\| 1\.09 x \| <= 1\.1 \| meets \|/);
    assert.match(md, /load replay goodput .*\| 0\.88 of N x one \| >= 0\.9 \| \*\*misses\*\* \|/);
  });
  it('refuses arguments it cannot honour', () => {
    assert.throws(() => parse([]), /give --tiny or --model DIR/);
    assert.throws(() => parse(['--tiny', '--model', 'x']), /give --tiny or --model DIR/);
    assert.throws(() => parse(['--tiny', '--gpus', '0']), /Expected an integer >= 1 for --gpus but received "0"/);
    assert.throws(() => parse(['--tiny', '--concurrency', '4', '--rate', '2']), /excludes --rate/);
    assert.throws(() => parse(['--tiny', '--requests', '4']), /give --concurrency too/);
    assert.throws(() => parse(['--tiny', '--bogus']), /Unknown option '--bogus'/);
  });
});

describe('bench multigpu --tiny (two CPU workers under swapserve up)', { skip: needsData() }, () => {
  it('spreads the models, swaps on both workers at once, replays load on one and on both', { timeout: 150_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-mg-test-'));
    try {
      const out = join(dir, 'mg.json');
      const child = spawn(process.execPath, [BIN, 'bench', 'multigpu', '--tiny', '--gpus', '2', '--reps', '1', '--load-s', '1', '--rate', '2', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      child.stdout!.resume();
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      assert.equal(code, 0, err.slice(-3000));
      const r = JSON.parse(readFileSync(out, 'utf8')) as { gpus: number; rounds: { kind: string; allSwap: boolean; workers: number; n: number }[]; summary: { skipped: number; load: { single: unknown; all: unknown } }; placement: string[] };
      assert.equal(r.gpus, 2);
      assert.equal(r.summary.skipped, 0, `every round was the swaps it set up: ${JSON.stringify(r.rounds)}`);
      const all = r.rounds.filter((x) => x.kind === 'all');
      assert.ok(all.length >= 2 && all.every((x) => x.n === 2 && x.workers === 2), 'N models hit at once were served by N workers');
      assert.ok(r.summary.load.single && r.summary.load.all, 'both load replays ran');
      assert.ok(r.placement.some((l) => /worker-1: CPU/.test(l)), 'up logged each worker\'s placement');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
