// The int16 and dp4a decode GEMVs' units (native/src/engine/cuda/quant_dot.cuh, quant_dp4a.cuh) replayed on the
// CPU: bench/quant/int_units_check.cc and dp4a_check.cc, built here with g++, quantize X into each kernel's permuted
// slots and dot every unit of every block type with them, against the float reference of engine/quant_blocks.h. No
// GPU needed; the GPU bench (bench/quant/gemv_bench.cu) checks the kernels themselves.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { makeTempDir } from '../helpers/make-model.ts';
import { needsTool } from '../helpers/requires.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('int16 and dp4a GEMV units on the CPU', { skip: needsTool('g++') }, () => {
  it('int16: every type: each unit and slot gives the float reference on int16-rounded X (1e-5) and on X (1e-3)', async () => {
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

  it('dp4a: every type: each unit and slot gives the float reference on int8-rounded X (1e-5) and on X (3e-2)', async () => {
    const exe = join(await makeTempDir('dp4a-units'), 'dp4a_check');
    execFileSync('g++', ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', `-I${join(root, 'native', 'src')}`,
      join(root, 'bench', 'quant', 'dp4a_check.cc'), '-o', exe], { stdio: 'pipe' });
    const r = spawnSync(exe, { encoding: 'utf8' });
    const lines = r.stdout.trim().split('\n');
    assert.equal(r.status, 0, `dp4a_check failed:\n${r.stdout}${r.stderr}`);
    // Ld128U at every offset, then 3 row widths x 5 types x 3 rows of X, then the summary.
    assert.equal(lines.filter((l) => l.endsWith(' ok')).length, 1 + 45, r.stdout);
    assert.equal(lines.at(-1), 'dp4a units: OK');
  });
});
