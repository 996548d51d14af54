// Typed errors for model files: a code from contracts/errors.ts MODEL_FILE_ERROR_CODES, the file, a clear message.
import { SwapserveError, type ModelFileErrorCode } from '../../../contracts/errors.ts';

/** A model file or folder is unusable. `code` is stable (tests and the CLI key on it); `file` names the culprit. */
export class ModelFileError extends SwapserveError<ModelFileErrorCode> {
  override readonly name = 'ModelFileError';
  readonly file: string;

  constructor(code: ModelFileErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(code, `${file}: ${message}`, options);
    this.file = file;
  }
}

export function isModelFileError(e: unknown): e is ModelFileError {
  return e instanceof ModelFileError;
}
