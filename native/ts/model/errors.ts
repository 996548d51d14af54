// Typed errors for model files: one stable code per way a file can be wrong, the file, and a clear message.

export const MODEL_FILE_ERROR_CODES = {
  NOT_FOUND: 'the path does not exist or is not a model folder / .gguf file',
  IO: 'reading the file failed',
  TRUNCATED: 'the file ends before a structure it declares',
  HEADER_TOO_LARGE: 'a declared header or string length is larger than allowed',
  BAD_JSON: 'a JSON file or header does not parse or has the wrong shape',
  BAD_HEADER: 'a safetensors header entry is malformed',
  UNKNOWN_DTYPE: 'a tensor has a dtype this format does not define',
  UNSUPPORTED_DTYPE: 'a tensor has a known dtype that swapserve cannot run yet (e.g. quantized GGUF)',
  OFFSET_GAP: 'tensor data ranges leave a gap',
  OFFSET_OVERLAP: 'tensor data ranges overlap',
  SIZE_MISMATCH: 'a tensor byte size does not match its shape and dtype, or the file size does not match the data',
  OUT_OF_BOUNDS: 'a tensor lies (partly) outside the file',
  BAD_MAGIC: 'the file is not a GGUF file',
  BAD_VERSION: 'unsupported GGUF version',
  BAD_METADATA: 'a GGUF metadata value has the wrong type or is invalid',
  BAD_ALIGNMENT: 'general.alignment is not a power of two, or a tensor offset is not aligned',
  DUPLICATE_TENSOR: 'a tensor name occurs twice',
  MISSING_TENSOR: 'a tensor the architecture needs is missing',
  UNEXPECTED_TENSOR: 'a tensor the architecture does not use is present',
  SHAPE_MISMATCH: 'a tensor shape does not match the one the config implies',
  BAD_CONFIG: 'config.json / GGUF hyper-parameters are missing or inconsistent',
  UNSUPPORTED_ARCH: 'the architecture is not one swapserve runs',
  BAD_INDEX: 'model.safetensors.index.json is malformed or disagrees with the shards',
} as const;

export type ModelFileErrorCode = keyof typeof MODEL_FILE_ERROR_CODES;

/** A model file or folder is unusable. `code` is stable (tests and the CLI key on it); `file` names the culprit. */
export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
  readonly code: ModelFileErrorCode;
  readonly file: string;

  constructor(code: ModelFileErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.code = code;
    this.file = file;
  }
}

export function isModelFileError(e: unknown): e is ModelFileError {
  return e instanceof ModelFileError;
}
