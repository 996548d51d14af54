// GGUF writer (v3 by default): metadata, tensor infos, aligned data streamed tensor by tensor.
import { open } from 'node:fs/promises';

import { GGUF_MAGIC, GGUF_TYPE } from './gguf.ts';

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
const TYPE_ID: Record<GgufScalarType, number> = {
  u8: GGUF_TYPE.UINT8, i8: GGUF_TYPE.INT8, u16: GGUF_TYPE.UINT16, i16: GGUF_TYPE.INT16, u32: GGUF_TYPE.UINT32,
  i32: GGUF_TYPE.INT32, f32: GGUF_TYPE.FLOAT32, bool: GGUF_TYPE.BOOL, string: GGUF_TYPE.STRING, u64: GGUF_TYPE.UINT64,
  i64: GGUF_TYPE.INT64, f64: GGUF_TYPE.FLOAT64,
};

export type GgufKv =
  | { key: string; type: GgufScalarType; value: number | bigint | boolean | string }
  | { key: string; type: 'array'; itemType: GgufScalarType; value: (number | bigint | boolean | string)[] };

export interface GgufTensorSpec {
  name: string;
  /** Row-major shape (outermost first); written reversed as GGUF's ne[]. */
  shape: number[];
  ggmlType: number;
  bytes: number;
  /** Produces the tensor's bytes (called once, in file order). */
  data: () => Uint8Array;
  /** Relative offset override (hostile-file tests); default: packed at `alignment`. */
  offset?: number;
}

export interface GgufSpec {
  /** @defaultValue 3 */
  version?: number;
  /** @defaultValue 32 (also written as general.alignment when not 32) */
  alignment?: number;
  /** Overrides for hostile-file tests. */
  magic?: number;
  tensorCount?: number;
  metadata: GgufKv[];
  tensors: GgufTensorSpec[];
}

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.push(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.push(b); }
  scalar(t: GgufScalarType, v: number | bigint | boolean | string): void {
    const b = Buffer.alloc(8);
    switch (t) {
      case 'string': return this.str(String(v));
      case 'u8': b.writeUInt8(Number(v)); return this.push(b.subarray(0, 1));
      case 'i8': b.writeInt8(Number(v)); return this.push(b.subarray(0, 1));
      case 'bool': b.writeUInt8(v ? 1 : 0); return this.push(b.subarray(0, 1));
      case 'u16': b.writeUInt16LE(Number(v)); return this.push(b.subarray(0, 2));
      case 'i16': b.writeInt16LE(Number(v)); return this.push(b.subarray(0, 2));
      case 'u32': b.writeUInt32LE(Number(v)); return this.push(b.subarray(0, 4));
      case 'i32': b.writeInt32LE(Number(v)); return this.push(b.subarray(0, 4));
      case 'f32': b.writeFloatLE(Number(v)); return this.push(b.subarray(0, 4));
      case 'u64': b.writeBigUInt64LE(BigInt(v)); return this.push(b);
      case 'i64': b.writeBigInt64LE(BigInt(v)); return this.push(b);
      case 'f64': b.writeDoubleLE(Number(v)); return this.push(b);
    }
  }
  concat(): Buffer { return Buffer.concat(this.parts); }
}

/** Write a GGUF file; tensor data is produced and written one tensor at a time. */
export async function writeGguf(file: string, spec: GgufSpec): Promise<void> {
  const alignment = spec.alignment ?? 32;
  const meta = [...spec.metadata];
  if (alignment !== 32 && !meta.some((m) => m.key === 'general.alignment')) {
    meta.push({ key: 'general.alignment', type: 'u32', value: alignment });
  }
  const h = new Bytes();
  h.u32(spec.magic ?? GGUF_MAGIC);
  h.u32(spec.version ?? 3);
  h.u64(spec.tensorCount ?? spec.tensors.length);
  h.u64(meta.length);
  for (const kv of meta) {
    h.str(kv.key);
    if (kv.type === 'array') {
      h.u32(GGUF_TYPE.ARRAY);
      h.u32(TYPE_ID[kv.itemType]);
      h.u64(kv.value.length);
      for (const v of kv.value) h.scalar(kv.itemType, v);
    } else {
      h.u32(TYPE_ID[kv.type]);
      h.scalar(kv.type, kv.value);
    }
  }
  const offsets: number[] = [];
  let rel = 0;
  for (const t of spec.tensors) {
    rel = Math.ceil(rel / alignment) * alignment;
    offsets.push(t.offset ?? rel);
    rel += t.bytes;
    h.str(t.name);
    h.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) h.u64(d);
    h.u32(t.ggmlType);
    h.u64(t.offset ?? offsets[offsets.length - 1]);
  }
  const header = h.concat();
  const dataStart = Math.ceil(header.length / alignment) * alignment;
  const fh = await open(file, 'w');
  try {
    await fh.write(header, 0, header.length, 0);
    let end = dataStart;
    let pos = 0;
    for (const t of spec.tensors) {
      pos = Math.ceil(pos / alignment) * alignment;
      const d = t.data();
      if (d.byteLength !== t.bytes) throw new RangeError(`Expected ${t.bytes} bytes for tensor "${t.name}" but received ${d.byteLength}`);
      await fh.write(d, 0, d.byteLength, dataStart + pos);
      pos += t.bytes;
      end = dataStart + pos;
    }
    // Pad the file to the alignment, as llama.cpp's writer does (also makes "data ends at EOF" explicit).
    await fh.truncate(Math.ceil(end / alignment) * alignment);
  } finally {
    await fh.close();
  }
}
