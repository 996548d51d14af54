// Test fixtures for the weights runtime: model files of random bytes and a WeightLayout over them, built by hand
// (groups, 256-byte aligned tensors, two files, non-zero file offsets), plus the expected checksum of the arena.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { CopySegment, TensorPlacement, WeightLayout } from '../../native/ts/types.ts';
import { LAYOUT_ALIGN } from '../../native/ts/types.ts';

export interface RandomModel {
  dir: string;
  layout: WeightLayout;
  /** The bytes of every segment in arena order (what checksum() hashes). */
  expected: Buffer;
  cleanup(): void;
}

const align = (n: number) => Math.ceil(n / LAYOUT_ALIGN) * LAYOUT_ALIGN;

/**
 * A model of `groups` groups; each group holds `tensorsPerGroup` tensors of pseudo-random sizes around
 * `tensorBytes`. Even groups' tensors come from file A, odd groups' from file B, each file starting with a
 * header of junk so that file offsets are not zero. Adjacent tensors in one file become one segment.
 */
export function makeRandomModel(opts: { groups?: number; tensorsPerGroup?: number; tensorBytes?: number; seed?: number } = {}): RandomModel {
  const G = opts.groups ?? 5;
  const perGroup = opts.tensorsPerGroup ?? 3;
  const base = opts.tensorBytes ?? 40_000;
  let s = opts.seed ?? 7;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-rt-'));
  const files = [join(dir, 'a.bin'), join(dir, 'b.bin')];
  const fileParts: Buffer[][] = [[randomBytes(1000)], [randomBytes(3333)]];
  const fileLen = [1000, 3333];
  const tensors: TensorPlacement[] = [];
  const segments: CopySegment[] = [];
  const groups: { start: number; end: number }[] = [];
  const expectedParts: Buffer[] = [];
  let at = 0;
  for (let g = 0; g < G; g++) {
    const start = at;
    const f = g % 2;
    for (let t = 0; t < perGroup; t++) {
      const bytes = Math.max(1, Math.floor(base * (0.5 + rand())));
      const data = randomBytes(bytes);
      const offset = align(at);
      tensors.push({ name: `g${g}.t${t}`, dtype: 'f32', shape: [bytes], offset, bytes, group: g });
      const last = segments[segments.length - 1];
      // Merge with the previous segment when both file and arena are contiguous (as real planners do).
      if (last && last.file === files[f] && last.fileOffset + last.bytes === fileLen[f] && last.arenaOffset + last.bytes === offset) last.bytes += bytes;
      else segments.push({ file: files[f], fileOffset: fileLen[f], bytes, arenaOffset: offset });
      fileParts[f].push(data);
      fileLen[f] += bytes;
      expectedParts.push(data);
      at = offset + bytes;
      // Padding in the file between some tensors breaks contiguity on purpose.
      if (rand() < 0.3) {
        const pad = randomBytes(17);
        fileParts[f].push(pad);
        fileLen[f] += 17;
      }
    }
    at = align(at);
    groups.push({ start, end: at });
  }
  files.forEach((p, i) => writeFileSync(p, Buffer.concat(fileParts[i])));
  return {
    dir,
    layout: { totalBytes: at, tensors, groups, segments },
    expected: Buffer.concat(expectedParts),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
