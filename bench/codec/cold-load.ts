// `swapserve bench codec --disk-cache DIR`: cold disk -> host loads of one model, from its raw files and from its
// compressed disk cache file (native/src/runtime/codec/design.md "Disk cache"), alternated in the same run, each
// after the files' pages were dropped from the page cache (posix_fadvise DONTNEED per file: no root needed, other
// processes' cached files untouched; the fraction still cached is measured before each load and reported). Every
// cached load is checked bit for bit against the raw host checksum.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import type { Runtime } from '../../native/ts/runtime.ts';
import type { ModelSource } from '../../native/ts/types.ts';

export interface ColdLoads {
  cacheFile: string;
  /** Bytes of the cache file (header + metadata + image). */
  cacheBytes: number;
  saveMs: number;
  raw: { ms: number; allMs: number[]; bytes: number; cachedBefore: number };
  cache: { ms: number; allMs: number[]; bytes: number; cachedBefore: number };
  bitExact: boolean;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** The model must be compressed on the host tier (it is written out first); it ends loaded from the cache. */
export async function coldLoads(rt: Runtime, id: string, source: ModelSource, dir: string, reps: number, log: (m: string) => void): Promise<ColdLoads> {
  mkdirSync(dir, { recursive: true });
  const cacheFile = join(dir, `${id}.ssc`);
  const tmp = `${cacheFile}.tmp-${process.pid}`;
  rmSync(cacheFile, { force: true });
  rmSync(tmp, { force: true });
  const identity = JSON.stringify({ bench: source.path, bytes: source.layout.totalBytes });
  const sum = await rt.checksum(id, 'host');
  let t = performance.now();
  const cacheBytes = await rt.saveHostImage(id, tmp, identity);
  renameSync(tmp, cacheFile);
  const saveMs = performance.now() - t;
  log(`cache file written: ${(cacheBytes / 1e9).toFixed(3)} GB in ${saveMs.toFixed(0)} ms`);
  const rawFiles = [...new Set(source.layout.segments.map((s) => s.file))];
  const uncache = (files: string[]): number => {
    for (const f of files) rt.addon.dropPageCache(f);
    return Math.max(...files.map((f) => rt.addon.cachedFraction(f)));
  };
  const drop = async () => {
    if (rt.residency(id).gpu) await rt.evict(id);
    if (rt.residency(id).host) await rt.drop(id);
  };
  const raw = { allMs: [] as number[], bytes: 0, cachedBefore: 0 };
  const cache = { allMs: [] as number[], bytes: 0, cachedBefore: 0 };
  let bitExact = true;
  for (let i = 0; i < reps; i++) {
    // Alternate which goes first, so a drift of the machine's load does not favour one.
    for (const which of i % 2 === 0 ? ['raw', 'cache'] as const : ['cache', 'raw'] as const) {
      await drop();
      if (which === 'raw') {
        raw.cachedBefore = Math.max(raw.cachedBefore, uncache(rawFiles));
        const r = await rt.load(id);
        raw.allMs.push(r.wallMs);
        raw.bytes = r.bytes;
      } else {
        cache.cachedBefore = Math.max(cache.cachedBefore, uncache([cacheFile]));
        const r = await rt.load(id, { cache: { path: cacheFile, identity } });
        if (r.cache?.outcome !== 'hit') throw new Error(`the cache file was not used: ${r.cache?.outcome} ${r.cache?.reason}`);
        cache.allMs.push(r.wallMs);
        cache.bytes = r.bytes;
        if (i === 0) bitExact = (await rt.checksum(id, 'host')) === sum && bitExact;
      }
    }
    log(`cold load ${i + 1}/${reps}: raw ${raw.allMs[i].toFixed(1)} ms, from the cache ${cache.allMs[i].toFixed(1)} ms`);
  }
  return { cacheFile, cacheBytes, saveMs, raw: { ...raw, ms: median(raw.allMs) }, cache: { ...cache, ms: median(cache.allMs) }, bitExact };
}
