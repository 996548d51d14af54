// The int16 decode GEMV's units (native/src/engine/cuda/quant_dot.cuh) replayed on the CPU: bench/quant/
// int_units_check.cc, built here with g++, quantizes X into the kernel's permuted slots and dots every unit of every
// block type with them, against the float reference of engine/quant_blocks.h. No GPU needed; the GPU bench
// (bench/quant/gemv_bench.cu) checks the kernel itself.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { makeTempDir } from '../helpers/make-model.ts';
import { needsTool } from '../helpers/requires.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('int16 GEMV units on the CPU', { skip: needsTool('g++') }, () => {
  it('every type: each unit and slot gives the float reference on int16-rounded X (1e-5) and on X (1e-3)', async () => {
    const exe = join(await makeTempDir('int-units'), 'int_units_check');
    execFileSync('g++', ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', `-I${join(root, 'native', 'src')}`,
      join(root, 'bench', 'quant', 'int_units_check.cc'), '-o', exe], { stdio: 'pipe' });
    const r = spawnSync(exe, { encoding: 'utf8' });
    const lines = r.stdout.trim().split('\n');
    assert.equal(r.status, 0, `int_units_check failed:\n${r.stdout}${r.stderr}`);
    // 2 row widths x 5 types x 3 rows of X, then the summary.
    assert.equal(lines.filter((l) => l.endsWith(' ok')).length, 30, r.stdout);
    assert.equal(lines.at(-1), 'int16 units: OK');
  });
});
