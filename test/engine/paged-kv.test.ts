// The paged KV cache (native/src/engine/kv_pool.h) and KV-driven admission (native/ts/engine.ts): logits read
// through fragmented block tables match the float64 reference, blocks return the moment sequences end, a burst
// larger than the cache waits and completes, preemption-and-recompute keeps every sequence's tokens, and 2,000
// sequences leave the block count flat.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, EngineError, MAX_BATCH, type GenerateEvent, type GenerateRequest } from '../../native/ts/engine.ts';
import { buildModelDesc, loadEngineAddon } from '../../native/ts/engine-native.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { needsData } from '../helpers/requires.ts';
import { referenceLogits } from './reference-forward.ts';

const BLOCK = 16;
// stories260K: 5 layers, 4 KV heads of 8, fp32 K and V: bytes of one block of 16 positions.
const STORIES_BLOCK_BYTES = 2 * 5 * 32 * 4 * BLOCK;

const greedy = (prompt: number[], maxTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest =>
  ({ prompt, maxTokens, temperature: 0, topP: 1, topK: 0, ...extra });

async function collect(it: AsyncIterable<GenerateEvent>) {
  const ids: number[] = [];
  let text = '';
  let done: Extract<GenerateEvent, { type: 'done' }> | null = null;
  for await (const e of it) {
    if (e.type === 'token') { ids.push(e.id); text += e.text; } else done = e;
  }
  assert.ok(done, 'the stream ends with a done event');
  return { ids, text, done };
}

/** Deterministic prompts of varied lengths from a seed (BOS first). */
function prompts(n: number, vocab: number, minLen: number, maxLen: number, seed: number): number[][] {
  let x = seed * 2654435761 + 1;
  const rnd = () => { x = (x * 1103515245 + 12345) >>> 0; return x; };
  return Array.from({ length: n }, () => [1, ...Array.from({ length: minLen - 1 + (rnd() % (maxLen - minLen + 1)) }, () => 3 + (rnd() % (vocab - 3)))]);
}

describe('paged KV cache: logits through block tables (tiny llama3, f32)', () => {
  let dir = '';
  after(async () => { if (dir) await rm(dirname(dir), { recursive: true, force: true }); });

  it('a sequence whose blocks interleave with another one\'s matches the float64 reference at every position', async () => {
    dir = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 5 });
    const source = await openModel(dir);
    const arena = await readArena(source);
    const V = source.config.vocabSize;
    const prompt = Array.from({ length: 50 }, (_, i) => (i * 7 + 3) % V);
    const other = Array.from({ length: 50 }, (_, i) => (i * 5 + 1) % V);
    const ref = referenceLogits(source, arena, prompt);
    const addon = loadEngineAddon();
    const bytesPerBlock = 2 * source.config.numLayers * source.config.numKvHeads * source.config.headDim * 4 * BLOCK;
    const native = new addon.Engine(arena, 'm', buildModelDesc(source), {
      maxBatch: 2, maxContext: 64, threads: 0, kvCacheBytes: 9 * bytesPerBlock, scratchBudgetBytes: 1 << 24,
      numGroups: source.layout.groups.length,
    });
    try {
      assert.deepEqual(native.kvStats(), { blockTokens: BLOCK, blocksTotal: 9, blocksFree: 9 });
      // Chunks of 7 and 5 tokens of two sequences alternate, so each one's blocks are scattered through the pool.
      const got: Float32Array[] = [];
      let pa = 0, pb = 0;
      while (pa < prompt.length) {
        const na = Math.min(7, prompt.length - pa), nb = Math.min(5, other.length - pb);
        const seqs = nb > 0 ? [1, 2] : [1];
        const logits = await native.logits({
          seqs: Int32Array.from(seqs), counts: Int32Array.from(nb > 0 ? [na, nb] : [na]),
          positions: Int32Array.from(nb > 0 ? [pa, pb] : [pa]),
          tokens: Int32Array.from([...prompt.slice(pa, pa + na), ...(nb > 0 ? other.slice(pb, pb + nb) : [])]),
        });
        got[pa + na - 1] = logits.subarray(0, V);
        pa += na;
        pb += nb;
      }
      // 50 positions of seq 1 (4 blocks) + 40 of seq 2 (3 blocks), taken in turns: seq 1's ids are not consecutive.
      assert.equal(native.kvStats()?.blocksFree, 2);
      for (const [p, row] of got.entries()) {
        if (!row) continue;
        let maxErr = 0, scale = 0;
        for (let i = 0; i < V; i++) {
          maxErr = Math.max(maxErr, Math.abs(row[i] - ref[p][i]));
          scale = Math.max(scale, Math.abs(ref[p][i]));
        }
        assert.ok(maxErr <= 1e-4 * Math.max(1, scale), `position ${p}: max |error| ${maxErr} (logits up to ${scale})`);
      }
      // A pass that needs more blocks than are free is refused whole, taking none.
      await assert.rejects(native.logits({ seqs: Int32Array.of(3), counts: Int32Array.of(40), positions: Int32Array.of(0), tokens: new Int32Array(40) }),
        (e: unknown) => (e as { code?: string }).code === 'budget');
      assert.equal(native.kvStats()?.blocksFree, 2);
      native.release(1);
      native.release(2);
      assert.equal(native.kvStats()?.blocksFree, 9);
    } finally {
      native.close();
    }
    assert.equal(native.kvStats(), null);
  });
});

