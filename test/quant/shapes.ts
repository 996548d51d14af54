// Shared by the quantization tests: the tiny-model shape whose every matrix row is a multiple of 256 (K-quants).
import type { ModelConfig } from '../../native/ts/types.ts';

/** C = 256, F = 512, 4 heads of 64 (2 KV heads): rows of 256 and 512 values, whole K-quant super-blocks. */
export const QCONFIG: Partial<ModelConfig> = { hiddenSize: 256, intermediateSize: 512, numHeads: 4, numKvHeads: 2, headDim: 64 };
