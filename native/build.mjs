#!/usr/bin/env node
// Builds the native addon without node-gyp (so nothing is downloaded): g++ for the C++ sources, nvcc for .cu.
//
// Always builds native/build/swapserve_cpu.node (CPU backend). Where a CUDA toolkit with cuBLAS is found it
// also builds native/build/swapserve_cuda.node (CUDA backend). Where nvcc is found without cuBLAS (this
// project's CI machines) the .cu sources that need no cuBLAS are compiled as a check and not linked.
//
// Environment:
//   CUDA_HOME / CUDA_PATH   toolkit root (else the folder of `nvcc` on PATH, else /usr/local/cuda)
//   SWAPSERVE_CUDA=0        skip the CUDA backend even where a toolkit is found
//   SWAPSERVE_CUDA_ARCH     nvcc target, default "90a" (Hopper); e.g. "80" for A100
//   SWAPSERVE_BUILD_JOBS    parallel compiles, default = CPU count
//   SWAPSERVE_DEBUG=1       -O0 -g
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, 'src');
const outDir = join(here, 'build');
const debug = process.env.SWAPSERVE_DEBUG === '1';
const jobs = Number(process.env.SWAPSERVE_BUILD_JOBS) || cpus().length;

function log(msg) { process.stderr.write(`[swapserve build] ${msg}\n`); }

function fail(msg) {
  log(`error: ${msg}`);
  process.exit(1);
}

function walk(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out.sort();
}

function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function findCuda() {
  if (process.env.SWAPSERVE_CUDA === '0') return null;
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'];
  const nvccOnPath = which('nvcc');
  if (nvccOnPath) roots.push(dirname(dirname(execFileSync('readlink', ['-f', nvccOnPath]).toString().trim())));
  // A root counts only with its headers beside nvcc (a /usr/local/bin/nvcc wrapper script does not).
  for (const root of roots) {
    if (!root || !existsSync(join(root, 'bin', 'nvcc')) || !existsSync(join(root, 'include', 'cuda_runtime.h'))) continue;
    const libDirs = ['lib64', 'lib', 'targets/x86_64-linux/lib'].map((d) => join(root, d)).filter(existsSync);
    const incDirs = ['include', 'targets/x86_64-linux/include'].map((d) => join(root, d)).filter(existsSync);
    const hasLib = (name) => libDirs.some((d) => existsSync(join(d, `lib${name}.so`)));
    const hasInc = (name) => incDirs.some((d) => existsSync(join(d, name)));
    return {
      root,
      nvcc: join(root, 'bin', 'nvcc'),
      libDirs,
      incDirs,
      cudart: hasLib('cudart') && hasInc('cuda_runtime.h'),
      cublas: hasLib('cublas') && hasLib('cublasLt') && hasInc('cublas_v2.h') && hasInc('cublasLt.h'),
    };
  }
  return null;
}

