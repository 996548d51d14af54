// GGUF (v2/v3) reader: validates magic, version, counts, strings, metadata types, alignment and tensor bounds.
import type { DType } from '../types.ts';
import { ModelFileError } from './errors.ts';
import { checkedBytes, FileCursor, withCursor } from './file-reader.ts';
import { GGUF_LIMITS } from './limits.ts';
import { isQuant, QUANT_BLOCK } from './quant.ts';
import type { ModelIoOptions } from './safe-io.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types (gguf.h: enum gguf_type). */
export const GGUF_TYPE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9,
  UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

/** ggml tensor types (ggml.h: enum ggml_type); F32/F16/BF16 and Q8_0/Q4_0/Q4_K/Q5_K/Q6_K are runnable here. */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K',
  12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S',
  20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64',
  29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};
export const GGML_DTYPE: Record<number, DType> = { 0: 'f32', 1: 'f16', 30: 'bf16', 2: 'q4_0', 8: 'q8_0', 12: 'q4_k', 13: 'q5_k', 14: 'q6_k' };
export const DTYPE_GGML: Record<DType, number> = { f32: 0, f16: 1, bf16: 30, q4_0: 2, q8_0: 8, q4_k: 12, q5_k: 13, q6_k: 14 };

/** Longest metadata string accepted (bytes); chat templates are a few KB, tokens a few bytes. */
const MAX_STRING = 16 << 20;
const MAX_DIMS = 4;
const MAX_KEY = 65535;

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufScalar[];

export interface GgufValueType { type: number; itemType?: number }

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape, outermost first (GGUF stores ne[] innermost first; this is reversed). */
  shape: number[];
  ggmlType: number;
  /** Absolute file offset of the data. */
  fileOffset: number;
  bytes: number;
}

export interface GgufFile {
  file: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  /** Each key's GGUF value type (and element type for arrays), so a file can be rewritten as it was typed. */
  metadataTypes: Map<string, GgufValueType>;
  tensors: GgufTensorInfo[];
  dataStart: number;
  size: number;
}

/**
 * Bytes of a tensor's data: element size × elements for float types; for block-quantized types the row (the
 * innermost dimension, GGUF's ne[0]) must be a whole number of blocks, as ggml requires.
 */
function tensorBytes(file: string, name: string, shape: number[], dtype: DType): number {
  if (isQuant(dtype)) {
    const q = QUANT_BLOCK[dtype];
    const row = shape[shape.length - 1];
    if (!Number.isSafeInteger(row) || row <= 0 || row % q.elems !== 0) {
      throw new ModelFileError('quant_block', file,
        `tensor "${name}" is ${q.name} with rows of ${row} values, not a positive multiple of its block size ${q.elems}`);
    }
    const blocks = checkedBytes(shape, 1);
    const bytes = blocks === null ? null : checkedBytes([blocks / q.elems], q.bytes);
    if (bytes === null) throw new ModelFileError('size_mismatch', file, `tensor "${name}" shape [${shape.join(', ')}] overflows`);
    return bytes;
  }
  const bytes = checkedBytes(shape, dtype === 'f32' ? 4 : 2);
  if (bytes === null) throw new ModelFileError('size_mismatch', file, `tensor "${name}" shape [${shape.join(', ')}] overflows`);
  return bytes;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

function bigToNumber(c: FileCursor, v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ModelFileError('header_too_large', c.file, `${what} is ${v}, larger than any file could hold`);
  }
  return Number(v);
}

/*
 * Decoding is synchronous while the bytes are buffered and awaits only to refill the 1 MiB buffer: a 128k-token
 * vocab is ~400k values, and an await per value would hold the event loop in one long microtask chain.
 */

async function readString(c: FileCursor, what: string): Promise<string> {
  if (!c.has(8)) await c.need(8, `the length of ${what}`);
  const at = c.pos;
  const n = bigToNumber(c, c.u64(), `the length of ${what}`);
  if (n > MAX_STRING) throw new ModelFileError('header_too_large', c.file, `${what} at offset ${at} claims ${n} bytes (limit ${MAX_STRING})`);
  if (n > c.remaining) {
    throw new ModelFileError('truncated', c.file, `${what} at offset ${at} claims ${n} bytes but only ${c.remaining} remain in the file`);
  }
  if (!c.has(n)) await c.need(n, what);
  return c.bytes(n).toString('utf8');
}

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Decode a buffered fixed-size scalar. */
function scalarSync(c: FileCursor, type: number, what: string): GgufScalar {
  switch (type) {
    case GGUF_TYPE.UINT8: return c.u8();
    case GGUF_TYPE.INT8: return c.i8();
    case GGUF_TYPE.UINT16: return c.u16();
    case GGUF_TYPE.INT16: return c.i16();
    case GGUF_TYPE.UINT32: return c.u32();
    case GGUF_TYPE.INT32: return c.i32();
    case GGUF_TYPE.FLOAT32: return c.f32();
    case GGUF_TYPE.BOOL: {
      const b = c.u8();
      if (b > 1) throw new ModelFileError('bad_metadata', c.file, `${what} is a bool with value ${b}`);
      return b === 1;
    }
    case GGUF_TYPE.UINT64: return c.u64();
    case GGUF_TYPE.INT64: return c.i64();
    default: return c.f64();
  }
}

