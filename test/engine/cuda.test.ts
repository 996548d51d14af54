// The engine on the CUDA backend, checked against the CPU backend (runs where the CUDA addon is built and a GPU
// is visible; skipped elsewhere, e.g. CI): stories260K reference ids, batching, and each family's logits.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';

import { resolveBackend } from '../../native/ts/addon.ts';
import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { buildModelDesc, loadEngineAddon, type EngineAddon } from '../../native/ts/engine-native.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { makeTinyModel, type TinyFamily } from '../helpers/make-model.ts';

const REF_IDS = '403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385'
  .split(' ').map(Number);
const MiB = 1 << 20;
const cuda = resolveBackend('auto') === 'cuda';

async function ids(it: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) if (e.type === 'token') out.push(e.id);
  return out;
}

describe('engine on the CUDA backend against the CPU backend', { skip: cuda ? needsData() : 'no CUDA build or no GPU visible' }, () => {
  const made: string[] = [];
  let rt: Runtime;
  after(async () => {
    await rt?.close();
    await Promise.all(made.map((p) => rm(dirname(p), { recursive: true, force: true })));
  });

  async function onGpu(id: string, source: ModelSource) {
    rt ??= Runtime.open({ backend: 'cuda', hostBudgetBytes: 64 * MiB, gpuBudgetBytes: 256 * MiB, scratchBudgetBytes: 512 * MiB });
    rt.register(id, source.layout);
    await rt.loadToGpu(id);
  }

  it('stories260K: greedy ids equal the reference, alone and in a batch', async () => {
    const source = await openModel(STORIES260K_GGUF);
    const tok = await loadTokenizer(source);
    await onGpu('stories', source);
    const engine = await Engine.create(rt, 'stories', source, tok, { maxContext: 256 });
    try {
      assert.equal(engine.backend, 'cuda');
      const greedy = (prompt: number[], n: number) => ids(engine.generate({ prompt, maxTokens: n, temperature: 0, topP: 1, topK: 0 }));
      assert.deepEqual(await greedy([1], 32), REF_IDS);
      const prompts = [[1], [1, 403, 407], [1, 385, 410, 317], [1, ...REF_IDS.slice(0, 10)]];
      const together = await Promise.all(prompts.map((p) => greedy(p, 16)));
      assert.deepEqual(together[0], REF_IDS.slice(0, 16));
      assert.deepEqual(together[3], REF_IDS.slice(10, 26));
      // Seeded sampling gives the same tokens on the GPU as on the CPU (the sampler is shared; logits agree).
      const cpu = await Engine.createOnHostArena(await readArena(source), source, tok, { maxContext: 256 });
      try {
        const req = { prompt: [1], maxTokens: 12, temperature: 0.8, topP: 0.9, topK: 20, seed: 5 };
        assert.deepEqual(await ids(engine.generate(req)), await ids(cpu.generate(req)));
      } finally {
        await cpu.close();
      }
    } finally {
      await engine.close();
    }
  });

  for (const family of ['llama', 'llama3', 'mistral', 'qwen2'] as TinyFamily[]) {
    it(`${family} (hf, bf16): last-position logits agree with the CPU backend`, async () => {
      const path = await makeTinyModel({ family, format: 'hf', dtype: 'bf16', seed: 11 });
      made.push(path);
      const source = await openModel(path);
      await onGpu(family, source);
      const addon = rt.addon as unknown as EngineAddon;
      const desc = buildModelDesc(source);
      const opts = { maxBatch: 4, maxContext: 64, threads: 0 };
      const gpu = new addon.Engine(rt.native, family, desc, opts);
      const cpu = new (loadEngineAddon().Engine)(await readArena(source), family, desc, { ...opts, scratchBudgetBytes: 1 << 24, numGroups: source.layout.groups.length });
      try {
        const prompt = Int32Array.from([5, 17, 3, 40, 9, 22, 31, 8]);
        const batch = { seqs: Int32Array.of(1), counts: Int32Array.of(prompt.length), positions: Int32Array.of(0), tokens: prompt };
        const [g, c] = [await gpu.logits(batch), await cpu.logits(batch)];
        let maxErr = 0, scale = 0;
        for (let i = 0; i < c.length; i++) { maxErr = Math.max(maxErr, Math.abs(g[i] - c[i])); scale = Math.max(scale, Math.abs(c[i])); }
        // bf16 activations on the GPU, fp32 on the CPU.
        assert.ok(maxErr <= 0.03 * Math.max(1, scale), `max |gpu - cpu| = ${maxErr} (logits up to ${scale})`);
      } finally {
        gpu.close();
        cpu.close();
      }
    });
  }
});
