// The compressed disk cache through the real runtime (CPU backend): a compressed host image written to a cache file
// is read back by a cold load instead of the raw files (fewer bytes, state 'compressed' with no encode, bit-exact,
// the same greedy tokens); files written for another identity, truncated, bit-flipped, crafted or not regular files
// are refused with the reason and the raw files are read in the same move.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { writeTinyModel } from '../../native/ts/model/tiny.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';

const MiB = 1 << 20;
const WORK = 8 * MiB;
const ID = '{"test":"identity v1"}';
const greedy = { prompt: [1], maxTokens: 24, temperature: 0, topP: 1, topK: 0 };
/** Cache header layout (native codec/disk_cache.h): imageOffset at byte 48, metaHash at 56, 88 bytes in all. */
const IMAGE_OFFSET_AT = 48;
const META_HASH_AT = 56;
const HEADER_BYTES = 88;

async function ids(it: AsyncIterable<GenerateEvent>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of it) if (e.type === 'token') out.push(e.id);
  return out;
}

describe('compressed disk cache: a tiny bf16 llama through the runtime (cpu)', () => {
  let dir = '';
  let rt: Runtime;
  let source: ModelSource;
  let tokenizer: Tokenizer;
  let rawSum = '';
  let rawIds: number[] = [];
  let segBytes = 0;
  let stored = 0;
  let good = '';

  const gen = async (): Promise<number[]> => {
    const engine = await Engine.create(rt, 'tiny', source, tokenizer, { maxContext: 256 });
    try { return await ids(engine.generate(greedy)); } finally { await engine.close(); }
  };
  const dropHost = async (): Promise<void> => {
    if (rt.residency('tiny').gpu) await rt.evict('tiny');
    if (rt.residency('tiny').host) await rt.drop('tiny');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'swapserve-disk-cache-'));
    const model = join(dir, 'model');
    await writeTinyModel(model, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: 5, shards: 2, config: { hiddenSize: 256, intermediateSize: 768, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 32, maxPositions: 1024, vocabSize: 4096 } });
    source = await openModel(model);
    tokenizer = await loadTokenizer(source);
    segBytes = source.layout.segments.reduce((n, s) => n + s.bytes, 0);
    rt = Runtime.open({ backend: 'cpu', hostBudgetBytes: 64 * MiB, gpuBudgetBytes: 64 * MiB + WORK, codecWorkBytes: WORK, scratchBudgetBytes: 64 * MiB });
    rt.register('tiny', source.layout);
    const raw = await rt.load('tiny');
    assert.equal(raw.cache, undefined, 'a load without a cache file says nothing about one');
    assert.equal(raw.bytes, segBytes);
    rawSum = await rt.checksum('tiny', 'host');
    await rt.swapIn('tiny');
    rawIds = await gen();
    await rt.evict('tiny');
    await assert.rejects(rt.saveHostImage('tiny', join(dir, 'raw.ssc'), ID), /not compressed on the host tier/);
    const c = await rt.compress('tiny');
    assert.equal(c.state, 'compressed', c.reason);
    stored = c.storedBytes;
    good = join(dir, 'good.ssc');
    const bytes = await rt.saveHostImage('tiny', good, ID);
    assert.equal(bytes, statSync(good).size);
    await assert.rejects(rt.saveHostImage('tiny', good, ID), /cannot create .*File exists/, 'created exclusively, never over a file');
  });
  after(async () => { await rt?.close(); rmSync(dir, { recursive: true, force: true }); });

  it('a cold load reads the cache file instead of the raw files: compressed with no encode, bit-exact, same tokens', async () => {
    await dropHost();
    const groups: number[] = [];
    const r = await rt.load('tiny', { cache: { path: good, identity: ID }, onGroup: (g) => groups.push(g) });
    assert.deepEqual(r.cache, { outcome: 'hit', reason: '' });
    assert.equal(r.bytes, statSync(good).size, 'bytes read are the cache file');
    assert.ok(r.bytes < 0.75 * segBytes, `cache file ${r.bytes} bytes vs raw ${segBytes}`);
    assert.deepEqual(groups, source.layout.groups.map((_, i) => i));
    assert.deepEqual(rt.hostCodec('tiny'), { state: 'compressed', ratio: stored / source.layout.totalBytes, storedBytes: stored });
    assert.equal(rt.usage().host.usedBytes, Math.ceil(stored / 4096) * 4096, 'the host budget holds the compressed bytes only');
    assert.equal(await rt.checksum('tiny', 'host'), rawSum);
    for (let i = 0; i < 2; i++) {
      await rt.swapIn('tiny');
      assert.equal(await rt.checksum('tiny', 'gpu'), rawSum);
      assert.deepEqual(await gen(), rawIds);
      await rt.evict('tiny');
    }
    // And it can be written out again from what it read (a worker re-caching after an eviction elsewhere).
    const again = join(dir, 'again.ssc');
    await rt.saveHostImage('tiny', again, ID);
    assert.deepEqual(readFileSync(again), readFileSync(good));
  });

  it('refuses a file written for another identity (stale) and reads the raw files in the same move', async () => {
    await dropHost();
    const r = await rt.load('tiny', { cache: { path: good, identity: ID.replace('v1', 'v2') } });
    assert.equal(r.cache?.outcome, 'stale');
    assert.match(r.cache?.reason ?? '', /identity differs/);
    assert.equal(r.bytes, segBytes);
    assert.equal(rt.hostCodec('tiny').state, 'none');
    assert.equal(rt.usage().host.usedBytes, Math.ceil(source.layout.totalBytes / 4096) * 4096);
    assert.equal(await rt.checksum('tiny', 'host'), rawSum);
    assert.ok(existsSync(good), 'the runtime never deletes a file (the worker does)');
  });

  // Each case: a file derived from the good one, the outcome and the reason the load must report.
  const bytesOf = (): Buffer => readFileSync(good);
  const resign = (b: Buffer): Buffer => {
    // A crafted file: the metadata checksum recomputed over the changed metadata (the runtime's own hash).
    const imageOffset = Number(b.readBigUInt64LE(IMAGE_OFFSET_AT));
    b.writeBigUInt64LE(0n, META_HASH_AT);
    b.writeBigUInt64LE(BigInt(`0x${rt.addon.hashBytes(b.subarray(0, imageOffset))}`), META_HASH_AT);
    return b;
  };
  const cases: { name: string; make: (p: string) => void; outcome: string; reason: RegExp }[] = [
    { name: 'missing', make: () => {}, outcome: 'miss', reason: /cannot open .*No such file/ },
    { name: 'empty', make: (p) => writeFileSync(p, Buffer.alloc(0)), outcome: 'corrupt', reason: /less than a cache header \(truncated\)/ },
    { name: 'truncated to half', make: (p) => writeFileSync(p, bytesOf().subarray(0, statSync(good).size >> 1)), outcome: 'corrupt', reason: /truncated/ },
    { name: 'one byte short', make: (p) => writeFileSync(p, bytesOf().subarray(0, statSync(good).size - 1)), outcome: 'corrupt', reason: /truncated/ },
    { name: 'one byte too long', make: (p) => writeFileSync(p, Buffer.concat([bytesOf(), Buffer.from([0])])), outcome: 'corrupt', reason: /its header says/ },
    { name: 'a bit flipped in the image', make: (p) => { const b = bytesOf(); b[b.length - 1000] ^= 0x10; writeFileSync(p, b); }, outcome: 'corrupt', reason: /image block \d+ checksum mismatch/ },
    { name: 'a bit flipped in the identity', make: (p) => { const b = bytesOf(); b[HEADER_BYTES + 3] ^= 0x01; writeFileSync(p, b); }, outcome: 'corrupt', reason: /metadata checksum mismatch/ },
    { name: 'not a cache file', make: (p) => writeFileSync(p, Buffer.alloc(8192, 7)), outcome: 'corrupt', reason: /bad magic/ },
    { name: 'another codec version', make: (p) => { const b = bytesOf(); b.writeUInt16LE(99, 6); writeFileSync(p, resign(b)); }, outcome: 'stale', reason: /codec version 99/ },
    {
      name: 'a crafted record (metadata re-signed)', outcome: 'corrupt', reason: /entry 0: container sizes do not match its record/,
      make: (p) => { const b = bytesOf(); const at = HEADER_BYTES + ID.length + 8; b.writeBigUInt64LE(b.readBigUInt64LE(at) - 2n, at); writeFileSync(p, resign(b)); },
    },
    { name: 'a directory', make: (p) => mkdirSync(p), outcome: 'corrupt', reason: /not a regular file/ },
    { name: 'a FIFO (must not block)', make: (p) => execFileSync('mkfifo', [p]), outcome: 'corrupt', reason: /not a regular file/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}: ${c.outcome}, and the raw files are read instead (bit-exact)`, async () => {
      await dropHost();
      const p = join(dir, `case-${c.name.replace(/\W+/g, '-')}.ssc`);
      c.make(p);
      const r = await rt.load('tiny', { cache: { path: p, identity: ID } });
      assert.equal(r.cache?.outcome, c.outcome, r.cache?.reason);
      assert.match(r.cache?.reason ?? '', c.reason);
      assert.equal(r.bytes, segBytes);
      assert.equal(rt.hostCodec('tiny').state, 'none');
      assert.equal(await rt.checksum('tiny', 'host'), rawSum);
    });
  }

  it('refuses bad arguments with messages naming them', async () => {
    await dropHost();
    await assert.rejects(rt.load('tiny', { cache: { path: '', identity: ID } }), /Expected a file path for cache\.path/);
    await assert.rejects(rt.load('tiny', { cache: { path: good, identity: '' } }), /for cache\.identity/);
    assert.equal(rt.residency('tiny').state, 'disk', 'nothing started');
  });
});

describe('compressed disk cache: a copy of a cache file works wherever the identity matches', () => {
  it('two runtimes (two workers) read the same file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-disk-cache-2-'));
    const rts: Runtime[] = [];
    try {
      const model = join(dir, 'model');
      await writeTinyModel(model, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: 9, config: { hiddenSize: 128, intermediateSize: 384, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 32, maxPositions: 256, vocabSize: 2048 } });
      const source = await openModel(model);
      for (let i = 0; i < 2; i++) {
        const rt = Runtime.open({ backend: 'cpu', hostBudgetBytes: 32 * MiB, gpuBudgetBytes: 32 * MiB, scratchBudgetBytes: MiB });
        rts.push(rt);
        rt.register('m', source.layout);
      }
      await rts[0].load('m');
      const sum = await rts[0].checksum('m', 'host');
      assert.equal((await rts[0].compress('m')).state, 'compressed');
      const file = join(dir, 'm.ssc');
      await rts[0].saveHostImage('m', join(dir, 'tmp'), ID);
      copyFileSync(join(dir, 'tmp'), file);
      const [a, b] = await Promise.all(rts.map(async (rt) => { if (rt === rts[0]) await rt.drop('m'); return rt.load('m', { cache: { path: file, identity: ID } }); }));
      assert.equal(a.cache?.outcome, 'hit');
      assert.equal(b.cache?.outcome, 'hit');
      for (const rt of rts) assert.equal(await rt.checksum('m', 'host'), sum);
    } finally {
      await Promise.all(rts.map((r) => r.close()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