async function readScalar(c: FileCursor, type: number, what: string): Promise<GgufScalar> {
  if (type === GGUF_TYPE.STRING) return readString(c, what);
  const n = SCALAR_BYTES[type];
  if (n === undefined) throw new ModelFileError('bad_metadata', c.file, `${what} has unknown value type ${type}`);
  if (!c.has(n)) await c.need(n, what);
  return scalarSync(c, type, what);
}

/** Read a string without awaiting when it is buffered; null when a refill is needed first. */
function stringSync(c: FileCursor): string | null {
  if (!c.has(8)) return null;
  const save = c.pos;
  const n64 = c.u64();
  if (n64 <= BigInt(MAX_STRING) && c.has(Number(n64))) return c.bytes(Number(n64)).toString('utf8');
  c.pos = save;
  return null;
}

async function readValue(c: FileCursor, type: number, what: string): Promise<GgufValue> {
  if (type !== GGUF_TYPE.ARRAY) return readScalar(c, type, what);
  if (!c.has(12)) await c.need(12, what);
  const itemType = c.u32();
  const count = bigToNumber(c, c.u64(), `the element count of ${what}`);
  if (itemType === GGUF_TYPE.ARRAY) throw new ModelFileError('bad_metadata', c.file, `${what} is a nested array (not supported)`);
  const minItem = itemType === GGUF_TYPE.STRING ? 8 : SCALAR_BYTES[itemType];
  if (minItem === undefined) throw new ModelFileError('bad_metadata', c.file, `${what} has unknown element type ${itemType}`);
  if (count * minItem > c.remaining) {
    throw new ModelFileError('truncated', c.file, `${what} claims ${count} elements, more than the ${c.remaining} remaining bytes can hold`);
  }
  if (count > GGUF_LIMITS.arrayItems) {
    throw new ModelFileError('header_too_large', c.file, `${what} claims ${count} elements (limit ${GGUF_LIMITS.arrayItems})`);
  }
  const out: GgufScalar[] = new Array(count);
  if (itemType === GGUF_TYPE.STRING) {
    for (let i = 0; i < count; i++) out[i] = stringSync(c) ?? await readString(c, `${what}[${i}]`);
  } else {
    for (let i = 0; i < count; i++) {
      if (!c.has(minItem)) await c.need(minItem, `${what}[${i}]`);
      out[i] = scalarSync(c, itemType, `${what}[${i}]`);
    }
  }
  return out;
}

/** The next u32 (an array's element type) without consuming it. */
async function peekU32(c: FileCursor, what: string): Promise<number> {
  if (!c.has(4)) await c.need(4, what);
  const t = c.u32();
  c.pos -= 4;
  return t;
}

/** Metadata and tensor infos are bounded in bytes too (each value is already bounded by the bytes left). */
function headerLimit(c: FileCursor): void {
  if (c.pos > GGUF_LIMITS.headerBytes) {
    throw new ModelFileError('header_too_large', c.file, `the GGUF header runs past ${GGUF_LIMITS.headerBytes} bytes`);
  }
}

