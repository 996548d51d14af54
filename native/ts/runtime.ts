// The weights runtime: models across disk / pinned host / GPU tiers, moved by native threads (never on the event
// loop), with budgets, per-group readiness for the engine and typed errors. Threads and ownership:
// native/src/runtime/design.md.
import { statSync } from 'node:fs';

import type { MoveKind, Residency } from '../../contracts/vocab.ts';
import { RESIDENCY } from '../../contracts/vocab.ts';
import { loadAddon, resolveBackend, type Backend, type NativeLayout, type NativeMoveResult, type NativeRuntimeObject, type RuntimeAddon } from './addon.ts';
import { captureSite, describe, fromNative, invalidArgument, SwapserveNativeError } from './errors.ts';
import type { WeightLayout } from './types.ts';

export interface RuntimeOptions {
  /** Which backend to load. @defaultValue env SWAPSERVE_BACKEND, else 'auto' (CUDA where built and a GPU is visible, else CPU) */
  backend?: 'auto' | 'cpu' | 'cuda';
  /** CUDA device ordinal. @defaultValue 0 */
  device?: number;
  /** Pinned host pool, bytes; pinned once in the background at open and reused by every move. */
  hostBudgetBytes: number;
  /** GPU weights pool, bytes (one allocation; each resident model is one contiguous arena in it). */
  gpuBudgetBytes: number;
  /** KV cache + activations pool used by the engine (GetScratchPool), bytes. */
  scratchBudgetBytes: number;
  /** Pinned staging for loadToGpu (disk -> staging -> GPU), bytes, cut into 16 slots. @defaultValue 512 MiB (cuda), 32 MiB (cpu) */
  stagingBytes?: number;
  /** Disk reader threads shared by every move. @defaultValue 8 (cuda), 2 (cpu) */
  readThreads?: number;
  /**
   * Pin the host pool only when a move first needs it, or at pinHostPool(), instead of at open. A fresh worker
   * sets it so that pinning tens of GB does not compete with its first loadToGpu (which needs only the staging
   * ring). `hostReady` resolves once the pool is pinned, whenever that starts. @defaultValue false
   */
  deferHostPin?: boolean;
  /**
   * Compressed swap-in on the GPU: recompute every decoded chunk's checksum and compare before the model is
   * reported landed (debug; the CPU decoder always verifies). @defaultValue env SWAPSERVE_CODEC_VERIFY === '1'
   */
  codecVerify?: boolean;
  /**
   * Host-tier codec threads: the encoder's (0 = all cores) and the CPU backend's compressed swap-in decoder's
   * (0 = all cores, at most 8). @defaultValue 0
   */
  codecThreads?: number;
  /**
   * Device work buffer for compressed swap-ins on the GPU (staging slots + the image's tables;
   * native/src/runtime/codec/design.md "Device memory"), carved out of `gpuBudgetBytes`: the gpu pool that holds
   * the models is `gpuBudgetBytes - codecWorkBytes` (`usage().gpu.budgetBytes`), so the device holds exactly
   * gpuBudgetBytes + scratchBudgetBytes. The CPU backend shrinks its gpu pool the same way (same budgets) and
   * allocates nothing for it. 0 or at least 5 MiB (CODEC_MIN_WORK_BYTES). 0: the CUDA backend refuses
   * compress(); a model whose tables would not fit beside the slots stays raw (its reason says so). @defaultValue 0
   */
  codecWorkBytes?: number;
}

/** Smallest codec work buffer: 4 staging slots of 1 MiB + 1 MiB of tables (native codec::kMinWorkBytes). */
export const CODEC_MIN_WORK_BYTES = 5 * 1024 * 1024;
/** The worker's default codec work buffer (config hostCodec.workBytes): 128 MiB of staging + 16 MiB of tables. */
export const DEFAULT_CODEC_WORK_BYTES = 144 * 1024 * 1024;

/** A model's host-tier codec state (runtime/compress.cc). */
export type HostCodecState = 'none' | 'encoding' | 'compressed' | 'raw' | 'failed';
export const HOST_CODEC_STATES: readonly HostCodecState[] = ['none', 'encoding', 'compressed', 'raw', 'failed'];

