// Model files: open and validate Hugging Face folders and GGUF files, plan their arena; writers for tests/demos.
export { openModel } from './open.ts';
export { ModelFileError, isModelFileError } from './errors.ts';
export { MODEL_FILE_ERROR_CODES, type ModelFileErrorCode } from '../../../contracts/errors.ts';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufValue } from './gguf.ts';
export { readSafetensors, writeSafetensors, type SafetensorsFile, type TensorData } from './safetensors.ts';
export { planLayout, type SourceTensor } from './layout.ts';
export { expectedTensors } from './tensors.ts';
export { writeHfModel, writeGgufModel, toHfConfigJson, ggufMetadata, type WriteHfOptions, type WriteGgufOptions, type HfTokenizerFiles } from './writers.ts';
export { writeGguf, type GgufSpec, type GgufKv, type GgufTensorSpec } from './gguf-writer.ts';
export { writeTinyModel, tinyConfig, tinyGgufVocab, tinyHfTokenizer, tinyHfSpmTokenizer, type TinyFamily, type TinyModelOptions } from './tiny.ts';
export { tinySpmVocab, tinyBpeVocab, TOKEN_TYPE, type GgufVocab } from './tiny-vocab.ts';
export { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32, encodeValues, decodeValues, prng } from './fill.ts';
