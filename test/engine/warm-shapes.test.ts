// The shapes a CUDA worker warms at start: every prefill product of its models, deduplicated, capped.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_WARM_MODELS, MAX_WARM_SHAPES, warmModels, warmShapes } from '../../native/ts/warm-shapes.ts';
import type { ModelConfig } from '../../native/ts/types.ts';

const cfg = (over: Partial<ModelConfig>): ModelConfig => ({
  arch: 'llama', hiddenSize: 2048, intermediateSize: 8192, numLayers: 22, numHeads: 32, numKvHeads: 8, headDim: 64,
  vocabSize: 32000, maxPositions: 2048, rmsNormEps: 1e-5, ropeTheta: 1e4, ropeScaling: null, ropeStyle: 'half',
  tieWordEmbeddings: false, attentionBias: false, bosTokenId: 1, eosTokenIds: [2], ...over,
});

describe('warmShapes', () => {
  it('lists the prefill products of a model: q|k|v, q, k|v, o, gate|up, gate or up, down, head', () => {
    assert.deepEqual(warmShapes([{ config: cfg({}), dtype: 'bf16' }]), [
      [2048 + 2 * 512, 2048, 'bf16'], [2048, 2048, 'bf16'], [512, 2048, 'bf16'], [16384, 2048, 'bf16'],
      [8192, 2048, 'bf16'], [2048, 8192, 'bf16'], [32000, 2048, 'bf16'],
    ]);
  });

  it('models of one width share their shapes; quantized ones warm bf16 products; f16 its own; f32 none', () => {
    const a = warmShapes([{ config: cfg({ numLayers: 16 }), dtype: 'bf16' }, { config: cfg({ numLayers: 28 }), dtype: 'q4_k' }]);
    assert.equal(a.length, 7);
    assert.ok(a.every((s) => s[2] === 'bf16'));
    const b = warmShapes([{ config: cfg({}), dtype: 'f16' }, { config: cfg({}), dtype: 'f32' }]);
    assert.equal(b.length, 7);
    assert.ok(b.every((s) => s[2] === 'f16'));
  });

  it(`stops at ${MAX_WARM_SHAPES} shapes`, () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ config: cfg({ hiddenSize: 1024 + 64 * i, intermediateSize: 4096 + 128 * i }), dtype: 'bf16' as const }));
    assert.equal(warmShapes(many).length, MAX_WARM_SHAPES);
  });
});

describe('warmModels', () => {
  it('one entry per engine shape, quantized as bf16, f32 left out, capped', () => {
    assert.deepEqual(warmModels([
      { config: cfg({ numLayers: 16 }), dtype: 'bf16' }, { config: cfg({ numLayers: 28 }), dtype: 'q4_k' },
      { config: cfg({ headDim: 128, numHeads: 16 }), dtype: 'f16' }, { config: cfg({}), dtype: 'f32' },
    ]), [[2048, 8192, 32, 8, 64, 'bf16'], [2048, 8192, 16, 8, 128, 'f16']]);
    const many = Array.from({ length: 20 }, (_, i) => ({ config: cfg({ hiddenSize: 1024 + 64 * i }), dtype: 'bf16' as const }));
    assert.equal(warmModels(many).length, MAX_WARM_MODELS);
  });
});
