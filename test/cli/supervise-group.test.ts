// `swapserve up`'s Supervisor with co-located workers (issue 14): children of one GPU group get their own environment;
// a crash of one SIGTERMs the others, and once all are down the group restarts together (after the hook that checks
// the MPS daemon); a clean exit of a member is an ordinary restart of that member alone. Real child processes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supervisor } from '../../services/cli/supervise.ts';

// A stand-in: appends "<name> <pid> <GPU share>" to <dir>/<name>.log at start, exits 0 on SIGTERM.
const STAND_IN = `const [dir, name] = process.argv.slice(-2);
process.on('SIGTERM', () => process.exit(0));
require('node:fs').appendFileSync(require('node:path').join(dir, name + '.log'), name + ' ' + process.pid + ' ' + (process.env.SWAPSERVE_GPU_SHARE ?? '-') + '\\n');
setInterval(() => {}, 1000);`;

async function until(what: string, f: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Supervisor: co-located groups', () => {
  it('a crash restarts the whole GPU group together; each member keeps its environment', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-sup-group-'));
    const lines: string[] = [];
    const hooks: string[] = [];
    const starts = (name: string): string[] => (existsSync(join(dir, `${name}.log`)) ? readFileSync(join(dir, `${name}.log`), 'utf8').trim().split('\n') : []);
    const sup = new Supervisor([process.execPath, '-e', STAND_IN], process.env, (l) => lines.push(l), {
      baseMs: 50, beforeGroupRestart: async (g) => { hooks.push(`${g} ${['a', 'b'].map((n) => starts(n).length).join(',')}`); },
    });
    try {
      sup.start('a', [dir, 'a'], { group: 'gpu-0', env: { SWAPSERVE_GPU_SHARE: '2' } });
      sup.start('b', [dir, 'b'], { group: 'gpu-0', env: { SWAPSERVE_GPU_SHARE: '2' } });
      sup.start('c', [dir, 'c']);
      await until('three up', () => ['a', 'b', 'c'].every((n) => starts(n).length === 1));
      assert.deepEqual(['a', 'b', 'c'].map((n) => starts(n)[0].split(' ')[2]), ['2', '2', '-']);
      const pidB = sup.pid('b');
      process.kill(sup.pid('a')!, 'SIGKILL');
      await until('a and b restarted', () => starts('a').length === 2 && starts('b').length === 2);
      assert.notEqual(sup.pid('b'), pidB, 'b was stopped and started again with a');
      assert.equal(starts('c').length, 1, 'c, not in the group, untouched');
      assert.deepEqual(hooks, ['gpu-0 1,1'], 'the hook ran once, after both were down and before either started again');
      assert.ok(lines.some((l) => /ERROR a exited \(SIGKILL\).*restarting every process on its GPU \(gpu-0\): a, b/.test(l)), lines.join('\n'));
      assert.deepEqual(starts('b').map((l) => l.split(' ')[2]), ['2', '2'], 'the environment survives the restart');
      // A clean exit of one member is no GPU fault: only it restarts.
      const pidA = sup.pid('a');
      process.kill(sup.pid('b')!, 'SIGTERM');
      await until('b restarted alone', () => starts('b').length === 3);
      assert.equal(sup.pid('a'), pidA);
      assert.equal(hooks.length, 1);
    } finally {
      await sup.stop(5000);
      assert.equal(readdirSync(dir).length, 3);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
