// The decode products' kernels — the dp4a, float and int16 GEMVs, the folded quantized decode (tuning quantFold:
// RMSNorm, RoPE + KV write, SwiGLU inside the product) and the bf16 fold (decode_kernels.cuh) — run on the CPU under the SIMT emulation of bench/simt/simt.h
// (each CUDA thread a fiber; barriers and warp shuffles emulated), compiled with g++ from the very kernel source nvcc
// builds (engine/cuda/quant_dp4a_kernels.cuh, quant_gemv_kernels.cuh, decode_kernels.cuh), against scalar references
// for every weight type: bench/quant/fold_check.cc. It checks the kernels' logic (rows, pairs, segments, scales, rounding, the cache row,
// no stray writes) where no GPU is lent; speed and the GPU's own behaviour are bench/device/s9a.sh's.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { makeTempDir } from '../helpers/make-model.ts';
import { cudaIncludeDir, needsCudaHeaders, needsTool } from '../helpers/requires.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('dp4a decode kernels under the CPU SIMT emulation', { skip: needsTool('g++') || needsCudaHeaders() }, () => {
  it('dp4a, float and int16 GEMVs, the quantized fold and the bf16 fold (q|k|v with RoPE and the KV write, gate|up with SwiGLU) match the references for every type', async () => {
    const exe = join(await makeTempDir('fold-emu'), 'fold_check');
    // -fno-strict-aliasing: the kernels read vector loads through other 32-bit types, as CUDA code does.
    execFileSync('g++', ['-std=c++17', '-O2', '-fno-strict-aliasing', '-Wall', '-Wextra', '-Wno-attributes', '-Wno-unknown-pragmas',
      '-Wno-sign-compare', '-Wno-unused-variable', `-I${cudaIncludeDir()}`, `-I${join(root, 'native', 'src')}`,
      join(root, 'bench', 'quant', 'fold_check.cc'), '-o', exe], { stdio: 'pipe' });
    const r = spawnSync(exe, { encoding: 'utf8', timeout: 120_000 });
    const lines = r.stdout.trim().split('\n');
    assert.equal(r.status, 0, `fold_check failed:\n${r.stdout}${r.stderr}`);
    // Per type (5) and row width (2): 4 dp4a cases, 2 float and 2 int16 cases, 3 q|k|v cases (q, k, v, stray writes),
    // 2 gate|up cases (values, stray writes); then q|k|v as two runs of two types in one launch (Q4_K_M at 2 widths,
    // Q8_0 + Q4_0); then the bf16 fold in 3 settings (2 q|k|v launch shapes x 4, gate|up 2, residual 2, head 1); the
    // summary.
    assert.equal(lines.filter((l) => l.endsWith(' ok')).length, 5 * 2 * (4 + 4 + 3 * 4 + 2 * 2) + 3 * 4 + 3 * 13, r.stdout);
    assert.equal(lines.at(-1), 'fold check: OK');
  });
});
