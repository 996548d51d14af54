// The compressed disk cache, worker side (design: native/src/runtime/codec/design.md "Disk cache"): where a model's
// cache file lives, the identity it must record (its source files and layout), writing a compressed host image to it
// atomically, and keeping the folder under its byte bound by deleting the least recently used files. The native
// runtime reads and verifies the files (Runtime.load's `cache`) and writes them (Runtime.saveHostImage).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import type { Runtime } from '../../native/ts/runtime.ts';
import type { WeightLayout } from '../../native/ts/types.ts';
import type { Logger } from '../config/log.ts';

/** Cache files: `<model id>-<16 hex of the source paths>.ssc` (one per model source; its version is in the header). */
export const CACHE_EXT = '.ssc';
/** Folder under the worker's dataDir. */
export const CACHE_DIR = 'codec-cache';
/** A temporary file this old is a crashed writer's (a live one renames within minutes) and is deleted. */
const STALE_TMP_MS = 3_600_000;

export interface CacheFile {
  path: string;
  /** What the file must record to be used: the source files' path, size, mtime (ns) and inode, and the layout's hash. */
  identity: string;
}

/** sha256 of what the host image depends on besides the bytes: every tensor's placement, the groups, the segments. */
export function layoutHash(layout: WeightLayout): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({
    totalBytes: layout.totalBytes,
    tensors: layout.tensors.map((t) => [t.name, t.dtype, t.offset, t.bytes, t.group]),
    groups: layout.groups.map((g) => [g.start, g.end]),
    segments: layout.segments.map((s) => [resolve(s.file), s.fileOffset, s.bytes, s.arenaOffset]),
  }));
  return h.digest('hex');
}

function sourceFiles(layout: WeightLayout): string[] {
  return [...new Set(layout.segments.map((s) => resolve(s.file)))];
}

export class DiskCache {
  readonly dir: string;

  /**
   * @param dataDir the worker's data folder (config `dataDir`); files go to `<dataDir>/codec-cache/`
   * @param maxBytes bound of all cache files in the folder (config `hostCodec.diskCacheBytes`), bytes
   */
  constructor(dataDir: string, readonly maxBytes: number, private readonly log: Logger) {
    this.dir = join(dataDir, CACHE_DIR);
  }

  /**
   * The model's cache file and the identity it must record, from the source files as they are now (synchronous:
   * a few stat calls, so the load starts at once). Computed before the load reads the files, so a file changed
   * while it is read makes the cache written from it stale at the next load rather than wrong.
   */
  locate(modelId: string, layout: WeightLayout, layoutDigest: string): CacheFile {
    const files = sourceFiles(layout).map((f) => {
      const st = statSync(f, { bigint: true });
      return { path: f, size: st.size.toString(), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() };
    });
    const key = createHash('sha256').update(JSON.stringify(files.map((f) => f.path))).digest('hex').slice(0, 16);
    const safeId = modelId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 96);
    return {
      path: join(this.dir, `${safeId}-${key}${CACHE_EXT}`),
      identity: JSON.stringify({ format: 'swapserve-codec-cache', files, layout: layoutDigest }),
    };
  }

  /** Marks a file used now (LRU order is by mtime); a file deleted meanwhile is no error. */
  async touch(path: string): Promise<void> {
    const now = new Date();
    await utimes(path, now, now).catch(() => {});
  }

  /** Deletes a file that must not be used again (stale or corrupt); gone already is fine. */
  async remove(path: string): Promise<void> {
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  /**
   * Writes the model's compressed host image to its cache file: a fresh temporary file in the same folder, renamed
   * over the final name once complete and synced (readers see the old file or the whole new one, never a part), then
   * the folder is brought under its bound (a file larger than the bound by itself is deleted again). Resolves to the
   * bytes written, or null when the image alone is larger than the bound (nothing is written).
   */
  async save(runtime: Runtime, modelId: string, file: CacheFile, storedBytes: number): Promise<number | null> {
    if (storedBytes > this.maxBytes) {
      this.log.info({ model: modelId, code: 'codec_cache_skipped', storedBytes, maxBytes: this.maxBytes }, `codec cache: the compressed image of ${modelId} (${storedBytes} bytes) does not fit hostCodec.diskCacheBytes; not written`);
      return null;
    }
    await mkdir(this.dir, { recursive: true });
    const tmp = `${file.path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    let bytes: number;
    try {
      bytes = await runtime.saveHostImage(modelId, tmp, file.identity);
      await rename(tmp, file.path);
    } catch (e) {
      await this.remove(tmp).catch(() => {});
      throw e;
    }
    this.log.info({ model: modelId, code: 'codec_cache_written', path: file.path, bytes }, `codec cache: wrote ${modelId} (${bytes} bytes)`);
    await this.evict(file.path);
    return bytes;
  }

  /**
   * Deletes the least recently used cache files (oldest mtime first) until the folder holds at most maxBytes, never
   * `keep` (the file just written) unless it alone is over the bound; and temporary files left by crashed writers. Other workers sharing the folder may
   * delete the same files at the same time: a file already gone is skipped. Returns the deleted paths.
   */
  async evict(keep?: string, nowMs = Date.now()): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const files: { path: string; bytes: number; mtimeMs: number }[] = [];
    const deleted: string[] = [];
    for (const n of names) {
      const path = join(this.dir, n);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) continue;
      if (n.includes(`${CACHE_EXT}.tmp-`)) {
        if (nowMs - st.mtimeMs > STALE_TMP_MS) await this.remove(path).then(() => deleted.push(path), () => {});
        continue;
      }
      if (n.endsWith(CACHE_EXT)) files.push({ path, bytes: st.size, mtimeMs: st.mtimeMs });
    }
    let total = files.reduce((a, f) => a + f.bytes, 0);
    files.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of files) {
      if (total <= this.maxBytes) break;
      if (f.path === keep && f.bytes <= this.maxBytes) continue;
      await this.remove(f.path).catch(() => {});
      total -= f.bytes;
      deleted.push(f.path);
      this.log.info({ code: 'codec_cache_evicted', path: f.path, bytes: f.bytes }, `codec cache: evicted ${f.path} (least recently used; bound ${this.maxBytes} bytes)`);
    }
    return deleted;
  }
}

/** Creates the cache folder at start-up so a misconfigured dataDir fails loudly there, not at the first save. */
export function ensureCacheDir(cache: DiskCache): void {
  mkdirSync(cache.dir, { recursive: true });
}