export interface HostCodecInfo {
  state: HostCodecState;
  /** Compressed image bytes / raw arena bytes, once measured (compressed or raw); 0 before. */
  ratio: number;
  /** Bytes the host tier holds for the model while it is compressed; 0 otherwise. */
  storedBytes: number;
}

export interface CompressOptions {
  /** Keep the raw copy when compressed/raw is above this (random weights measure ~1.0). @defaultValue 0.9 */
  maxRatio?: number;
}

export interface CompressResult extends HostCodecInfo {
  modelId: string;
  /** Why the model stays raw (or failed); '' when compressed. */
  reason: string;
  rawBytes: number;
  /** Encoding alone, ms (on a move thread and its helpers, never the event loop). */
  encodeMs: number;
  wallMs: number;
}

/** Codec dtype codes of the addon's compress(): the float formats it models; anything else is stored raw (-1). */
const CODEC_DTYPE: Record<string, number> = { bf16: 0, f16: 1, f32: 2 };

/** How a load's compressed disk cache file went (native/src/runtime/codec/design.md "Disk cache"). */
export type DiskCacheOutcome = 'hit' | 'miss' | 'stale' | 'corrupt' | 'unusable';
export const DISK_CACHE_OUTCOMES: readonly DiskCacheOutcome[] = ['hit', 'miss', 'stale', 'corrupt', 'unusable'];

/** Largest identity a cache file records (native codec::kMaxIdentityBytes). */
const MAX_IDENTITY_BYTES = 1 << 20;

export interface LoadOptions extends MoveOptions {
  /**
   * Try this compressed disk cache file first: when its recorded identity equals `identity` byte for byte and every
   * checksum verifies, its image is read into the host tier (state 'compressed', no encode) instead of the raw
   * files. Otherwise (missing, stale, truncated, corrupt, or not usable by this runtime) the raw files are read in
   * the same move and the result's `cache` says why. Never deletes the file.
   */
  cache?: { path: string; identity: string };
}

export interface MoveOptions {
  /** Bytes landed so far and in all; called on the event loop as chunks (load) or groups (swapIn) land. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Group g and every group before it have landed (ascending, each once). */
  onGroup?: (group: number) => void;
}

export interface MoveResult {
  kind: MoveKind;
  modelId: string;
  /** Bytes moved (load/loadToGpu: the layout's segment bytes; swapIn: the groups' byte ranges; evict/drop: bytes freed). */
  bytes: number;
  /** What the caller waited for, from the move thread's start to done, ms. */
  wallMs: number;
  /** Between CUDA events around the device copies (CPU backend: the copies' own time), ms; 0 for load/evict/drop. */
  deviceMs: number;
  /** bytes / wallMs, GB/s (1e9 bytes); 0 for evict and drop (bookkeeping, nothing is copied). */
  gbps: number;
  /** A load given a cache file: what became of it ('hit': `bytes` is the cache file's size, read instead of the raw files). */
  cache?: { outcome: DiskCacheOutcome; reason: string };
}

export interface PoolUsage {
  budgetBytes: number;
  usedBytes: number;
  /** Host pool only: whether it has been pinned yet. */
  ready?: boolean;
}

const MiB = 1024 * 1024;
const MAX_BYTES = Number.MAX_SAFE_INTEGER;

function defaultsFor(backend: Backend): { device: number; stagingBytes: number; readThreads: number } {
  return backend === 'cuda'
    ? { device: 0, stagingBytes: 512 * MiB, readThreads: 8 }
    : { device: 0, stagingBytes: 32 * MiB, readThreads: 2 };
}

function isBytes(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_BYTES;
}

function checkId(id: unknown, what = 'modelId'): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw invalidArgument('a non-empty string (at most 256 characters)', what, id);
  return id;
}