describe('paged KV cache on stories260K (CPU)', { skip: needsData() }, () => {
  let source: ModelSource;
  let arena: Uint8Array;
  let tok: Tokenizer;
  const aloneCache = new Map<string, { ids: number[]; text: string }>();

  before(async () => {
    source = await openModel(STORIES260K_GGUF);
    arena = await readArena(source);
    tok = await loadTokenizer(source);
  });

  /** Each request run alone on a roomy engine (the reference a batched run must reproduce). */
  async function alone(reqs: GenerateRequest[]): Promise<{ ids: number[]; text: string }[]> {
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 512, maxBatch: 1 });
    try {
      const out = [];
      for (const r of reqs) {
        const key = JSON.stringify(r);
        let v = aloneCache.get(key);
        if (!v) {
          const c = await collect(e.generate(r));
          v = { ids: c.ids, text: c.text };
          aloneCache.set(key, v);
        }
        out.push(v);
      }
      return out;
    } finally {
      await e.close();
    }
  }

  it('stats(): capacity from kvCacheBytes; blocks committed while sequences run, all back the moment they end', async () => {
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 256, maxBatch: 4, kvCacheBytes: 40 * STORIES_BLOCK_BYTES });
    try {
      assert.deepEqual(e.stats(), { active: 0, waiting: 0, blockTokens: BLOCK, blocksTotal: 40, blocksFree: 40, maxBatch: 4 });
      const it = e.generate(greedy([1], 60))[Symbol.asyncIterator]();
      await it.next();
      const s = e.stats();
      assert.equal(s.active, 1);
      assert.ok(s.blocksFree < 40, 'a running sequence holds blocks');
      // Cancelled, stopped and length-ended sequences all return their blocks.
      const ac = new AbortController();
      const cancelled = collect(e.generate(greedy([1, 403], 100), ac.signal));
      await new Promise((r) => setImmediate(r));
      ac.abort();
      assert.equal((await cancelled).done.finishReason, 'cancelled');
      await it.return?.();
      await collect(e.generate(greedy([1, 385], 10)));
      while (e.activeSequences > 0) await new Promise((r) => setImmediate(r));
      assert.deepEqual(e.stats(), { active: 0, waiting: 0, blockTokens: BLOCK, blocksTotal: 40, blocksFree: 40, maxBatch: 4 });
      assert.equal(e.kvBlocksFreeNative(), 40);
    } finally {
      await e.close();
    }
  });

  it('maxBatch above 256 is refused; a cache too small for a prompt fails that request with budget, others run', async () => {
    await assert.rejects(Engine.createOnHostArena(arena, source, tok, { maxBatch: MAX_BATCH + 1 }),
      (e: unknown) => e instanceof EngineError && e.code === 'invalid_request' && /maxBatch/.test(e.message));
    await assert.rejects(Engine.createOnHostArena(arena, source, tok, { kvCacheBytes: -1 }),
      (e: unknown) => e instanceof EngineError && e.code === 'invalid_request');
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 256, kvCacheBytes: 2 * STORIES_BLOCK_BYTES });
    try {
      const long = Array.from({ length: 40 }, (_, i) => 3 + i);
      await assert.rejects(collect(e.generate(greedy([1, ...long], 4))),
        (err: unknown) => err instanceof EngineError && err.code === 'native' && err.nativeCode === 'budget');
      const [ref] = await alone([greedy([1], 20)]);
      assert.deepEqual((await collect(e.generate(greedy([1], 20)))).ids, ref.ids);
      // Alone and still outgrowing the whole cache (32 positions): fails with budget instead of recomputing forever.
      await assert.rejects(collect(e.generate(greedy([1], 60))),
        (err: unknown) => err instanceof EngineError && err.nativeCode === 'budget');
      assert.equal(e.stats().blocksFree, 2);
      assert.equal(e.kvBlocksFreeNative(), 2);
    } finally {
      await e.close();
    }
  });

  it('a burst larger than the KV cache waits in the queue and completes with the text each request gets alone', async () => {
    // 12 blocks = 192 positions; 24 requests of 9..24 prompt tokens + 24 completion tokens (3 blocks each at the end).
    const reqs = prompts(24, source.config.vocabSize, 9, 24, 3).map((p) => greedy(p, 24));
    const ref = await alone(reqs);
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 256, maxBatch: 16, kvCacheBytes: 12 * STORIES_BLOCK_BYTES, prefillChunk: 64 });
    try {
      // Observed between steps: requests waiting while maxBatch slots were free = waiting for KV blocks.
      let blockedOnKv = 0, maxActive = 0, minFree = Infinity;
      const watch = setInterval(() => {
        const s = e.stats();
        if (s.waiting > 0 && s.active < s.maxBatch) blockedOnKv++;
        maxActive = Math.max(maxActive, s.active);
        minFree = Math.min(minFree, s.blocksFree);
      }, 1);
      const got = await Promise.all(reqs.map((r) => collect(e.generate(r))));
      clearInterval(watch);
      for (let i = 0; i < reqs.length; i++) {
        assert.deepEqual(got[i].ids, ref[i].ids, `request ${i}`);
        assert.equal(got[i].text, ref[i].text);
        assert.equal(got[i].done.finishReason, 'length');
      }
      assert.ok(blockedOnKv > 0, 'requests waited for blocks with batch slots free');
      assert.ok(maxActive < 16 && maxActive >= 2, `memory, not maxBatch, bounded the batch (most active: ${maxActive})`);
      assert.ok(minFree >= 0);
      assert.equal(e.stats().blocksFree, 12);
      assert.equal(e.kvBlocksFreeNative(), 12);
    } finally {
      await e.close();
    }
  });

  it('a running sequence that needs a block when none is free preempts the youngest, which recomputes and gets its own tokens', async () => {
    // 16 blocks = 256 positions; four sequences growing to 121 positions (8 blocks each) cannot all stay resident.
    const reqs = [greedy([1], 120), greedy([1, 403], 119), greedy([1, 385, 410], 118, { temperature: 0.9, topP: 0.95, seed: 7 }),
      greedy([1, 317, 426, 338], 117, { temperature: 1, topK: 40, seed: 11 })];
    const ref = await alone(reqs);
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 256, maxBatch: 4, kvCacheBytes: 16 * STORIES_BLOCK_BYTES });
    try {
      const got = await Promise.all(reqs.map((r) => collect(e.generate(r))));
      assert.ok(e.preemptions > 0, 'the cache ran out while all four decoded');
      for (let i = 0; i < reqs.length; i++) {
        assert.deepEqual(got[i].ids, ref[i].ids, `request ${i} (greedy and seeded sampling) unchanged by preemption`);
        assert.equal(got[i].text, ref[i].text);
        assert.equal(got[i].done.completionTokens, reqs[i].maxTokens);
      }
      assert.equal(e.stats().blocksFree, 16);
      assert.equal(e.kvBlocksFreeNative(), 16);
    } finally {
      await e.close();
    }
  });

  it('64 sequences batched together (maxBatch 64, fragmented blocks) each get the tokens they get alone', async () => {
    const reqs = prompts(64, source.config.vocabSize, 2, 40, 9).map((p, i) => greedy(p, 12 + (i % 9)));
    const ref = await alone(reqs);
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 128, maxBatch: 64, prefillChunk: 256 });
    try {
      const got = await Promise.all(reqs.map((r) => collect(e.generate(r))));
      for (let i = 0; i < reqs.length; i++) assert.deepEqual(got[i].ids, ref[i].ids, `request ${i}`);
      assert.equal(e.stats().blocksFree, e.stats().blocksTotal);
    } finally {
      await e.close();
    }
  });

  it('2,000 short sequences leave the free block count, the scratch pool and RSS flat', async () => {
    const e = await Engine.createOnHostArena(arena, source, tok, { maxContext: 64, maxBatch: 32, kvCacheBytes: 48 * STORIES_BLOCK_BYTES });
    try {
      const total = e.stats().blocksTotal;
      const reqs = prompts(2000, source.config.vocabSize, 2, 20, 21).map((p) => greedy(p, 3));
      let scratchAfterFirst = -1, rssAfterFirst = 0;
      for (let wave = 0; wave < 10; wave++) {
        const got = await Promise.all(reqs.slice(wave * 200, wave * 200 + 200).map((r) => collect(e.generate(r))));
        for (const g of got) assert.equal(g.done.completionTokens, 3);
        assert.equal(e.stats().blocksFree, total, `after wave ${wave}`);
        assert.equal(e.kvBlocksFreeNative(), total);
        const used = (e as unknown as { native: { scratchUsedBytes: number } }).native.scratchUsedBytes;
        if (wave === 0) {
          scratchAfterFirst = used;
          rssAfterFirst = process.memoryUsage().rss;
        } else {
          assert.equal(used, scratchAfterFirst, 'the scratch pool holds the same bytes (the KV pool, made once)');
        }
      }
      // 1,800 more sequences: a per-sequence leak of even one old-style KV grant (256 positions, 320 KiB) would add
      // ~560 MiB.
      const grown = process.memoryUsage().rss - rssAfterFirst;
      assert.ok(grown < 64 * 1024 * 1024, `RSS grew ${(grown / 1048576).toFixed(1)} MiB over 1,800 sequences`);
    } finally {
      await e.close();
    }
  });
});
