// Bench helpers: a WeightLayout for a model folder (openModel, else a plain safetensors planner so the bench
// runs on any transformers output), and a random model file for runs without one.
import { openSync, readSync, closeSync, readdirSync, writeSync, mkdtempSync, rmSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { openModel } from '../../native/ts/model/index.ts';
import { LAYOUT_ALIGN, type CopySegment, type WeightLayout } from '../../native/ts/types.ts';

const align = (n: number) => Math.ceil(n / LAYOUT_ALIGN) * LAYOUT_ALIGN;

interface Entry { file: string; fileOffset: number; bytes: number; group: number; name: string }

function layoutOf(entries: Entry[], groupCount: number): WeightLayout {
  entries.sort((a, b) => a.group - b.group || (a.file < b.file ? -1 : a.file > b.file ? 1 : a.fileOffset - b.fileOffset));
  const segments: CopySegment[] = [];
  const groups: { start: number; end: number }[] = [];
  const tensors: WeightLayout['tensors'] = [];
  let at = 0;
  let gi = 0;
  for (let g = 0; g < groupCount; g++) {
    const start = at;
    for (; gi < entries.length && entries[gi].group === g; gi++) {
      const e = entries[gi];
      const offset = align(at);
      tensors.push({ name: e.name, dtype: 'bf16', shape: [e.bytes / 2], offset, bytes: e.bytes, group: g });
      const last = segments.at(-1);
      if (last && last.file === e.file && last.fileOffset + last.bytes === e.fileOffset && last.arenaOffset + last.bytes === offset) last.bytes += e.bytes;
      else segments.push({ file: e.file, fileOffset: e.fileOffset, bytes: e.bytes, arenaOffset: offset });
      at = offset + e.bytes;
    }
    at = align(at);
    groups.push({ start, end: at });
  }
  return { totalBytes: at, tensors, groups, segments };
}

/** Plans every tensor of the folder's *.safetensors files: embeddings = group 0, layer i = i + 1, the rest last. */
export function planSafetensorsFolder(dir: string): WeightLayout {
  const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`${dir} has no .safetensors files`);
  const raw: { file: string; name: string; fileOffset: number; bytes: number; layer: number | null; embed: boolean }[] = [];
  let layers = 0;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const hlen = Number(lenBuf.readBigUInt64LE(0));
      const hbuf = Buffer.alloc(hlen);
      readSync(fd, hbuf, 0, hlen, 8);
      const header = JSON.parse(hbuf.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
      for (const [name, t] of Object.entries(header)) {
        if (name === '__metadata__' || !t.data_offsets) continue;
        const m = /\.layers\.(\d+)\./.exec(name);
        const layer = m ? Number(m[1]) : null;
        if (layer !== null) layers = Math.max(layers, layer + 1);
        raw.push({ file, name, fileOffset: 8 + hlen + t.data_offsets[0], bytes: t.data_offsets[1] - t.data_offsets[0], layer, embed: /embed_tokens/.test(name) });
      }
    } finally {
      closeSync(fd);
    }
  }
  const entries = raw.filter((r) => r.bytes > 0).map((r) => ({ ...r, group: r.embed ? 0 : r.layer !== null ? r.layer + 1 : layers + 1 }));
  return layoutOf(entries, layers + 2);
}

/** The model's layout and files: openModel's plan where it accepts the folder, else planSafetensorsFolder. */
export async function planModel(path: string): Promise<{ layout: WeightLayout; planner: string }> {
  try {
    const src = await openModel(path);
    return { layout: src.layout, planner: 'openModel' };
  } catch (e) {
    process.stderr.write(`[bench swap] openModel(${path}) failed (${e instanceof Error ? e.message : String(e)}); planning the safetensors files directly\n`);
    return { layout: planSafetensorsFolder(path), planner: 'safetensors header' };
  }
}

/** A file of `bytes` random bytes cut into `groups` groups of 8 tensors each (no model needed). */
export function randomModel(bytes: number, groups = 34): { layout: WeightLayout; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-bench-'));
  const file = join(dir, 'weights.bin');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(Math.min(bytes, 64 << 20));
  try {
    for (let done = 0; done < bytes; done += chunk.length) {
      const n = Math.min(chunk.length, bytes - done);
      randomFillSync(chunk, 0, n);
      writeSync(fd, chunk, 0, n);
    }
  } finally {
    closeSync(fd);
  }
  const per = Math.floor(bytes / (groups * 8) / 2) * 2;
  const entries: Entry[] = [];
  for (let i = 0; i < groups * 8; i++) {
    const last = i === groups * 8 - 1;
    entries.push({ file, name: `t${i}`, fileOffset: i * per, bytes: last ? bytes - i * per : per, group: Math.floor(i / 8) });
  }
  return { layout: layoutOf(entries, groups), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
