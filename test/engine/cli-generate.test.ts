// `swapserve generate` end to end: a real process on the real stories260K file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const cli = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'swapserve.js'), 'generate', ...args], { encoding: 'utf8', cwd: root });

describe('swapserve generate', { skip: needsData() }, () => {
  it('prints the reference story greedily from an empty prompt, timings on stderr', () => {
    const r = cli(STORIES260K_GGUF, '--prompt', '', '--max-tokens', '32', '--temperature', '0');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One\n');
    assert.match(r.stderr, /^prefill: 1 tokens in [\d.]+ ms/m);
    assert.match(r.stderr, /^decode: 31 tokens in [\d.]+ ms/m);
    assert.match(r.stderr, /^finish: length/m);
  });

  it('stops at a stop string and continues a prompt', () => {
    const r = cli(STORIES260K_GGUF, '--prompt', 'Once upon a time', '--max-tokens', '40', '--temperature', '0', '--stop', '.');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, ', there was a little girl named Lily\n');
    assert.match(r.stderr, /^finish: stop/m);
  });

  it('answers bad input with a clear message and a non-zero status', () => {
    const bad = cli(STORIES260K_GGUF, '--top-p', '2');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Expected a valid number for --top-p but received "2"/);
    const missing = cli('/nonexistent/model.gguf');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /not_found/);
    const long = cli(STORIES260K_GGUF, '--max-tokens', '5000', '--max-context', '512');
    assert.equal(long.status, 1);
    assert.match(long.stderr, /context_length_exceeded/);
  });
});
