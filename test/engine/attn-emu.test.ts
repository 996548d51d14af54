// The decode-attention kernels (the general and fast kernels and the splits' combine, decode_attention_kernels.cuh;
// v2, decode_attention_v2_kernels.cuh) compiled with g++ from the source nvcc builds and run on the CPU under the SIMT
// emulation of bench/simt/simt.h, against a scalar softmax attention: bench/engine/attn_check.cc (paged caches,
// split contexts, grouped heads, bf16 / fp16 / fp32; nothing written outside the entries' rows). A lane that skips a
// full-mask shuffle, as v2's first version did on an H100, stops the run as a deadlock. No GPU needed.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { makeTempDir } from '../helpers/make-model.ts';
import { cudaIncludeDir, needsCudaHeaders, needsTool } from '../helpers/requires.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('decode attention kernels under the CPU SIMT emulation', { skip: needsTool('g++') || needsCudaHeaders() }, () => {
  it('general, fast and v2 kernels (and the combine of split contexts) match a scalar attention', async () => {
    const exe = join(await makeTempDir('attn-emu'), 'attn_check');
    execFileSync('g++', ['-std=c++17', '-O2', '-fno-strict-aliasing', '-Wall', '-Wextra', '-Wno-attributes', '-Wno-unknown-pragmas',
      '-Wno-sign-compare', '-Wno-unused-variable', '-Wno-unused-parameter', `-I${cudaIncludeDir()}`, `-I${join(root, 'native', 'src')}`,
      join(root, 'bench', 'engine', 'attn_check.cc'), '-o', exe], { stdio: 'pipe' });
    const r = spawnSync(exe, { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `attn_check failed:\n${r.stdout}${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    // 4 cases each for the fast kernel and v2, 4 for the general kernel, then the summary.
    assert.equal(lines.filter((l) => l.endsWith(' ok')).length, 12, r.stdout);
    assert.equal(lines.at(-1), 'attention check: OK');
  });
});
