// Typed errors of the native addon: one stable code per failure class (contracts/errors.ts NATIVE_ERROR_CODES, the
// names of the C++ enum in native/src/common/errors.h).
import { NATIVE_ERROR_CODES, SwapserveError, type NativeErrorCode } from '../../contracts/errors.ts';

const CODES = new Set<string>(NATIVE_ERROR_CODES);


export class SwapserveNativeError extends SwapserveError<NativeErrorCode> {
  override readonly name = 'SwapserveNativeError';

  /** Out of memory or over budget: evict/drop something and retry. */
  get recoverable(): boolean {
    return this.code === 'oom' || this.code === 'budget';
  }

  /** The runtime can no longer be used: the worker should drain and exit non-zero. */
  get fatal(): boolean {
    return this.code === 'cuda_sticky' || this.code === 'unusable';
  }

  static is(e: unknown, code?: NativeErrorCode): e is SwapserveNativeError {
    return e instanceof SwapserveNativeError && (code === undefined || e.code === code);
  }
}

/**
 * A stack holder captured in JS before a native call: `throw fromNative(err, site)` gives the native message and
 * code with the JS caller's stack (the native side has none worth showing).
 */
export function captureSite(): { stack?: string } {
  const site: { stack?: string } = {};
  Error.captureStackTrace(site, captureSite);
  return site;
}

export function fromNative(err: unknown, site: { stack?: string }): SwapserveNativeError {
  if (err instanceof SwapserveNativeError) return err;
  const raw = err as { code?: unknown; message?: unknown } | null;
  const code = typeof raw?.code === 'string' && CODES.has(raw.code) ? (raw.code as NativeErrorCode) : 'cuda';
  const message = typeof raw?.message === 'string' ? raw.message : String(err);
  const e = new SwapserveNativeError(code, message);
  const frames = site.stack?.split('\n').slice(1).join('\n');
  if (frames) e.stack = `${e.name} [${code}]: ${message}\n${frames}`;
  return e;
}

/** "Expected X for Y but received Z", as a invalid_argument error. */
export function invalidArgument(expected: string, what: string, received: unknown): SwapserveNativeError {
  return new SwapserveNativeError('invalid_argument', `Expected ${expected} for ${what} but received ${describe(received)}`);
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'function') return 'a function';
  return `an object (${Object.prototype.toString.call(v).slice(8, -1)})`;
}
