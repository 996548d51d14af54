// The import graph holds the floors of design.md (rules in .dependency-cruiser.mjs): nothing imports up a floor,
// no cycles, no test code or OpenTelemetry SDK below the entry points. A violation fails `npm test`, hence CI.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Every folder with our code (native/bench only while it exists: its benchmarks move under bench/). */
const SCANNED = ['contracts', 'services', 'native/ts', 'native/bench', 'bin', 'scripts', 'bench', 'test'].filter((d) => existsSync(join(ROOT, d)));

interface Violation { rule: { name: string }; from: string; to: string; cycle?: { name: string }[] }

describe('import graph', () => {
  it('has no import up a floor, no cycle and no test or telemetry-SDK code below the entry points', async () => {
    const bin = new URL('node_modules/dependency-cruiser/bin/dependency-cruise.mjs', `file://${ROOT}`).pathname;
    const { stdout } = await promisify(execFile)(process.execPath, [
      bin, '--config', '.dependency-cruiser.mjs', '--output-type', 'json', ...SCANNED,
    ], { cwd: ROOT, maxBuffer: 256 * 1024 * 1024, timeout: 300_000 }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    const result = JSON.parse(stdout) as { summary: { violations: Violation[]; totalCruised: number } };
    const lines = result.summary.violations.map((v) =>
      `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name).join(' -> ')})` : ''}`);
    assert.deepEqual(lines, []);
    // The check saw the tree: contracts, services, native/ts and the tests (not an empty scan).
    assert.ok(result.summary.totalCruised > 150, `modules cruised: ${result.summary.totalCruised}`);
  });
});