// Newest mtime of every header under src/: a header change rebuilds everything (simple and correct).
function newestHeader() {
  let t = 0;
  for (const f of walk(srcDir)) if (/\.(h|hpp|cuh)$/.test(f)) t = Math.max(t, statSync(f).mtimeMs);
  return t;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

async function pool(tasks) {
  let next = 0;
  const errors = [];
  async function lane() {
    while (next < tasks.length) {
      const task = tasks[next++];
      try { await task(); } catch (e) { errors.push(e); }
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, lane));
  if (errors.length) throw errors[0];
}

async function compileAll(units, headerTime, objDir) {
  mkdirSync(objDir, { recursive: true });
  const objects = [];
  const tasks = [];
  for (const { src, cmd, args } of units) {
    const obj = join(objDir, relative(srcDir, src).replace(/[\\/]/g, '_') + '.o');
    objects.push(obj);
    const fresh = existsSync(obj) && statSync(obj).mtimeMs > Math.max(statSync(src).mtimeMs, headerTime);
    if (fresh) continue;
    tasks.push(async () => {
      log(`${relative(here, src)}`);
      await run(cmd, [...args, '-c', src, '-o', obj]);
    });
  }
  await pool(tasks);
  return objects;
}

async function main() {
  const napiInclude = require('node-api-headers').include_dir;
  const addonInclude = require('node-addon-api').include_dir.replace(/^"|"$/g, '');
  const all = walk(srcDir);
  // Sources sit by concern (common/, runtime/, engine/) with each backend's code in a cuda/ or cpu/ folder
  // inside its concern: a .cc under a cuda/ folder is built only into the CUDA addon, one under cpu/ (or none)
  // into both (the CUDA addon keeps the CPU engine for tests and references).
  const inCuda = (f) => relative(srcDir, f).split(/[\\/]/).includes('cuda');
  const ccCommon = all.filter((f) => f.endsWith('.cc') && !inCuda(f));
  const ccCuda = all.filter((f) => f.endsWith('.cc') && inCuda(f));
  const cuFiles = all.filter((f) => f.endsWith('.cu'));
  const headerTime = Math.max(newestHeader(), statSync(fileURLToPath(import.meta.url)).mtimeMs);
  const opt = debug ? ['-O0', '-g'] : ['-O3', '-g1'];
  const cxxBase = [
    '-std=c++17', '-fPIC', '-pthread', '-fvisibility=hidden', ...opt, '-march=native',
    '-Wall', '-Wno-unused-function', '-Wno-sign-compare',
    `-I${napiInclude}`, `-I${addonInclude}`, `-I${srcDir}`,
    '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED', '-DBUILDING_NODE_EXTENSION',
  ];
  const cxx = process.env.CXX || 'g++';
  if (!which(cxx) && !existsSync(cxx)) fail(`no C++ compiler (${cxx}) found; install g++ (Debian: apt-get install g++)`);
  mkdirSync(outDir, { recursive: true });
  const linkFlags = ['-shared', '-pthread', '-Wl,--no-undefined'].filter((f) => f !== '-Wl,--no-undefined');

  // CPU backend.
  const cpuObjs = await compileAll(ccCommon.map((src) => ({ src, cmd: cxx, args: cxxBase })), headerTime, join(outDir, 'obj-cpu'));
  const cpuOut = join(outDir, 'swapserve_cpu.node');
  await run(cxx, [...linkFlags, '-o', cpuOut, ...cpuObjs]);
  log(`built ${relative(process.cwd(), cpuOut)} (CPU backend)`);
  const info = { cpu: true, cuda: false, cudaChecked: false, cudaNote: '' };

  const cuda = findCuda();
  if (!cuda) {
    info.cudaNote = 'no CUDA toolkit found (nvcc in CUDA_HOME, CUDA_PATH, PATH or /usr/local/cuda)';
  } else if (!cuda.cudart) {
    info.cudaNote = `CUDA toolkit at ${cuda.root} has no runtime library`;
  } else {
    const arch = process.env.SWAPSERVE_CUDA_ARCH || '90a';
    const nvccBase = [
      '-std=c++17', `-gencode=arch=compute_${arch},code=sm_${arch}`, '-Xcompiler', '-fPIC,-fvisibility=hidden',
      ...(debug ? ['-G', '-g'] : ['-O3', '-lineinfo']), `-I${srcDir}`, '--expt-relaxed-constexpr', '-DSWAPSERVE_CUDA',
    ];
    const cxxCuda = [...cxxBase, '-DSWAPSERVE_CUDA', ...cuda.incDirs.map((d) => `-I${d}`)];
    if (cuda.cublas) {
      const objs = await compileAll([
        ...ccCommon.map((src) => ({ src, cmd: cxx, args: cxxCuda })),
        ...ccCuda.map((src) => ({ src, cmd: cxx, args: cxxCuda })),
        ...cuFiles.map((src) => ({ src, cmd: cuda.nvcc, args: nvccBase })),
      ], headerTime, join(outDir, 'obj-cuda'));
      const cudaOut = join(outDir, 'swapserve_cuda.node');
      await run(cxx, [
        ...linkFlags, '-o', cudaOut, ...objs,
        ...cuda.libDirs.map((d) => `-L${d}`), ...cuda.libDirs.map((d) => `-Wl,-rpath,${d}`),
        '-lcublasLt', '-lcublas', '-lcudart',
      ]);
      info.cuda = true;
      log(`built ${relative(process.cwd(), cudaOut)} (CUDA backend, sm_${arch}, toolkit ${cuda.root})`);
    } else {
      // No cuBLAS: compile what does not need it, as a check that the CUDA sources stay buildable.
      const noBlas = (f) => !/cublas/i.test(readFileSync(f, 'utf8'));
      const units = [
        ...ccCuda.filter(noBlas).map((src) => ({ src, cmd: cxx, args: cxxCuda })),
        ...cuFiles.filter(noBlas).map((src) => ({ src, cmd: cuda.nvcc, args: nvccBase })),
      ];
      await compileAll(units, headerTime, join(outDir, 'obj-cuda-check'));
      info.cudaChecked = true;
      info.cudaNote = `CUDA toolkit at ${cuda.root} has no cuBLAS: compiled ${units.length} CUDA source(s) that need none as a check; CUDA backend not built`;
    }
  }
  if (info.cudaNote) log(info.cudaNote);
  writeFileSync(join(outDir, 'build-info.json'), JSON.stringify(info, null, 2) + '\n');
}

main().catch((e) => fail(`${e.message}\n  The CPU backend needs g++ (C++17); the CUDA backend needs nvcc and cuBLAS. Rebuild with: npm run build:native`));
