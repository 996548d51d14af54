// Reads a model's whole arena into host memory from its layout's copy segments (for the engine's host-arena
// mode: tests, benchmarks and the CLI without the weights runtime). Blocking-free: uses fs/promises.
import { open } from 'node:fs/promises';

import type { ModelSource } from './types.ts';

export async function readArena(source: ModelSource): Promise<Uint8Array> {
  const arena = new Uint8Array(source.layout.totalBytes);
  const byFile = new Map<string, typeof source.layout.segments>();
  for (const s of source.layout.segments) byFile.set(s.file, [...(byFile.get(s.file) ?? []), s]);
  for (const [file, segs] of byFile) {
    const fh = await open(file, 'r');
    try {
      for (const s of segs) {
        const { bytesRead } = await fh.read(arena, s.arenaOffset, s.bytes, s.fileOffset);
        if (bytesRead !== s.bytes) throw new Error(`${file}: short read at ${s.fileOffset} (${bytesRead} of ${s.bytes} bytes)`);
      }
    } finally {
      await fh.close();
    }
  }
  return arena;
}
