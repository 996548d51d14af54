// safetensors reader and writer: the header is validated against the format's rules before anything is trusted.
import { open } from 'node:fs/promises';

import type { FloatDType as DType } from '../types.ts';
import { ModelFileError } from './errors.ts';
import { checkedBytes, withCursor } from './file-reader.ts';
import { findDuplicateKey } from './json-keys.ts';
import { MAX_TENSOR_DIMS } from './limits.ts';
import type { ModelIoOptions } from './safe-io.ts';

/** The format's own limit on the JSON header (bytes). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

/** Every dtype the safetensors format defines, with its element size in bytes. */
export const SAFETENSORS_DTYPES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};
export const ST_TO_DTYPE: Record<string, DType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
export const DTYPE_TO_ST: Record<DType, string> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export interface SafetensorsTensor {
  name: string;
  /** The file's dtype string (F32, BF16, ...). */
  stDtype: string;
  shape: number[];
  /** Absolute file offset of the data. */
  fileOffset: number;
  bytes: number;
}

export interface SafetensorsFile {
  file: string;
  headerBytes: number;
  /** Absolute offset of the data section (8 + headerBytes). */
  dataStart: number;
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
  size: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parse and validate a .safetensors header; reads 8 + N bytes only. */
export async function readSafetensors(file: string, io?: ModelIoOptions): Promise<SafetensorsFile> {
  return withCursor(file, async (c) => {
    await c.need(8, 'the safetensors header length');
    const n64 = c.u64();
    if (n64 > BigInt(SAFETENSORS_MAX_HEADER)) {
      throw new ModelFileError('header_too_large', file, `header length ${n64} exceeds the safetensors limit of ${SAFETENSORS_MAX_HEADER} bytes`);
    }
    const n = Number(n64);
    if (n < 2) throw new ModelFileError('bad_json', file, `header length ${n} is too small for a JSON object`);
    if (8 + n > c.size) {
      throw new ModelFileError('truncated', file, `header claims ${n} bytes but the file has only ${c.size - 8} after the length`);
    }
    await c.need(n, 'the safetensors JSON header');
    const text = c.bytes(n).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new ModelFileError('bad_json', file, `header is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (!isObject(json)) throw new ModelFileError('bad_json', file, 'header must be a JSON object');
    const dup = findDuplicateKey(text);
    if (dup) {
      throw new ModelFileError('duplicate_key', file,
        `header names "${dup.key}" twice${dup.path.length ? ` in "${dup.path.join('.')}"` : ''} (the safetensors format forbids duplicate keys)`);
    }
    let metadata: Record<string, string> = {};
    const tensors: SafetensorsTensor[] = [];
    const ranges: { name: string; begin: number; end: number }[] = [];
    const dataStart = 8 + n;
    for (const [name, entry] of Object.entries(json)) {
      if (name === '__metadata__') {
        if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
          throw new ModelFileError('bad_header', file, '__metadata__ must map strings to strings');
        }
        metadata = entry as Record<string, string>;
        continue;
      }
      if (!isObject(entry)) throw new ModelFileError('bad_header', file, `entry "${name}" must be an object`);
      const { dtype, shape, data_offsets: off } = entry;
      if (typeof dtype !== 'string') throw new ModelFileError('bad_header', file, `tensor "${name}" has no dtype string`);
      const elem = SAFETENSORS_DTYPES[dtype];
      if (elem === undefined) throw new ModelFileError('unknown_dtype', file, `tensor "${name}" has unknown dtype "${dtype}"`);
      if (!Array.isArray(shape) || shape.length > MAX_TENSOR_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new ModelFileError('bad_header', file, `tensor "${name}" shape must be an array of at most ${MAX_TENSOR_DIMS} non-negative integers`);
      }
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
        throw new ModelFileError('bad_header', file, `tensor "${name}" data_offsets must be [begin, end] with 0 <= begin <= end`);
      }
      const bytes = checkedBytes(shape as number[], elem);
      if (bytes === null) throw new ModelFileError('size_mismatch', file, `tensor "${name}" shape [${shape.join(', ')}] overflows`);
      if (off[1] - off[0] !== bytes) {
        throw new ModelFileError('size_mismatch', file,
          `tensor "${name}" spans ${off[1] - off[0]} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${bytes}`);
      }
      ranges.push({ name, begin: off[0], end: off[1] });
      tensors.push({ name, stDtype: dtype, shape: shape as number[], fileOffset: dataStart + off[0], bytes });
    }
    // Offsets must tile [0, dataBytes) exactly: sorted, from 0, no gap, no overlap.
    ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
    let cursor = 0;
    let prev = '(start)';
    for (const r of ranges) {
      if (r.begin > cursor) {
        throw new ModelFileError('offset_gap', file, `gap of ${r.begin - cursor} bytes before tensor "${r.name}" (after ${prev})`);
      }
      if (r.begin < cursor) throw new ModelFileError('offset_overlap', file, `tensor "${r.name}" overlaps ${prev}`);
      cursor = r.end;
      prev = `"${r.name}"`;
    }
    const dataBytes = c.size - dataStart;
    if (cursor !== dataBytes) {
      throw new ModelFileError(cursor > dataBytes ? 'truncated' : 'size_mismatch', file,
        `tensors need ${cursor} data bytes but the file holds ${dataBytes} after the header`);
    }
    return { file, headerBytes: n, dataStart, tensors, metadata, size: c.size };
  }, io);
}

/**
 * A tensor to write: name, dtype, shape and its raw little-endian bytes (length must match), or a function that
 * produces them when the writer reaches the tensor (so multi-GB files are written without holding them whole).
 */
export interface TensorData {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array | (() => Uint8Array);
}

/** Write a .safetensors file (tensors in the given order, header padded with spaces to 8 bytes). */
export async function writeSafetensors(file: string, tensors: TensorData[], metadata?: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const bytes = checkedBytes(t.shape, t.dtype === 'f32' ? 4 : 2);
    if (bytes === null) throw new RangeError(`Expected a valid shape for tensor "${t.name}" but received [${t.shape.join(', ')}]`);
    header[t.name] = { dtype: DTYPE_TO_ST[t.dtype], shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fh = await open(file, 'w');
  try {
    await fh.write(len);
    await fh.write(json);
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const want = checkedBytes(t.shape, t.dtype === 'f32' ? 4 : 2);
      if (data.byteLength !== want) {
        throw new RangeError(`Expected ${want} bytes for tensor "${t.name}" [${t.shape.join(', ')}] ${t.dtype} but received ${data.byteLength}`);
      }
      await fh.write(data);
    }
  } finally {
    await fh.close();
  }
}