function checkMoveOptions(o: unknown): MoveOptions {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null) throw invalidArgument('an object or undefined', 'move options', o);
  const m = o as MoveOptions;
  if (m.onProgress !== undefined && typeof m.onProgress !== 'function') throw invalidArgument('a function', 'onProgress', m.onProgress);
  if (m.onGroup !== undefined && typeof m.onGroup !== 'function') throw invalidArgument('a function', 'onGroup', m.onGroup);
  return m;
}

/** Validates a WeightLayout against its files and converts it for the addon (which trusts its input). */
export function toNativeLayout(layout: WeightLayout): NativeLayout {
  if (typeof layout !== 'object' || layout === null) throw invalidArgument('a WeightLayout object', 'layout', layout);
  const { totalBytes, segments, groups } = layout;
  if (!isBytes(totalBytes) || totalBytes === 0) throw invalidArgument('a positive integer number of bytes', 'layout.totalBytes', totalBytes);
  if (!Array.isArray(groups) || groups.length === 0) throw invalidArgument('a non-empty array', 'layout.groups', groups);
  if (!Array.isArray(segments) || segments.length === 0) throw invalidArgument('a non-empty array', 'layout.segments', segments);
  const outGroups: [number, number][] = [];
  let prevEnd = 0;
  groups.forEach((g, i) => {
    const ok = typeof g === 'object' && g !== null && isBytes(g.start) && isBytes(g.end) && g.start <= g.end && g.end <= totalBytes && g.start >= prevEnd;
    if (!ok) throw invalidArgument(`{ start, end } with ${prevEnd} <= start <= end <= totalBytes (${totalBytes})`, `layout.groups[${i}]`, g && typeof g === 'object' ? `{ start: ${describe(g.start)}, end: ${describe(g.end)} }` : g);
    outGroups.push([g.start, g.end]);
    prevEnd = g.end;
  });
  const files: string[] = [];
  const fileIndex = new Map<string, number>();
  const fileSize = new Map<string, number>();
  const outSegs: [number, number, number, number][] = [];
  let prevSegEnd = 0;
  let gi = 0;
  segments.forEach((s, i) => {
    const what = `layout.segments[${i}]`;
    if (typeof s !== 'object' || s === null) throw invalidArgument('a CopySegment object', what, s);
    if (typeof s.file !== 'string' || s.file.length === 0) throw invalidArgument('a file path', `${what}.file`, s.file);
    if (!isBytes(s.fileOffset)) throw invalidArgument('a non-negative integer', `${what}.fileOffset`, s.fileOffset);
    if (!isBytes(s.bytes) || s.bytes === 0) throw invalidArgument('a positive integer', `${what}.bytes`, s.bytes);
    if (!isBytes(s.arenaOffset) || s.arenaOffset < prevSegEnd || s.arenaOffset + s.bytes > totalBytes) {
      throw invalidArgument(`an arenaOffset >= ${prevSegEnd} (segments sorted, not overlapping) with arenaOffset + bytes <= ${totalBytes}`, `${what}.arenaOffset`, s.arenaOffset);
    }
    // Every byte of the segment must lie inside the groups (which are ascending), so each lands in some group.
    let at = s.arenaOffset;
    const end = s.arenaOffset + s.bytes;
    while (at < end) {
      while (gi < outGroups.length && outGroups[gi][1] <= at) gi++;
      if (gi >= outGroups.length || outGroups[gi][0] > at) throw invalidArgument('a segment whose bytes all lie inside layout.groups', what, `bytes at arena offset ${at} outside every group`);
      at = Math.min(end, outGroups[gi][1]);
    }
    prevSegEnd = end;
    let idx = fileIndex.get(s.file);
    if (idx === undefined) {
      let size: number;
      try {
        const st = statSync(s.file);
        if (!st.isFile()) throw new Error('not a regular file');
        size = st.size;
      } catch (e) {
        throw new SwapserveNativeError('io', `cannot use model file ${s.file}: ${e instanceof Error ? e.message : String(e)}`);
      }
      idx = files.length;
      files.push(s.file);
      fileIndex.set(s.file, idx);
      fileSize.set(s.file, size);
    }
    const size = fileSize.get(s.file) ?? 0;
    if (s.fileOffset + s.bytes > size) {
      throw new SwapserveNativeError('io', `${s.file} has ${size} bytes but ${what} reads [${s.fileOffset}, ${s.fileOffset + s.bytes})`);
    }
    outSegs.push([idx, s.fileOffset, s.bytes, s.arenaOffset]);
  });
  return { totalBytes, files, segments: outSegs, groups: outGroups };
}

