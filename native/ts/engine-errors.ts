// Typed errors of the engine: a code from contracts/errors.ts ENGINE_ERROR_CODES, and the native error's code when
// the failure came from the addon.
import { NATIVE_ERROR_CODES, SwapserveError, type EngineErrorCode, type NativeErrorCode } from '../../contracts/errors.ts';

export class EngineError extends SwapserveError<EngineErrorCode> {
  override readonly name = 'EngineError';
  /** The addon's stable code (native/src/common/errors.h) when code is 'native'. */
  readonly nativeCode: NativeErrorCode | null;

  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown; nativeCode?: NativeErrorCode | null }) {
    super(code, message, { cause: options?.cause });
    this.nativeCode = options?.nativeCode ?? null;
  }
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}

/** Wraps an error thrown by the addon; `stack` is the caller's stack captured before the native call. */
export function fromNative(e: unknown, stack?: string): EngineError {
  const raw = (e as { code?: unknown } | null)?.code;
  const code = typeof raw === 'string' && (NATIVE_ERROR_CODES as readonly string[]).includes(raw) ? (raw as NativeErrorCode) : null;
  const message = e instanceof Error ? e.message : String(e);
  const err = code === 'invalid_argument'
    ? new EngineError('invalid_request', message, { cause: e, nativeCode: code })
    : new EngineError('native', message, { cause: e, nativeCode: code });
  if (stack) err.stack = `${err.name}: ${message}\n${stack.split('\n').slice(1).join('\n')}`;
  return err;
}
