// Bounded, buffered, little-endian reads of a file header: never reads more than it is asked for, never past EOF.
import type { FileHandle } from 'node:fs/promises';

import { ModelFileError } from './errors.ts';
import { guarded, openRegularFile, type ModelIoOptions } from './safe-io.ts';

/** Chunk size of header reads (bytes). Values inside a chunk are decoded synchronously. */
const CHUNK = 1 << 20;

/**
 * A forward cursor over a file. `need(n)` makes n bytes available (one bounded read when the buffer runs out);
 * the `u32`/`u64`/... getters then decode synchronously. Every read is checked against the file's size first,
 * so a length field pointing past EOF becomes a TRUNCATED error, never a huge allocation.
 */
export class FileCursor {
  private buf = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private bufStart = 0;
  /** Current file offset. */
  pos = 0;

  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly io: ModelIoOptions,
  ) {}

  static async open(file: string, io: ModelIoOptions = {}): Promise<FileCursor> {
    const { fh, size } = await openRegularFile(file, io);
    return new FileCursor(file, fh, size, io);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Whether n bytes from pos are already buffered (then no await is needed before reading them). */
  has(n: number): boolean {
    const off = this.pos - this.bufStart;
    return off >= 0 && off + n <= this.buf.length;
  }

  /** Ensure n bytes from pos are buffered; `what` names the structure for the error message. */
  async need(n: number, what: string): Promise<void> {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.size) {
      throw new ModelFileError('truncated', this.file,
        `file ends before ${what}: needs ${n} bytes at offset ${this.pos} but the file has ${this.size} bytes`);
    }
    const off = this.pos - this.bufStart;
    if (off >= 0 && off + n <= this.buf.length) return;
    const want = Math.min(Math.max(n, CHUNK), this.size - this.pos);
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.read(buf, got, want - got, this.pos + got, what);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) throw new ModelFileError('truncated', this.file, `short read of ${what} at offset ${this.pos}`);
    this.buf = buf.subarray(0, got);
    this.bufStart = this.pos;
  }

  private async read(buf: Buffer, off: number, n: number, pos: number, what: string): Promise<{ bytesRead: number }> {
    try {
      return await guarded(this.file, `reading ${what}`, () => this.fh.read(buf, off, n, pos), this.io);
    } catch (e) {
      if (e instanceof ModelFileError) throw e;
      throw new ModelFileError('io', this.file, `reading ${what} at offset ${pos} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  private at(n: number): number {
    const off = this.pos - this.bufStart;
    if (off < 0 || off + n > this.buf.length) throw new Error(`FileCursor: ${n} bytes not buffered (call need first)`);
    this.pos += n;
    return off;
  }

  u8(): number { return this.buf.readUInt8(this.at(1)); }
  i8(): number { return this.buf.readInt8(this.at(1)); }
  u16(): number { return this.buf.readUInt16LE(this.at(2)); }
  i16(): number { return this.buf.readInt16LE(this.at(2)); }
  u32(): number { return this.buf.readUInt32LE(this.at(4)); }
  i32(): number { return this.buf.readInt32LE(this.at(4)); }
  f32(): number { return this.buf.readFloatLE(this.at(4)); }
  f64(): number { return this.buf.readDoubleLE(this.at(8)); }
  u64(): bigint { return this.buf.readBigUInt64LE(this.at(8)); }
  i64(): bigint { return this.buf.readBigInt64LE(this.at(8)); }
  bytes(n: number): Buffer { const o = this.at(n); return this.buf.subarray(o, o + n); }

  /** Read `bytes` bytes at an absolute offset (bounded; does not move the cursor). */
  async readAt(offset: number, bytes: number, what: string): Promise<Buffer> {
    if (offset < 0 || offset + bytes > this.size) {
      throw new ModelFileError('out_of_bounds', this.file, `${what} [${offset}, ${offset + bytes}) lies outside the file (${this.size} bytes)`);
    }
    const buf = Buffer.allocUnsafe(bytes);
    let got = 0;
    while (got < bytes) {
      const { bytesRead } = await this.read(buf, got, bytes - got, offset + got, what);
      if (bytesRead === 0) throw new ModelFileError('truncated', this.file, `short read of ${what}`);
      got += bytesRead;
    }
    return buf;
  }
}

/** Open, run, always close. */
export async function withCursor<T>(file: string, fn: (c: FileCursor) => Promise<T>, io?: ModelIoOptions): Promise<T> {
  const c = await FileCursor.open(file, io);
  try {
    return await fn(c);
  } finally {
    await c.close().catch(() => {});
  }
}

/** Product of dims × element bytes, failing on overflow past Number.MAX_SAFE_INTEGER. */
export function checkedBytes(shape: readonly number[], elemBytes: number): number | null {
  let n = elemBytes;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return null;
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}