export class Runtime {
  readonly backend: Backend;
  readonly deviceName: string;
  /** Resolves when the host pool and staging are pinned; rejects (typed) if pinning failed. */
  readonly hostReady: Promise<void>;
  /** The native object the engine passes to AcquireWeights / GetScratchPool. */
  readonly native: NativeRuntimeObject;
  /** The addon module this runtime loaded (the engine must use the same module). */
  readonly addon: RuntimeAddon;
  private readonly layouts = new Map<string, WeightLayout>();
  private closing: Promise<void> | null = null;

  private constructor(addon: RuntimeAddon, native: NativeRuntimeObject) {
    this.addon = addon;
    this.native = native;
    this.backend = native.backend;
    this.deviceName = native.deviceName;
    const site = captureSite();
    this.hostReady = native.whenHostReady().catch((e: unknown) => { throw fromNative(e, site); });
    this.hostReady.catch(() => { /* observed through moves and usage(); avoid an unhandled rejection */ });
  }

  /** Opens a runtime; returns at once (device pools allocated now; the host pool is pinned in the background). */
  static open(opts: RuntimeOptions): Runtime {
    if (typeof opts !== 'object' || opts === null) throw invalidArgument('a RuntimeOptions object', 'opts', opts);
    const choice = opts.backend ?? (process.env.SWAPSERVE_BACKEND as RuntimeOptions['backend']) ?? 'auto';
    if (choice !== 'auto' && choice !== 'cpu' && choice !== 'cuda') throw invalidArgument("'auto', 'cpu' or 'cuda'", 'backend (or env SWAPSERVE_BACKEND)', choice);
    for (const k of ['hostBudgetBytes', 'gpuBudgetBytes', 'scratchBudgetBytes'] as const) {
      if (!isBytes(opts[k])) throw invalidArgument('a non-negative integer number of bytes', k, opts[k]);
    }
    const backend = resolveBackend(choice);
    const o = { ...defaultsFor(backend), ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<RuntimeOptions>;
    if (!Number.isInteger(o.device) || o.device < 0 || o.device > 255) throw invalidArgument('an integer in [0, 255]', 'device', o.device);
    if (!isBytes(o.stagingBytes) || o.stagingBytes < MiB) throw invalidArgument('an integer number of bytes >= 1 MiB', 'stagingBytes', o.stagingBytes);
    if (!Number.isInteger(o.readThreads) || o.readThreads < 1 || o.readThreads > 64) throw invalidArgument('an integer in [1, 64]', 'readThreads', o.readThreads);
    if (opts.deferHostPin !== undefined && typeof opts.deferHostPin !== 'boolean') throw invalidArgument('a boolean', 'deferHostPin', opts.deferHostPin);
    if (opts.codecVerify !== undefined && typeof opts.codecVerify !== 'boolean') throw invalidArgument('a boolean', 'codecVerify', opts.codecVerify);
    const codecThreads = opts.codecThreads ?? 0;
    if (!Number.isInteger(codecThreads) || codecThreads < 0 || codecThreads > 1024) throw invalidArgument('an integer in [0, 1024]', 'codecThreads', codecThreads);
    const codecWorkBytes = opts.codecWorkBytes ?? 0;
    if (!isBytes(codecWorkBytes) || (codecWorkBytes !== 0 && (codecWorkBytes < CODEC_MIN_WORK_BYTES || codecWorkBytes > o.gpuBudgetBytes))) {
      throw invalidArgument(`0 or an integer number of bytes in [5 MiB, gpuBudgetBytes = ${o.gpuBudgetBytes}]`, 'codecWorkBytes', codecWorkBytes);
    }
    const addon = loadAddon(backend);
    const site = captureSite();
    try {
      const native = new addon.NativeRuntime({
        backend, device: o.device, hostBudgetBytes: o.hostBudgetBytes, gpuBudgetBytes: o.gpuBudgetBytes,
        scratchBudgetBytes: o.scratchBudgetBytes, stagingBytes: o.stagingBytes, readThreads: o.readThreads,
        deferHostPin: o.deferHostPin === true,
        codecVerify: opts.codecVerify ?? process.env.SWAPSERVE_CODEC_VERIFY === '1', codecThreads, codecWorkBytes,
      });
      return new Runtime(addon, native);
    } catch (e) {
      throw fromNative(e, site);
    }
  }

  /** Starts pinning a host pool opened with `deferHostPin` (no-op once started, or without the option). */
  pinHostPool(): void {
    this.native.pinHostPool();
  }

  get healthy(): boolean {
    return this.native.healthy;
  }

  /**
   * After a failure not classified sticky: asks the device whether its context still works (CUDA: waits for the
   * device's queued work, so a failure path only). A sticky error found marks the runtime unusable. Returns healthy.
   */
  probe(): boolean {
    return this.call(() => this.native.probe());
  }

  /** Makes a model known (its files on disk). Validates the layout and that every segment lies inside its file. */
  register(modelId: string, layout: WeightLayout): void {
    checkId(modelId);
    const native = toNativeLayout(layout);
    this.call(() => this.native.register(modelId, native));
    this.layouts.set(modelId, layout);
  }

  /** Forgets a model; it must be on disk only (evicted, dropped, no move in flight). */
  unregister(modelId: string): void {
    checkId(modelId);
    this.call(() => this.native.unregister(modelId));
    this.layouts.delete(modelId);
  }

  /** disk -> pinned host (from a compressed disk cache file when `o.cache` names a valid one). */
  async load(id: string, o?: LoadOptions): Promise<MoveResult> {
    let cache: { path: string; identity: string } | undefined;
    if (o?.cache !== undefined) {
      const c = o.cache as unknown;
      if (typeof c !== 'object' || c === null) throw invalidArgument('an object { path, identity }', 'cache', c);
      const { path, identity } = c as { path: unknown; identity: unknown };
      if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) throw invalidArgument('a file path', 'cache.path', path);
      if (typeof identity !== 'string' || identity.length === 0 || Buffer.byteLength(identity) > MAX_IDENTITY_BYTES) throw invalidArgument('a non-empty string of at most 1 MiB', 'cache.identity', identity);
      cache = { path, identity };
    }
    return this.move('load', id, o, cache);
  }

