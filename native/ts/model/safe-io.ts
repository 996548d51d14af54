// Model-file I/O that cannot hang a process: non-blocking opens (a FIFO never blocks), a deadline on every
// operation (a dead mount fails its own model only), and a cap on the libuv threads model-file I/O may hold.
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';

import { ModelFileError } from './errors.ts';

/** Options of every model-file read (openModel, readGguf, readSafetensors, tokenizers). */
export interface ModelIoOptions {
  /**
   * Longest one open/stat/read may take, waiting for an I/O lane included (ms). A dead network mount blocks
   * `open()` and `stat()` forever in a libuv thread; past this the model fails with `timeout`.
   * @defaultValue 10000
   */
  timeoutMs?: number;
}

export const MODEL_IO_DEFAULTS: Required<ModelIoOptions> = { timeoutMs: 10_000 };

/**
 * libuv threads (default pool: 4) that model-file operations may hold at once. The native runtime's moves and the
 * engine's passes are AsyncWorkers on the same pool: a blocked `open()` must never take all of it, or every model
 * of the process stops answering. An operation past its deadline keeps its lane until the kernel returns (the
 * thread really is blocked); once every lane is stuck, further opens fail at once with `timeout`.
 */
export const MODEL_IO_LANES = 2;

let lanesBusy = 0;
/** Operations that passed their deadline and have not returned yet (each holds a lane). */
let stuck = 0;
const waiting: (() => void)[] = [];

function release(): void {
  lanesBusy--;
  waiting.shift()?.();
}

function timeoutError(file: string, what: string, ms: number): ModelFileError {
  return new ModelFileError('timeout', file,
    `${what} did not finish within ${ms} ms (a dead network mount or a device that blocks?)` +
    (stuck > 0 ? `; ${stuck} model-file operation(s) are still blocked in the kernel` : ''));
}

/**
 * Runs one blocking-prone fs operation on an I/O lane with a deadline. On timeout the caller gets a `timeout`
 * ModelFileError; the operation's eventual result is dropped (a handle it opened late is closed).
 */
export async function guarded<T>(file: string, what: string, op: () => Promise<T>, opts: ModelIoOptions = {},
  dispose?: (late: T) => void): Promise<T> {
  const ms = opts.timeoutMs ?? MODEL_IO_DEFAULTS.timeoutMs;
  const deadline = Date.now() + ms;
  if (lanesBusy >= MODEL_IO_LANES && stuck >= MODEL_IO_LANES) throw timeoutError(file, what, 0);
  while (lanesBusy >= MODEL_IO_LANES) {
    const left = deadline - Date.now();
    if (left <= 0) throw timeoutError(file, `waiting for an I/O lane for ${what}`, ms);
    let wake!: () => void;
    const woken = new Promise<void>((r) => { wake = r; waiting.push(r); });
    let timer: NodeJS.Timeout | undefined;
    const expired = await Promise.race([woken.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), left); })]);
    clearTimeout(timer);
    if (expired) {
      const i = waiting.indexOf(wake);
      if (i >= 0) waiting.splice(i, 1);
      throw timeoutError(file, `waiting for an I/O lane for ${what}`, ms);
    }
  }
  lanesBusy++;
  let late = false;
  // A synchronous throw becomes a rejection, so the lane is released on every path.
  const running = (async () => op())();
  running.then((v) => { if (late) dispose?.(v); }, () => {}).finally(() => {
    if (late) stuck--;
    release();
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([running, new Promise<never>((_, rej) => {
      timer = setTimeout(() => {
        late = true;
        stuck++;
        rej(timeoutError(file, what, ms));
      }, Math.max(0, deadline - Date.now()));
    })]);
  } finally {
    clearTimeout(timer);
  }
}

/** `stat` under a deadline; ENOENT → not_found, other failures → io. */
export async function statModelPath(file: string, opts?: ModelIoOptions): Promise<Stats> {
  try {
    return await guarded(file, 'stat', () => stat(file), opts);
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(code === 'ENOENT' ? 'not_found' : 'io', file,
      code === 'ENOENT' ? 'no such file or folder' : `cannot stat: ${(e as Error).message}`, { cause: e });
  }
}

/** Whether a path exists (a timeout is an error, not "missing"). */
export async function pathExists(file: string, opts?: ModelIoOptions): Promise<boolean> {
  try {
    await statModelPath(file, opts);
    return true;
  } catch (e) {
    if (e instanceof ModelFileError && e.code === 'not_found') return false;
    throw e;
  }
}

/**
 * Opens a regular file for reading. O_NONBLOCK makes `open()` of a FIFO return at once (it would otherwise wait
 * for a writer, holding a libuv thread forever); the fstat after it then rejects anything but a regular file.
 * Reads of regular files ignore O_NONBLOCK.
 */
export async function openRegularFile(file: string, opts?: ModelIoOptions): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await guarded(file, 'open', () => open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY), opts,
      (late) => void late.close().catch(() => {}));
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelFileError(code === 'ENOENT' ? 'not_found' : 'io', file, `cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await guarded(file, 'fstat', () => fh.stat(), opts);
    if (!st.isFile()) {
      const kind = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a file';
      throw new ModelFileError('not_found', file, `not a regular file (${kind})`);
    }
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    if (e instanceof ModelFileError) throw e;
    throw new ModelFileError('io', file, `cannot stat: ${(e as Error).message}`, { cause: e });
  }
}

/** A whole small text file (JSON side files), size-capped before it is read, under deadlines. */
export async function readSmallText(file: string, maxBytes: number, opts?: ModelIoOptions): Promise<string> {
  const { fh, size } = await openRegularFile(file, opts);
  try {
    if (size > maxBytes) throw new ModelFileError('header_too_large', file, `file of ${size} bytes exceeds the ${maxBytes}-byte limit`);
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await guarded(file, 'read', () => fh.read(buf, got, size - got, got), opts);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got).toString('utf8');
  } catch (e) {
    if (e instanceof ModelFileError) throw e;
    throw new ModelFileError('io', file, `cannot read: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh.close().catch(() => {});
  }
}
