// The engine over the weights runtime (CPU backend): leases from AcquireWeights, KV from the runtime's scratch
// pool, an engine created while its model is still being swapped in, and eviction refused under a live lease.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Engine, EngineError, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { holdNextMove } from '../../native/ts/testing.ts';

const MODEL = STORIES260K_GGUF;
const REF_IDS = '403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385'
  .split(' ').map(Number);
const MiB = 1 << 20;

async function ids(it: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) if (e.type === 'token') out.push(e.id);
  return out;
}

describe('engine over the weights runtime (CPU)', { skip: needsData() }, () => {
  let source: ModelSource;
  let tokenizer: Tokenizer;
  let rt: Runtime;

  before(async () => {
    source = await openModel(MODEL);
    tokenizer = await loadTokenizer(source);
    rt = Runtime.open({ backend: 'cpu', hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB, scratchBudgetBytes: 64 * MiB });
    rt.register('stories', source.layout);
    await rt.load('stories');
  });
  after(async () => { await rt?.close(); });

  it('refuses a model that is not on (or moving to) the compute tier', async () => {
    await assert.rejects(Engine.create(rt, 'stories', source, tokenizer),
      (e: unknown) => e instanceof EngineError && e.code === 'native' && e.nativeCode === 'not_resident');
  });

  it('runs on an engine created while the swap-in is in flight, KV from the scratch pool', async () => {
    // The swap-in is held at its start: no byte has moved when the engine is created and its first pass starts.
    const release = holdNextMove(rt);
    const swap = rt.swapIn('stories');
    const engine = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 256 });
    try {
      assert.equal(engine.backend, 'cpu');
      assert.equal(rt.residency('stories').state, 'swapping-in');
      const gen = (async () => {
        const out: number[] = [];
        for await (const e of engine.generate({ prompt: [1], maxTokens: 32, temperature: 0, topP: 1, topK: 0 })) {
          if (e.type !== 'token') continue;
          out.push(e.id);
        }
        return out;
      })();
      // The pass waits in waitGroup(0) on the worker thread; the event loop stays free meanwhile.
      await new Promise((r) => setImmediate(r));
      assert.equal(engine.activeSequences, 1);
      release();
      await swap;
      assert.deepEqual(await gen, REF_IDS);
      const kv = engine.stats();
      assert.equal(kv.blocksFree, kv.blocksTotal, 'the finished sequence returned its KV blocks');
      assert.equal(engine.kvBlocksFreeNative(), kv.blocksTotal);
      // The paged KV cache is one allocation from the scratch pool, made with the engine: maxBatch (8) x 256 positions.
      assert.equal(rt.usage().scratch.usedBytes, kv.blocksTotal * 16 * 5 * 32 * 4 * 2);
      // A live lease: the runtime refuses to evict the arena under it.
      await assert.rejects(rt.evict('stories'), (e: unknown) => (e as { code?: string }).code === 'state');
    } finally {
      await engine.close();
    }
    assert.equal(rt.usage().scratch.usedBytes, 0, 'close() returned the KV cache to the scratch pool');
    await rt.evict('stories');
    assert.equal(rt.residency('stories').state, 'host');
  });

  it('holds its KV cache in the scratch pool, sized by kvCacheBytes and capped by the pool\'s free bytes', async () => {
    await rt.swapIn('stories');
    const block = 16 * 5 * 32 * 4 * 2;  // 16 positions x 5 layers x 32 floats x K and V
    const engine = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 256, kvCacheBytes: 30 * block + 100 });
    try {
      assert.equal(engine.stats().blocksTotal, 30);
      assert.equal(rt.usage().scratch.usedBytes, 30 * block);
      let held = 0;
      for await (const e of engine.generate({ prompt: [1], maxTokens: 40, temperature: 0, topP: 1, topK: 0 })) {
        if (e.type === 'token') held = Math.max(held, 30 - engine.stats().blocksFree);
      }
      assert.equal(held, 3, '41 positions = 3 blocks');
      assert.equal(engine.stats().blocksFree, 30);
      // Default: maxBatch x maxContext positions, but never more than the scratch pool has free (64 MiB here).
      const big = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 2048, maxBatch: 256 });
      try {
        const total = big.stats().blocksTotal;
        assert.ok(total * block <= 64 * 1024 * 1024 - 30 * block && total * block > 60 * 1024 * 1024, `${total} blocks`);
      } finally {
        await big.close();
      }
    } finally {
      await engine.close();
    }
  });
});