  /**
   * Writes the model's compressed host image (state 'compressed') to a new cache file at `path` (created
   * exclusively: name a fresh temporary file and rename it into place), recording `identity`; on a move thread.
   * Resolves to the file's bytes. The host copy stays held until the write ends, even if the model is dropped.
   */
  async saveHostImage(id: string, path: string, identity: string): Promise<number> {
    checkId(id);
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) throw invalidArgument('a file path', 'path', path);
    if (typeof identity !== 'string' || identity.length === 0 || Buffer.byteLength(identity) > MAX_IDENTITY_BYTES) throw invalidArgument('a non-empty string of at most 1 MiB', 'identity', identity);
    const site = captureSite();
    try {
      return await this.call(() => this.native.saveHostImage(id, path, identity));
    } catch (e) {
      throw fromNative(e, site);
    }
  }

  /** pinned host -> GPU, one copy per group (the host copy stays). */
  swapIn(id: string, o?: MoveOptions): Promise<MoveResult> {
    return this.move('swap_in', id, o);
  }

  /** disk -> pinned staging -> GPU, the read of chunk i+1 overlapping the copy of chunk i (no host copy kept). */
  loadToGpu(id: string, o?: MoveOptions): Promise<MoveResult> {
    return this.move('load_to_gpu', id, o);
  }

  /**
   * GPU -> none: the arena returns to the pool (bookkeeping, no device sync). state under a lease.
   * Partial residency: with `keepGroups` k > 0 the model's first k layer groups stay on the GPU as its resident
   * prefix (the model is parked on the host tier, which must hold its complete copy); the next swapIn copies only
   * the other groups. `bytes` is what returned to the pool.
   */
  async evict(id: string, o?: { keepGroups?: number }): Promise<MoveResult> {
    if (o !== undefined && (typeof o !== 'object' || o === null)) throw invalidArgument('an object or undefined', 'evict options', o);
    const keep = o?.keepGroups ?? 0;
    if (!Number.isSafeInteger(keep) || keep < 0) throw invalidArgument('a non-negative integer', 'keepGroups', keep);
    const groups = this.layouts.get(id)?.groups.length;
    if (groups !== undefined && keep > groups) throw invalidArgument(`an integer in [0, ${groups}] (the model's groups)`, 'keepGroups', keep);
    return this.now('evict', id, () => this.native.evict(id, keep));
  }

  /** Returns a parked model's resident GPU prefix to the pool (bookkeeping); `bytes` is what it held (0: none). */
  reclaimPrefix(id: string): Promise<MoveResult> {
    return this.now('evict', id, () => this.native.reclaimPrefix(id));
  }

  /** host -> none (a resident GPU prefix goes with it: it could not be completed without the host copy). */
  drop(id: string): Promise<MoveResult> {
    return this.now('drop', id, () => this.native.drop(id));
  }

  residency(id: string): { state: Residency; host: boolean; gpu: boolean; leases: number } {
    checkId(id);
    const r = this.call(() => this.native.residency(id));
    if (!(RESIDENCY as readonly string[]).includes(r.state)) throw new SwapserveNativeError('state', `unknown residency ${r.state}`);
    return { state: r.state as Residency, host: r.host, gpu: r.gpu, leases: r.leases };
  }

  /** A parked model's resident GPU prefix (partial residency): its first `groups` groups, `bytes` of the gpu pool. */
  residentPrefix(id: string): { groups: number; bytes: number } {
    checkId(id);
    const r = this.call(() => this.native.residency(id));
    return { groups: r.prefixGroups, bytes: r.prefixBytes };
  }

  /** The model's host-tier codec state: compressed or raw (and the measured ratio), encoding, failed or none. */
  hostCodec(id: string): HostCodecInfo {
    checkId(id);
    const r = this.call(() => this.native.residency(id));
    return toCodec(r.codec, r.codecRatio, r.codecStoredBytes);
  }

  /**
   * Compresses the model's host copy in the background (native threads): each tensor of a float dtype becomes a
   * codec container (exponents Huffman-coded), others are stored raw. When the whole image is at most `maxRatio`
   * of the raw arena it replaces the raw copy (the host budget then holds the compressed bytes; swapIn decodes);
   * otherwise the raw copy stays and the state is 'raw'. The model stays swappable throughout (raw until the end).
   */
  async compress(id: string, opts: CompressOptions = {}): Promise<CompressResult> {
    checkId(id);
    if (typeof opts !== 'object' || opts === null) throw invalidArgument('an object', 'compress options', opts);
    const maxRatio = opts.maxRatio ?? 0.9;
    if (typeof maxRatio !== 'number' || !(maxRatio > 0 && maxRatio <= 1)) throw invalidArgument('a number in (0, 1]', 'maxRatio', maxRatio);
    const layout = this.layouts.get(id);
    if (!layout) throw new SwapserveNativeError('invalid_argument', `unknown model "${id}": register it first`);
    const pieces: [number, number, number][] = [];
    for (const t of layout.tensors) {
      if (t.bytes === 0) continue;
      const code = CODEC_DTYPE[t.dtype] ?? -1;
      if (code < 0 && t.bytes % 2 !== 0) throw invalidArgument('tensors of an even byte size (the codec stores others raw in 2-byte units)', `tensor ${t.name}.bytes`, t.bytes);
      pieces.push([t.offset, t.bytes, code]);
    }
    const site = captureSite();
    try {
      const r = await this.call(() => this.native.compress(id, pieces, maxRatio));
      return { modelId: id, ...toCodec(r.state, r.ratio, r.storedBytes), reason: r.reason, rawBytes: r.rawBytes, encodeMs: r.encodeMs, wallMs: r.wallMs };
    } catch (e) {
      throw fromNative(e, site);
    }
  }

  /** Pool budgets and use; `gpu.budgetBytes` excludes `codecWorkBytes` (the codec work buffer carved out of gpuBudgetBytes). */
  usage(): { host: PoolUsage; gpu: PoolUsage; scratch: PoolUsage; codecWorkBytes: number } {
    return this.native.usage();
  }

  /** Checksum of the model's bytes (its segments, in arena order) on a tier, computed off the event loop. */
  async checksum(id: string, tier: 'host' | 'gpu'): Promise<string> {
    checkId(id);
    if (tier !== 'host' && tier !== 'gpu') throw invalidArgument("'host' or 'gpu'", 'tier', tier);
    const site = captureSite();
    try {
      return await this.native.checksum(id, tier);
    } catch (e) {
      throw fromNative(e, site);
    }
  }

  /** The layout a model was registered with (undefined when not registered). */
  layoutOf(id: string): WeightLayout | undefined {
    return this.layouts.get(id);
  }

  /** Idempotent: aborts moves in flight, waits for them, frees the pools (arenas under a lease live until it ends). */
  close(): Promise<void> {
    if (!this.closing) {
      const site = captureSite();
      this.closing = this.native.close().catch((e: unknown) => { throw fromNative(e, site); });
    }
    return this.closing;
  }

  private call<T>(fn: () => T): T {
    return callNative(fn);
  }

  private async move(kind: 'load' | 'swap_in' | 'load_to_gpu', id: string, o?: MoveOptions, cache?: { path: string; identity: string }): Promise<MoveResult> {
    checkId(id);
    const opts = checkMoveOptions(o);
    const site = captureSite();
    // User callbacks run on the event loop; one that throws must not break the move.
    const onProgress = opts.onProgress && ((d: number, t: number) => { try { opts.onProgress?.(d, t); } catch { /* ignored */ } });
    const onGroup = opts.onGroup && ((g: number) => { try { opts.onGroup?.(g); } catch { /* ignored */ } });
    let r: NativeMoveResult;
    try {
      r = await this.native.move(kind, id, onProgress, onGroup, cache);
    } catch (e) {
      throw fromNative(e, site);
    }
    return toResult(kind, r);
  }

  private async now(kind: 'evict' | 'drop', id: string, fn: () => NativeMoveResult): Promise<MoveResult> {
    checkId(id);
    return toResult(kind, this.call(fn));
  }
}

