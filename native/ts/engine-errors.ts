// Typed errors of the engine: stable codes (named as in contracts/errors.ts where one exists there, so
// the worker maps them one to one) and the native error's code when the failure came from the addon.

export const ENGINE_ERROR_CODES = {
  invalid_request: 'a generate request or engine option is malformed',
  context_length_exceeded: 'prompt + maxTokens is longer than the engine context (maxContext)',
  closed: 'the engine was closed',
  decode_failed: 'a sampled token id could not be turned into text (e.g. a model vocab larger than its tokenizer\'s)',
  native: 'the native engine failed (see nativeCode: SWAPSERVE_BUDGET, SWAPSERVE_OOM, SWAPSERVE_CUDA_STICKY, ...)',
} as const;

export type EngineErrorCode = keyof typeof ENGINE_ERROR_CODES;

export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: EngineErrorCode;
  /** The addon's stable code (native/src/common/errors.h) when code is 'native'. */
  readonly nativeCode: string | null;

  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown; nativeCode?: string | null }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.nativeCode = options?.nativeCode ?? null;
  }
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}

/** Wraps an error thrown by the addon; `stack` is the caller's stack captured before the native call. */
export function fromNative(e: unknown, stack?: string): EngineError {
  const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : null;
  const message = e instanceof Error ? e.message : String(e);
  const err = code === 'SWAPSERVE_INVALID_ARGUMENT'
    ? new EngineError('invalid_request', message, { cause: e, nativeCode: code })
    : new EngineError('native', message, { cause: e, nativeCode: code });
  if (stack) err.stack = `${err.name}: ${message}\n${stack.split('\n').slice(1).join('\n')}`;
  return err;
}
