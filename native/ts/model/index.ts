// Model files: open and validate Hugging Face folders and GGUF files, plan their arena; writers for tests/demos.
export { openModel } from './open.ts';
export { ModelFileError, isModelFileError, MODEL_FILE_ERROR_CODES, type ModelFileErrorCode } from './errors.ts';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './gguf.ts';
export { readSafetensors, writeSafetensors, type SafetensorsFile, type TensorData } from './safetensors.ts';
export { planLayout, type SourceTensor } from './layout.ts';
export { expectedTensors } from './tensors.ts';
