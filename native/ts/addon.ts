// Loads the native addon for a backend (once per backend) and says which one loaded; a failed load gives one
// actionable message. Everything that shares native objects (runtime leases, engine) must use this one module.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SwapserveNativeError } from './errors.ts';

export type Backend = 'cpu' | 'cuda';
export type BackendChoice = Backend | 'auto';

/**
 * The runtime's part of the addon (native/src/runtime/register.cc); the engine adds its own exports. The addon's
 * `testing` object (test hooks) is deliberately not typed here: only native/ts/testing.ts reads it.
 */
export interface RuntimeAddon {
  build: Backend;
  NativeRuntime: new (opts: NativeRuntimeOptions) => NativeRuntimeObject;
  hashBytes(b: Uint8Array): string;
  deviceCount(): number;
  /** Creates the device's CUDA context on a background thread (no-op in the CPU build); bin/swapserve.js, at a worker's start. */
  prewarm(device: number): void;
  /**
   * CUDA addon only: runs the process's first library matrix products (each given weight shape [n, k, dtype] and an
   * 8B-like bf16 one, at pass widths 1..512, on buffers it frees; shapes over 2^27 elements are skipped) so that no
   * request pays their one-time set-up (the library picks and loads kernels per shape); resolves to its wall ms. A
   * worker calls it before `Runtime.open` with its configured models' shapes (`warmShapes`), and with
   * SWAPSERVE_WARM_ENGINE=1 their engine shapes ([C, F, H, KVH, D, dtype], `warmModels`): one zero-weight one-layer
   * prefill + decode each, which loads the engine's own kernels for that shape.
   */
  warmUp?(device: number, shapes?: Array<[number, number, 'bf16' | 'f16']>, models?: Array<[number, number, number, number, number, 'bf16' | 'f16']>): Promise<number>;
  /** Drops a file's clean pages from the page cache (posix_fadvise DONTNEED; benches). */
  dropPageCache(path: string): void;
  /** Fraction of a file's pages in the page cache, 0..1 (mincore; benches). */
  cachedFraction(path: string): number;
}

export interface NativeRuntimeOptions {
  backend: Backend;
  device: number;
  hostBudgetBytes: number;
  gpuBudgetBytes: number;
  scratchBudgetBytes: number;
  stagingBytes: number;
  readThreads: number;
  deferHostPin: boolean;
  codecVerify?: boolean;
  codecThreads?: number;
  codecWorkBytes?: number;
}

export interface NativeCompressResult {
  state: string; reason: string; ratio: number; rawBytes: number; storedBytes: number; encodeMs: number; wallMs: number;
}

export interface NativeMoveResult {
  kind: string;
  modelId: string;
  bytes: number;
  wallMs: number;
  deviceMs: number;
  /** Load with a disk cache file: 'hit' | 'miss' | 'stale' | 'corrupt' | 'unusable', and why. */
  cache?: string;
  cacheReason?: string;
}

export interface NativeLayout {
  totalBytes: number;
  files: string[];
  /** [fileIndex, fileOffset, bytes, arenaOffset] */
  segments: [number, number, number, number][];
  /** [start, end) */
  groups: [number, number][];
}

export interface NativeRuntimeObject {
  readonly backend: Backend;
  readonly deviceName: string;
  readonly healthy: boolean;
  /** Asks the device whether its context still works (CUDA: waits for its queued work); a sticky error found marks the runtime unusable. Returns healthy. */
  probe(): boolean;
  register(id: string, layout: NativeLayout): void;
  unregister(id: string): void;
  move(kind: 'load' | 'swap_in' | 'load_to_gpu', id: string, onProgress?: (done: number, total: number) => void, onGroup?: (g: number) => void, cache?: { path: string; identity: string }): Promise<NativeMoveResult>;
  /** Writes the model's compressed host image to a new cache file (created exclusively); resolves to its bytes. */
  saveHostImage(id: string, path: string, identity: string): Promise<number>;
  /** keepGroups > 0: partial evict, the first groups stay on the gpu as the model's resident prefix. */
  evict(id: string, keepGroups?: number): NativeMoveResult;
  reclaimPrefix(id: string): NativeMoveResult;
  drop(id: string): NativeMoveResult;
  residency(id: string): { state: string; host: boolean; gpu: boolean; leases: number; prefixGroups: number; prefixBytes: number; codec: string; codecRatio: number; codecStoredBytes: number };
  /** pieces: [arenaOffset, bytes, dtype (0 bf16, 1 fp16, 2 fp32, -1 stored raw)]. */
  compress(id: string, pieces: [number, number, number][], maxRatio: number): Promise<NativeCompressResult>;
  usage(): { host: { budgetBytes: number; usedBytes: number; ready: boolean }; gpu: { budgetBytes: number; usedBytes: number }; scratch: { budgetBytes: number; usedBytes: number }; codecWorkBytes: number };
  checksum(id: string, tier: 'host' | 'gpu'): Promise<string>;
  whenHostReady(): Promise<void>;
  pinHostPool(): void;
  close(): Promise<void>;
  /** Bench floor: ms of each of `reps` plain cudaMemcpyAsync of the model's host arena (or its first `bytes`) to a separate device buffer. */
  benchFloor(id: string, reps: number, bytes?: number): Promise<number[]>;
}

const buildDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'build');
const cache = new Map<Backend, RuntimeAddon>();

export function addonPath(backend: Backend): string {
  return join(buildDir, `swapserve_${backend}.node`);
}

/** Whether the CUDA build exists (build-info.json says so and the file is there). */
export function cudaBuilt(): boolean {
  try {
    const info = JSON.parse(readFileSync(join(buildDir, 'build-info.json'), 'utf8')) as { cuda?: unknown };
    return info.cuda === true && existsSync(addonPath('cuda'));
  } catch {
    return false;
  }
}

/** Loads (once) the addon of a backend; throws addon with what to do when it cannot. */
export function loadAddon(backend: Backend): RuntimeAddon {
  const hit = cache.get(backend);
  if (hit) return hit;
  const file = addonPath(backend);
  if (!existsSync(file)) {
    const why = backend === 'cuda'
      ? 'the CUDA backend is built only where nvcc and cuBLAS are found (see native/build/build-info.json); use SWAPSERVE_BACKEND=cpu or install the CUDA toolkit and run `npm run build:native`'
      : 'run `npm run build:native` (needs g++ with C++17)';
    throw new SwapserveNativeError('addon', `the ${backend} addon ${file} is not built: ${why}`);
  }
  let mod: RuntimeAddon;
  try {
    mod = createRequire(import.meta.url)(file) as RuntimeAddon;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new SwapserveNativeError('addon', `loading ${file} failed (${msg}): rebuild it on this machine with \`npm run build:native\`${backend === 'cuda' ? ' (and check that the CUDA driver and libcudart are installed)' : ''}`);
  }
  cache.set(backend, mod);
  return mod;
}

/**
 * Picks the backend: 'cpu' or 'cuda' as asked; 'auto' (the default, or env SWAPSERVE_BACKEND) gives CUDA where
 * it is built and a GPU is visible, else CPU.
 */
export function resolveBackend(choice: BackendChoice = (process.env.SWAPSERVE_BACKEND as BackendChoice | undefined) ?? 'auto'): Backend {
  if (choice === 'cpu' || choice === 'cuda') return choice;
  if (!cudaBuilt()) return 'cpu';
  try {
    return loadAddon('cuda').deviceCount() > 0 ? 'cuda' : 'cpu';
  } catch {
    return 'cpu';
  }
}
