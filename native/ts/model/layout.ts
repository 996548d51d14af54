// WeightLayout planning: one arena, tensors in group order, each LAYOUT_ALIGN-aligned; file reads that fill it.
import { LAYOUT_ALIGN, type CopySegment, type DType, type TensorPlacement, type WeightLayout } from '../types.ts';

/** A tensor to place: where its bytes are in which file. */
export interface SourceTensor {
  name: string;
  dtype: DType;
  shape: number[];
  group: number;
  file: string;
  fileOffset: number;
  bytes: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Place `tensors` (already in arena order, groups ascending) and derive the copy segments.
 * Groups are contiguous: group g spans [start of its first tensor, start of group g+1); the last ends at
 * totalBytes (aligned). Segments are merged when two tensors of the same group are contiguous in the same file
 * and in the arena; a segment never crosses a group boundary, so the runtime can signal each group when its
 * segments have landed.
 */
export function planLayout(tensors: SourceTensor[], numGroups: number): WeightLayout {
  const placements: TensorPlacement[] = [];
  const segments: CopySegment[] = [];
  const starts: number[] = new Array(numGroups).fill(-1);
  let off = 0;
  let lastGroup = -1;
  let prevSrc: SourceTensor | null = null;
  for (const t of tensors) {
    if (t.group < lastGroup || t.group >= numGroups) throw new Error(`planLayout: tensor ${t.name} group ${t.group} out of order`);
    off = alignUp(off, LAYOUT_ALIGN);
    if (starts[t.group] === -1) starts[t.group] = off;
    placements.push({ name: t.name, dtype: t.dtype, shape: t.shape, offset: off, bytes: t.bytes, group: t.group });
    const last = segments[segments.length - 1];
    if (last && prevSrc && prevSrc.group === t.group && last.file === t.file
        && last.fileOffset + last.bytes === t.fileOffset && last.arenaOffset + last.bytes === off) {
      last.bytes += t.bytes;
    } else if (t.bytes > 0) {
      segments.push({ file: t.file, fileOffset: t.fileOffset, bytes: t.bytes, arenaOffset: off });
    }
    prevSrc = t;
    lastGroup = t.group;
    off += t.bytes;
  }
  const totalBytes = alignUp(off, LAYOUT_ALIGN);
  // A group with no tensors (impossible for valid configs) gets an empty range at the next group's start.
  const groups: { start: number; end: number }[] = [];
  for (let g = numGroups - 1, next = totalBytes; g >= 0; g--) {
    const start = starts[g] === -1 ? next : starts[g];
    groups[g] = { start, end: next };
    next = start;
  }
  if (numGroups > 0) groups[0].start = 0;
  return { totalBytes, tensors: placements, groups, segments };
}