/** Parse and validate a GGUF header (metadata + tensor infos); reads only the header, never the data. */
export async function readGguf(file: string, io?: ModelIoOptions): Promise<GgufFile> {
  return withCursor(file, async (c) => {
    await c.need(4, 'the GGUF magic');
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) {
      throw new ModelFileError('bad_magic', file, `not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${GGUF_MAGIC.toString(16)} "GGUF")`);
    }
    await c.need(4, 'the GGUF version');
    const version = c.u32();
    if (version !== 2 && version !== 3) {
      throw new ModelFileError('bad_version', file, `GGUF version ${version} is not supported (only 2 and 3)`);
    }
    await c.need(16, 'the GGUF tensor and metadata counts');
    const tensorCount = bigToNumber(c, c.u64(), 'the tensor count');
    const kvCount = bigToNumber(c, c.u64(), 'the metadata count');
    // Each tensor info needs >= 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; each kv >= 8 + 4 + 1.
    if (tensorCount * 24 + kvCount * 13 > c.remaining) {
      throw new ModelFileError('truncated', file, `header claims ${tensorCount} tensors and ${kvCount} metadata entries, more than the file can hold`);
    }
    if (tensorCount > GGUF_LIMITS.tensors || kvCount > GGUF_LIMITS.kvs) {
      throw new ModelFileError('header_too_large', file,
        `header claims ${tensorCount} tensors and ${kvCount} metadata entries (limits ${GGUF_LIMITS.tensors} and ${GGUF_LIMITS.kvs})`);
    }
    const metadata = new Map<string, GgufValue>();
    const metadataTypes = new Map<string, GgufValueType>();
    for (let i = 0; i < kvCount; i++) {
      const key = await readString(c, `metadata key #${i}`);
      if (key.length === 0 || key.length > MAX_KEY) throw new ModelFileError('bad_metadata', file, `metadata key #${i} is empty or too long`);
      if (metadata.has(key)) throw new ModelFileError('bad_metadata', file, `metadata key "${key}" occurs twice`);
      await c.need(4, `the type of metadata "${key}"`);
      const type = c.u32();
      metadataTypes.set(key, type === GGUF_TYPE.ARRAY ? { type, itemType: await peekU32(c, `metadata "${key}"`) } : { type });
      metadata.set(key, await readValue(c, type, `metadata "${key}"`));
      headerLimit(c);
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    if (metadata.has('general.alignment')) {
      const a = metadata.get('general.alignment');
      if (typeof a !== 'number' || !isPow2(a)) {
        throw new ModelFileError('bad_alignment', file, `general.alignment must be a uint32 power of two, got ${String(a)}`);
      }
      alignment = a;
    }
    const infos: { name: string; shape: number[]; ggmlType: number; rel: number }[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = await readString(c, `the name of tensor #${i}`);
      if (names.has(name)) throw new ModelFileError('duplicate_tensor', file, `tensor "${name}" occurs twice`);
      names.add(name);
      await c.need(4, `the dims of tensor "${name}"`);
      const nDims = c.u32();
      if (nDims < 1 || nDims > MAX_DIMS) throw new ModelFileError('bad_header', file, `tensor "${name}" has ${nDims} dimensions (1..${MAX_DIMS} allowed)`);
      await c.need(nDims * 8 + 12, `the info of tensor "${name}"`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(bigToNumber(c, c.u64(), `dimension ${d} of tensor "${name}"`));
      const ggmlType = c.u32();
      const rel = bigToNumber(c, c.u64(), `the offset of tensor "${name}"`);
      if (rel % alignment !== 0) {
        throw new ModelFileError('bad_alignment', file, `tensor "${name}" offset ${rel} is not a multiple of the alignment ${alignment}`);
      }
      infos.push({ name, shape: ne.reverse(), ggmlType, rel });
      headerLimit(c);
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors: GgufTensorInfo[] = [];
    for (const t of infos) {
      const dtype = GGML_DTYPE[t.ggmlType];
      if (dtype === undefined) {
        const typeName = GGML_TYPE_NAMES[t.ggmlType];
        if (typeName === undefined) throw new ModelFileError('unknown_dtype', file, `tensor "${t.name}" has unknown ggml type ${t.ggmlType}`);
        throw new ModelFileError('unsupported_dtype', file,
          `tensor "${t.name}" is ${typeName}: this GGUF type is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)`);
      }
      const bytes = tensorBytes(file, t.name, t.shape, dtype);
      const fileOffset = dataStart + t.rel;
      if (fileOffset + bytes > c.size) {
        throw new ModelFileError('out_of_bounds', file,
          `tensor "${t.name}" data [${fileOffset}, ${fileOffset + bytes}) lies past the end of the file (${c.size} bytes)`);
      }
      tensors.push({ name: t.name, shape: t.shape, ggmlType: t.ggmlType, fileOffset, bytes });
    }
    // Tensor data must not overlap (llama.cpp places them back to back, each padded to the alignment).
    const sorted = [...tensors].sort((a, b) => a.fileOffset - b.fileOffset);
    for (let i = 1; i < sorted.length; i++) {
      const p = sorted[i - 1];
      if (p.fileOffset + p.bytes > sorted[i].fileOffset) {
        throw new ModelFileError('offset_overlap', file, `tensors "${p.name}" and "${sorted[i].name}" overlap in the file`);
      }
    }
    return { file, version, alignment, metadata, metadataTypes, tensors, dataStart, size: c.size };
  }, io);
}

// ---- typed metadata accessors (errors name the key) ----

export function metaNumber(g: GgufFile, key: string): number | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new ModelFileError('bad_metadata', g.file, `metadata "${key}" must be a number, got ${Array.isArray(v) ? 'an array' : typeof v}`);
}

export function metaString(g: GgufFile, key: string): string | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new ModelFileError('bad_metadata', g.file, `metadata "${key}" must be a string`);
  return v;
}

export function metaArray<T extends GgufScalar>(g: GgufFile, key: string, check: (x: GgufScalar) => x is T, what: string): T[] | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every(check)) throw new ModelFileError('bad_metadata', g.file, `metadata "${key}" must be an array of ${what}`);
  return v as T[];
}
