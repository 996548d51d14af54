// The host tier's codec through the real runtime (CPU backend): stories260K compressed in the host tier, swapped in
// through the compressed path (CPU decode, per-group readiness), generating the same greedy tokens as the raw path,
// also with an engine created while the swap is in flight; weights that do not compress stay raw; the host budget
// holds the compressed bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { writeTinyModel } from '../../native/ts/model/tiny.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { holdNextMove } from '../../native/ts/testing.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource, WeightLayout } from '../../native/ts/types.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

/** SWAPSERVE_TEST_BACKEND=cuda runs these tests on the CUDA backend (GPU decode; bench/codec/run_device.sh). */
const BACKEND = (process.env.SWAPSERVE_TEST_BACKEND ?? 'cpu') as 'cpu' | 'cuda';
const MiB = 1 << 20;
/** The codec work buffer, carved out of the gpu budget (the CUDA backend's compress needs one): each budget adds it. */
const WORK = 8 * MiB;
const greedy = { prompt: [1], maxTokens: 32, temperature: 0, topP: 1, topK: 0 };

async function ids(it: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) if (e.type === 'token') out.push(e.id);
  return out;
}

describe(`host-tier codec: stories260K compressed, swapped in, same greedy text (${BACKEND})`, { skip: needsData() }, () => {
  let source: ModelSource;
  let tokenizer: Tokenizer;
  let rt: Runtime;
  let rawSum = '';
  let rawIds: number[] = [];

  before(async () => {
    source = await openModel(STORIES260K_GGUF);
    tokenizer = await loadTokenizer(source);
    rt = Runtime.open({ backend: BACKEND, hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB + WORK, codecWorkBytes: WORK, scratchBudgetBytes: 64 * MiB });
    rt.register('stories', source.layout);
    await rt.load('stories');
    rawSum = await rt.checksum('stories', 'host');
    // The raw path's answer.
    await rt.swapIn('stories');
    const engine = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 256 });
    try { rawIds = await ids(engine.generate(greedy)); } finally { await engine.close(); }
    await rt.evict('stories');
  });
  after(async () => { await rt?.close(); });

  it('compresses the host copy (ratio < 0.9) and charges the host budget the compressed bytes', async () => {
    const rawUsed = rt.usage().host.usedBytes;
    assert.equal(rt.hostCodec('stories').state, 'none');
    const r = await rt.compress('stories');
    assert.equal(r.state, 'compressed', r.reason);
    assert.ok(r.ratio > 0.5 && r.ratio < 0.9, `ratio ${r.ratio}`);
    assert.equal(r.rawBytes, source.layout.totalBytes);
    assert.ok(r.storedBytes > 0 && r.storedBytes < 0.9 * source.layout.totalBytes, `stored ${r.storedBytes}`);
    const used = rt.usage().host.usedBytes;
    // The pool's blocks are 4 KiB aligned: the raw block is gone, the compressed one is what the budget holds.
    assert.equal(used, Math.ceil(r.storedBytes / 4096) * 4096, `used ${used} (raw was ${rawUsed})`);
    assert.ok(used < rawUsed);
    const c = rt.hostCodec('stories');
    assert.deepEqual(c, { state: 'compressed', ratio: r.ratio, storedBytes: r.storedBytes });
    assert.equal(await rt.checksum('stories', 'host'), rawSum, 'the compressed host copy decodes to the raw bytes');
    await assert.rejects(rt.compress('stories'), /already compressed/);
  });

  it('swaps in from the compressed copy: groups in order, bit-exact, the same greedy tokens', async () => {
    const groups: number[] = [];
    const r = await rt.swapIn('stories', { onGroup: (g) => groups.push(g) });
    assert.deepEqual(groups, source.layout.groups.map((_, i) => i));
    assert.equal(r.bytes, source.layout.groups.reduce((n, g) => n + g.end - g.start, 0));
    assert.equal(await rt.checksum('stories', 'gpu'), rawSum);
    const engine = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 256 });
    try {
      assert.deepEqual(await ids(engine.generate(greedy)), rawIds);
    } finally { await engine.close(); }
    await rt.evict('stories');
  });

  it('runs an engine created while the compressed swap-in is in flight (execute-while-loading)', async () => {
    const release = holdNextMove(rt);
    const swap = rt.swapIn('stories');
    const engine = await Engine.create(rt, 'stories', source, tokenizer, { maxContext: 256 });
    try {
      assert.equal(rt.residency('stories').state, 'swapping-in');
      const gen = ids(engine.generate(greedy));
      release();
      await swap;
      assert.deepEqual(await gen, rawIds);
    } finally { await engine.close(); }
    await rt.evict('stories');
  });

  it('drops the compressed copy back to none, and the next load is raw again', async () => {
    await rt.drop('stories');
    assert.equal(rt.usage().host.usedBytes, 0);
    assert.equal(rt.hostCodec('stories').state, 'none');
    await rt.load('stories');
    assert.equal(rt.usage().host.usedBytes, Math.ceil(source.layout.totalBytes / 4096) * 4096);
    assert.equal(await rt.checksum('stories', 'host'), rawSum);
  });
});