function toCodec(state: string, ratio: number, storedBytes: number): HostCodecInfo {
  if (!(HOST_CODEC_STATES as readonly string[]).includes(state)) throw new SwapserveNativeError('state', `unknown host codec state ${state}`);
  return { state: state as HostCodecState, ratio, storedBytes };
}

function toResult(kind: MoveKind, r: NativeMoveResult): MoveResult {
  const out: MoveResult = { kind, modelId: r.modelId, bytes: r.bytes, wallMs: r.wallMs, deviceMs: r.deviceMs, gbps: kind !== 'evict' && kind !== 'drop' && r.wallMs > 0 ? r.bytes / (r.wallMs * 1e6) : 0 };
  if (r.cache !== undefined) {
    if (!(DISK_CACHE_OUTCOMES as readonly string[]).includes(r.cache)) throw new SwapserveNativeError('state', `unknown disk cache outcome ${r.cache}`);
    out.cache = { outcome: r.cache as DiskCacheOutcome, reason: r.cacheReason ?? '' };
  }
  return out;
}

/** Runs a synchronous native call; a native error becomes a SwapserveNativeError showing the JS caller. */
export function callNative<T>(fn: () => T): T {
  const site = captureSite();
  try {
    return fn();
  } catch (e) {
    throw fromNative(e, site);
  }
}
