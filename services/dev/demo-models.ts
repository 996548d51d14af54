// Demo models for `swapserve up` without a config: tiny, RANDOM weights (they produce gibberish), written once,
// with budgets such that one fits the GPU tier and all fit the host tier, so all three paths show up at once.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyModel, type TinyFamily } from '../../native/ts/model/tiny.ts';
import type { ModelEntry } from '../config/config.ts';

const DEMOS: { id: string; family: TinyFamily; seed: number }[] = [
  { id: 'demo-llama', family: 'llama', seed: 1 },
  { id: 'demo-qwen', family: 'qwen2', seed: 2 },
  { id: 'demo-mistral', family: 'mistral', seed: 3 },
];

/** A few MB each: big enough for visible load/swap times, small enough to write in a second. */
const DEMO_SHAPE = { hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 32 };

export interface DemoSetup {
  root: string;
  models: Pick<ModelEntry, 'id' | 'path'>[];
  budgets: { hostBytes: number; gpuBytes: number };
  created: boolean;
}

export async function ensureDemoModels(dataDir: string): Promise<DemoSetup> {
  const root = join(dataDir, 'demo-models');
  mkdirSync(root, { recursive: true });
  let created = false;
  const models: Pick<ModelEntry, 'id' | 'path'>[] = [];
  for (const d of DEMOS) {
    const file = join(root, `${d.id}.gguf`);
    if (!existsSync(file)) {
      await writeTinyModel(file, { family: d.family, format: 'gguf', seed: d.seed, config: DEMO_SHAPE });
      created = true;
    }
    models.push({ id: d.id, path: file });
  }
  // Arena size ~ file size (f32 weights + a small header/vocab); leave slack for alignment.
  const sizes = models.map((m) => statSync(m.path).size);
  const largest = Math.max(...sizes);
  const total = sizes.reduce((a, b) => a + b, 0);
  return { root, models, budgets: { gpuBytes: Math.floor(largest * 1.5), hostBytes: total * 2 }, created };
}
