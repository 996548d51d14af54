// LocalProcessProvider with real child processes: ids and devices on the command line, one GPU per worker,
// stop (SIGTERM, then SIGKILL), exit reporting, and a clear error when the command cannot start.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { readFileSync } from 'node:fs';
import { needsTool } from '../helpers/requires.ts';

// A stand-in worker: once its SIGTERM handler is set it creates <dir>/<id>, then stays up until SIGTERM and
// exits with 10 + its --device (or 9 without one).
const standIn = (dir: string): string[] => [
  '-e',
  `const a = process.argv; const d = a.indexOf('--device'); const id = a[a.indexOf('--id') + 1];
   process.on('SIGTERM', () => process.exit(d < 0 ? 9 : 10 + Number(a[d + 1])));
   require('node:fs').writeFileSync(require('node:path').join(${JSON.stringify(dir)}, id), '');
   setInterval(() => {}, 1000);`,
  '--',
];

/** Resolves once <dir>/<name> exists. */
function ready(dir: string, name: string): Promise<void> {
  return new Promise((resolve) => {
    const w = watch(dir, () => {
      if (existsSync(join(dir, name))) {
        w.close();
        resolve();
      }
    });
    if (existsSync(join(dir, name))) {
      w.close();
      resolve();
    }
  });
}

describe('LocalProcessProvider', () => {
  it('gives each worker its own GPU, refuses a start when all are taken, and reports exits', async () => {
    const exits = new Map<string, number | null>();
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-provider-'));
    const p = new LocalProcessProvider({ baseArgs: standIn(dir), gpus: 2, stdio: 'ignore', onExit: (id, code) => exits.set(id, code) });
    try {
      await p.start('w1', { model: null });
      await p.start('w2', { model: null });
      await Promise.all([ready(dir, 'w1'), ready(dir, 'w2')]);
      await assert.rejects(p.start('w3', { model: null }), /all 2 GPUs have a worker/);
      await assert.rejects(p.start('w1', { model: null }), /already running/);
      assert.deepEqual(p.running().sort(), ['w1', 'w2']);
      await p.stop('w2');
      assert.equal(exits.get('w2'), 11);
      // The freed GPU goes to the next worker.
      await p.start('w4', { model: null });
      await ready(dir, 'w4');
      await p.stop('w4');
      assert.equal(exits.get('w4'), 11);
      await p.stop('w1');
      assert.equal(exits.get('w1'), 10);
      assert.deepEqual(p.running(), []);
    } finally {
      await Promise.allSettled(p.running().map((id) => p.stop(id)));
      await p.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts a GPU\'s worker under its placement (issue 16): the NUMA prefix execs it, its host budget in the env', { skip: needsTool('numactl') }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-provider-'));
    const p = new LocalProcessProvider({
      gpus: 2, stdio: 'ignore',
      // Written aside, then renamed: the test reads it whole once the name appears.
      baseArgs: ['-e', `process.on('SIGTERM', () => process.exit(0)); const a = process.argv; const fs = require('node:fs');
        const f = require('node:path').join(${JSON.stringify(dir)}, a[a.indexOf('--id') + 1]);
        fs.writeFileSync(f + '.tmp', JSON.stringify({ host: process.env.SWAPSERVE_HOST_BYTES, device: a[a.indexOf('--device') + 1],
          maps: fs.readFileSync('/proc/self/numa_maps', 'utf8').split('\\n')[0] }));
        fs.renameSync(f + '.tmp', f); setInterval(() => {}, 1000);`, '--'],
      placement: (d) => ({ prefix: ['numactl', '--cpunodebind=0', '--membind=0'], env: { SWAPSERVE_HOST_BYTES: String(1000 + d) } }),
    });
    try {
      await p.start('w0', { model: null });
      await p.start('w1', { model: null });
      await Promise.all([ready(dir, 'w0'), ready(dir, 'w1')]);
      const seen = ['w0', 'w1'].map((id) => JSON.parse(readFileSync(join(dir, id), 'utf8')) as { host: string; device: string; maps: string });
      assert.deepEqual(seen.map((x) => [x.device, x.host]), [['0', '1000'], ['1', '1001']]);
      for (const x of seen) assert.match(x.maps, / bind:0 /, 'its memory policy is bound by numactl');
    } finally {
      await Promise.allSettled(p.running().map((id) => p.stop(id)));
      await p.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stopOnClose stops what it started; a worker that ignores SIGTERM is killed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-provider-'));
    const signals: (NodeJS.Signals | null)[] = [];
    const p = new LocalProcessProvider({
      baseArgs: ['-e', `process.on('SIGTERM', () => {}); require('node:fs').writeFileSync(${JSON.stringify(join(dir, 'up'))}, ''); setInterval(() => {}, 1000);`, '--'],
      stdio: 'ignore', stopOnClose: true, killAfterMs: 200, onExit: (_id, _code, signal) => signals.push(signal),
    });
    await p.start('stubborn', { model: null });
    await ready(dir, 'up');
    await p.close();
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(signals, ['SIGKILL']);
    await p.close(); // idempotent
    assert.deepEqual(p.running(), []);
    await assert.rejects(p.start('late', { model: null }), /closed/);
  });

  it('a command that cannot be spawned rejects the start', async () => {
    const p = new LocalProcessProvider({ command: '/nonexistent/swapserve-node', stdio: 'ignore' });
    await assert.rejects(p.start('w1', { model: null }), /ENOENT/);
    assert.deepEqual(p.running(), []);
    await p.close();
  });
});