describe(`host-tier codec: incompressible weights stay raw (${BACKEND})`, () => {
  let dir = '';
  let rt: Runtime;
  const groupBytes = 256 * 1024;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'swapserve-codec-'));
    const file = join(dir, 'w.bin');
    const data = randomBytes(3 * groupBytes);  // uniform random bits: the exponent field carries 8 bits
    writeFileSync(file, data);
    const layout: WeightLayout = {
      totalBytes: 3 * groupBytes,
      tensors: [0, 1, 2].map((g) => ({ name: `t${g}`, dtype: 'bf16', shape: [groupBytes / 2], offset: g * groupBytes, bytes: groupBytes, group: g })),
      groups: [0, 1, 2].map((g) => ({ start: g * groupBytes, end: (g + 1) * groupBytes })),
      segments: [{ file, fileOffset: 0, bytes: 3 * groupBytes, arenaOffset: 0 }],
    };
    rt = Runtime.open({ backend: BACKEND, hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB + WORK, codecWorkBytes: WORK, scratchBudgetBytes: MiB });
    rt.register('random', layout);
  });
  after(async () => { await rt?.close(); rmSync(dir, { recursive: true, force: true }); });

  it('measures a ratio near 1, keeps the raw copy and the raw budget, and says why', async () => {
    await assert.rejects(rt.compress('random'), (e: unknown) => e instanceof Error && /not on the host tier/.test(e.message));
    await rt.load('random');
    const sum = await rt.checksum('random', 'host');
    const used = rt.usage().host.usedBytes;
    const r = await rt.compress('random', { maxRatio: 0.9 });
    assert.equal(r.state, 'raw');
    assert.ok(r.ratio > 0.97, `ratio ${r.ratio}`);
    assert.match(r.reason, /above the threshold/);
    assert.equal(r.storedBytes, 0);
    assert.equal(rt.usage().host.usedBytes, used);
    assert.deepEqual(rt.hostCodec('random'), { state: 'raw', ratio: r.ratio, storedBytes: 0 });
    await rt.swapIn('random');
    assert.equal(await rt.checksum('random', 'gpu'), sum);
    // The verdict survives a drop (no second encode is needed to know).
    await rt.evict('random');
    await rt.drop('random');
    assert.equal(rt.hostCodec('random').state, 'raw');
  });

  it('refuses a bad threshold with a message naming it', async () => {
    await assert.rejects(rt.compress('random', { maxRatio: 1.5 }), /Expected a number in \(0, 1\] for maxRatio but received 1\.5/);
  });
});

// No shared data needed (so it also runs on the GPU machine): a tiny bf16 Llama-family model with random-normal
// weights, which compress like trained ones in the exponent (ratio ~0.67).
describe(`host-tier codec: a tiny bf16 llama compressed and swapped in (${BACKEND})`, () => {
  let dir = '';
  let rt: Runtime;
  let source: ModelSource;
  let tokenizer: Tokenizer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'swapserve-codec-tiny-'));
    await writeTinyModel(dir, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: 3, shards: 2, config: { hiddenSize: 256, intermediateSize: 768, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 32, maxPositions: 1024, vocabSize: 4096 } });
    source = await openModel(dir);
    tokenizer = await loadTokenizer(source);
    rt = Runtime.open({ backend: BACKEND, hostBudgetBytes: 64 * MiB, gpuBudgetBytes: 64 * MiB + WORK, codecWorkBytes: WORK, scratchBudgetBytes: 64 * MiB });
    rt.register('tiny', source.layout);
  });
  after(async () => { await rt?.close(); rmSync(dir, { recursive: true, force: true }); });

  it('compressed (ratio < 0.75), bit-exact after swapIn, the same greedy tokens as the raw path', async () => {
    await rt.load('tiny');
    const sum = await rt.checksum('tiny', 'host');
    const gen = async () => {
      const engine = await Engine.create(rt, 'tiny', source, tokenizer, { maxContext: 256 });
      try { return await ids(engine.generate(greedy)); } finally { await engine.close(); }
    };
    await rt.swapIn('tiny');
    const rawIds = await gen();
    await rt.evict('tiny');
    const r = await rt.compress('tiny');
    assert.equal(r.state, 'compressed', r.reason);
    assert.ok(r.ratio < 0.75, `ratio ${r.ratio}`);
    for (let i = 0; i < 3; i++) {  // the staging ring and the work buffer are reused across swaps
      const groups: number[] = [];
      await rt.swapIn('tiny', { onGroup: (g) => groups.push(g) });
      assert.deepEqual(groups, source.layout.groups.map((_, k) => k));
      assert.equal(await rt.checksum('tiny', 'gpu'), sum);
      assert.deepEqual(await gen(), rawIds);
      await rt.evict('tiny');
    }
  });

  it('with a resident prefix (partial residency), decodes only the groups after it: bit-exact, same greedy tokens', async () => {
    // The model is compressed on the host (the test above) and parked: swap in, then keep its first 2 groups.
    assert.equal(rt.hostCodec('tiny').state, 'compressed');
    const sum = await rt.checksum('tiny', 'host');
    await rt.swapIn('tiny');
    const engine0 = await Engine.create(rt, 'tiny', source, tokenizer, { maxContext: 256 });
    const want = await ids(engine0.generate(greedy)).finally(() => engine0.close());
    await rt.evict('tiny', { keepGroups: 2 });
    assert.equal(rt.residentPrefix('tiny').groups, 2);
    const groups: number[] = [];
    const r = await rt.swapIn('tiny', { onGroup: (g) => groups.push(g) });
    const ends = source.layout.groups.map((g) => g.end);
    assert.equal(r.bytes, ends[ends.length - 1] - ends[1], 'only the groups after the prefix are decoded and counted');
    assert.deepEqual(groups, source.layout.groups.map((_, k) => k), 'every group reported, the prefix first');
    assert.equal(await rt.checksum('tiny', 'gpu'), sum, 'bit-exact with the whole model');
    const engine = await Engine.create(rt, 'tiny', source, tokenizer, { maxContext: 256 });
    assert.deepEqual(await ids(engine.generate(greedy)).finally(() => engine.close()), want);
    await rt.evict('tiny');
  });
});
