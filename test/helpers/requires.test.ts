// The skip rule of test/helpers/requires.ts: a missing tool or data folder skips with its reason on a developer's
// machine, and fails under CI, so that CI never goes green by skipping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { onPath, skipUnless } from './requires.ts';

const root = new URL('../../', import.meta.url).pathname;

describe('test requirements', () => {
  it('skips with the reason when a need is missing, fails under CI, and is silent when present', () => {
    assert.equal(skipUnless(true, 'x is missing', false), false);
    assert.equal(skipUnless(true, 'x is missing', true), false);
    assert.equal(skipUnless(false, 'x is missing', false), 'x is missing');
    assert.throws(() => skipUnless(false, 'x is missing', true), /^Error: x is missing \(CI runs every test/);
  });

  it('finds tools on PATH only', () => {
    assert.equal(onPath('node'), true);
    assert.equal(onPath('no-such-tool-swapserve'), false);
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      assert.equal(onPath('node'), false);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('a test file that needs missing shared data skips it, and fails it with SWAPSERVE_TEST_STRICT=1', () => {
    const file = 'test/model/open-model.test.ts';
    // Without NODE_TEST_CONTEXT: the child reports as a test run of its own, not to this one.
    const { NODE_TEST_CONTEXT: _, ...outer } = process.env;
    const env = { ...outer, SWAPSERVE_SHARED_DATA: '/nonexistent-swapserve-data', CI: '', SWAPSERVE_TEST_STRICT: '' };
    const dev = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], { cwd: root, encoding: 'utf8', env });
    assert.equal(dev.status, 0, dev.stdout + dev.stderr);
    assert.match(dev.stdout, /openModel: stories260K\.gguf \(real model\).*# no shared data: \/nonexistent-swapserve-data\/models\/stories260K\/stories260K\.gguf is missing/);
    const ci = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], { cwd: root, encoding: 'utf8', env: { ...env, SWAPSERVE_TEST_STRICT: '1' } });
    assert.notEqual(ci.status, 0);
    assert.match(ci.stdout + ci.stderr, /no shared data: .* is missing .*\(CI runs every test/);
  });
});
