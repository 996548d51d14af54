// `swapserve profile` end to end on the CPU backend (stories260K, --quick): moves, engine steps, worker start and the
// per-bucket rate sweep through a real stack it starts itself; the profile JSON and a calibration file the fleet
// tools parse. And the usage errors of `profile` and `bench load` (exit code 2, never a stack trace).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCalibrationFile } from '../../services/fleet/calibration.ts';
import { sharedDecodeStepS, type Profile } from '../../bench/load/profile.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;
const cli = (args: string[], timeout = 30_000) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout, killSignal: 'SIGKILL' });

describe('sharedDecodeStepS: the decode step over the steps every sequence of a batch shared', () => {
  // Token times (ms): `first` is a sequence's first token; then one token every `step` ms, `n` tokens in all.
  const seq = (first: number, step: number, n: number) => ({ times: Array.from({ length: n }, (_, i) => first + i * step) });

  it('leaves out the tokens a sequence made while others were still being prefilled', () => {
    // Half the batch starts at 0 and decodes at 10 ms a step, but its first 5 gaps hold a 200 ms prefill pass of the
    // others (which start at 250); from 250 on all decode together at 10 ms.
    const early = { times: [0, 210, 220, 230, 240, 250, ...Array.from({ length: 30 }, (_, i) => 260 + i * 10)] };
    const runs = [early, early, seq(250, 10, 32), seq(250, 10, 32)];
    assert.equal(sharedDecodeStepS(runs), 0.01);
    // The per-sequence average it replaces would read the early ones long: (550 - 0) / 35 = 15.7 ms.
  });

  it('is null when the shared window holds fewer steps than asked, or a sequence has one token', () => {
    assert.equal(sharedDecodeStepS([seq(0, 10, 20), seq(150, 10, 6)]), null);
    assert.equal(sharedDecodeStepS([seq(0, 10, 20), { times: [5] }]), null);
    assert.equal(sharedDecodeStepS([]), null);
    assert.equal(sharedDecodeStepS([seq(0, 10, 20), seq(150, 10, 6)], 3), 0.01);
  });
});

describe('swapserve profile / bench load (CLI)', () => {
  it('rejects bad arguments with exit code 2 and a usage line', () => {
    for (const args of [['profile'], ['profile', '--model-path', 'x', '--inputs', 'a,b'], ['profile', '--model-path', '/nonexistent.gguf'], ['profile', '--bogus'],
      ['bench', 'load'], ['bench', 'load', '--model', 'm', '--concurrency', '0'], ['bench', 'load', '--model', 'm', '--concurrency', '2', '--rate', '1'],
      ['bench', 'load', '--model', 'm', '--trace', 'nope'], ['bench', 'load', '--bogus'], ['bench', 'load', '--model', 'm', '--deadline-s', '5']]) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /usage: swapserve (profile|bench load)|no such file/, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('profiles stories260K on the CPU end to end and writes a profile and a calibration file', { skip: needsData(), timeout: 240_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'profile-test-'));
    try {
      const r = cli(['profile', '--model-path', STORIES260K_GGUF, '--quick', '--backend', 'cpu', '--threads', '1', '--device', 'ci-cpu', '--out', out], 200_000);
      assert.equal(r.signal, null, `profile did not finish: ${r.stderr.slice(-2000)}`);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      assert.match(r.stdout, /### profile: ci-cpu \(cpu\)/);
      const p = JSON.parse(readFileSync(join(out, 'ci-cpu.json'), 'utf8')) as Profile;
      assert.equal(p.kind, 'swapserve-profile');
      assert.equal(p.backend, 'cpu');
      assert.ok(p.moves.swapBytesPerS > 0 && p.moves.diskBytesPerS > 0 && p.moves.pageCacheBytesPerS > 0);
      assert.ok(p.workerStartS > 0);
      assert.deepEqual(p.steps.decode.map((d) => d.batch), [1, 2, 4]);
      assert.ok(p.steps.decode.every((d) => d.stepS > 0) && p.steps.prefill.length === 2);
      assert.equal(p.buckets.length, 2);
      for (const b of p.buckets) {
        assert.ok(b.points.length >= 1);
        assert.ok(b.maxRate > 0, `bucket ${b.inputTokens}x${b.outputTokens}: nothing met a 2 s TTFT on stories260K`);
        assert.ok(b.points.filter((x) => x.meets).every((x) => x.failed === 0 && x.lost === 0));
      }
      // The calibration file is what services/fleet/calibration.ts reads (schema-valid whatever the fit gives).
      const cal = parseCalibrationFile(JSON.parse(readFileSync(join(out, 'ci-cpu.calibration.json'), 'utf8')), 'ci-cpu.calibration.json');
      assert.equal(cal.engine.kind, 'measured');
      assert.equal(cal.swapBytesPerS, p.moves.swapBytesPerS);
      assert.equal(cal.workerStartS, p.workerStartS);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('--deadline-s: past it no sweep starts, yet the profile and calibration files are written and the cut noted', { skip: needsData(), timeout: 120_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'profile-test-'));
    try {
      const r = cli(['profile', '--model-path', STORIES260K_GGUF, '--quick', '--backend', 'cpu', '--threads', '1', '--device', 'ci-cpu', '--out', out, '--deadline-s', '0.001'], 100_000);
      assert.equal(r.status, 0, r.stderr.slice(-3000));
      const p = JSON.parse(readFileSync(join(out, 'ci-cpu.json'), 'utf8')) as Profile;
      assert.equal(p.buckets.length, 0);
      assert.equal(p.notes.filter((n) => /skipped: the --deadline-s had passed/.test(n)).length, 2);
      assert.deepEqual(p.steps.decode.map((d) => d.batch), [1, 2, 4], 'the engine steps are measured before the deadline applies');
      assert.ok(readFileSync(join(out, 'ci-cpu.calibration.json'), 'utf8').length > 0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
