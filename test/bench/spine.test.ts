// `swapserve bench spine` as a user runs it: it prints its table and the process exits by itself (it used to hang on
// a blocking Redis connection nobody closed); bad arguments are a usage error (exit code 2).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { run } from '../../bench/spine/spine.ts';
import { DATA_MODELS } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;

describe('bench spine', () => {
  it('rejects bad arguments with exit code 2', async () => {
    assert.equal(await run(['--requests', 'x']), 2);
    assert.equal(await run(['--clients', '0']), 2);
    assert.equal(await run(['--bogus']), 2);
  });

  it('prints its table and exits by itself', { skip: needsData(), timeout: 300_000 }, () => {
    // A hang would run into spawnSync's timeout: status null and signal SIGKILL.
    const r = spawnSync(process.execPath, [BIN, 'bench', 'spine', '--requests', '20', '--seconds', '1', '--clients', '4', '--models-dir', DATA_MODELS],
      { encoding: 'utf8', timeout: 240_000, killSignal: 'SIGKILL' });
    assert.equal(r.signal, null, `bench spine did not exit within 240 s:\n${r.stderr.slice(-2000)}`);
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.match(r.stdout, /\| enqueue -> worker start \(SDK, warm\) \| [\d.]+ ms \| [\d.]+ ms \|/);
    assert.match(r.stdout, /\| gateway POST \/v1\/completions, 4 clients \| [\d.]+ ms \| [\d.]+ ms \| \*\*\d+ req\/s\*\*, \d+ ok, 0 errors/);
  });
});
