// Weights runtime (CPU backend): 1,000 load / swapIn / evict / drop cycles keep the bytes exact and RSS flat, and a
// real model file (stories260K.gguf, planned by openModel) round-trips through every tier.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { makeRandomModel } from './fixture.ts';

const MiB = 1024 * 1024;
/** SWAPSERVE_TEST_BACKEND=cuda runs these tests against the CUDA backend (on the GPU machine). */
const BACKEND = (process.env.SWAPSERVE_TEST_BACKEND ?? 'cpu') as 'cpu' | 'cuda';
const here = dirname(fileURLToPath(import.meta.url));
const STORIES = join(here, '..', '..', '..', 'shared', 'data', 'models', 'stories260K', 'stories260K.gguf');

describe(`runtime endurance (${BACKEND} backend)`, () => {
  it('1,000 load/swapIn/evict/drop cycles: RSS stays flat and the bytes stay exact', async () => {
    const m = makeRandomModel({ groups: 4, tensorsPerGroup: 2, tensorBytes: 128 * 1024, seed: 11 });
    const rt = Runtime.open({ backend: BACKEND, hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB, scratchBudgetBytes: MiB, stagingBytes: MiB, readThreads: 2 });
    try {
      await rt.hostReady;
      rt.register('m', m.layout);
      const expected = rt.addon.hashBytes(m.expected);
      let groups = 0;
      const cycle = async (i: number) => {
        await rt.load('m', { onProgress: () => {} });
        await rt.swapIn('m', { onGroup: () => { groups++; } });
        if (i % 100 === 0) assert.equal(await rt.checksum('m', 'gpu'), expected, `cycle ${i}`);
        await rt.evict('m');
        await rt.drop('m');
      };
      for (let i = 0; i < 100; i++) await cycle(i);  // warm-up: pools faulted in, JIT settled
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      for (let i = 100; i < 1000; i++) await cycle(i);
      global.gc?.();
      const grown = process.memoryUsage().rss - rss0;
      assert.equal(groups, 1000 * 4);
      assert.deepEqual(rt.usage().host.usedBytes + rt.usage().gpu.usedBytes, 0);
      // 900 cycles move ~3.6 GB through the tiers; a leak of even one buffer per cycle would show as >= 900 KiB.
      assert.ok(grown < 16 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB over 900 cycles`);
    } finally {
      await rt.close();
      m.cleanup();
    }
  });
});

describe(`runtime with a real model file (${BACKEND} backend)`, () => {
  it('stories260K.gguf, planned by openModel, round-trips through load, swapIn and loadToGpu', { skip: !existsSync(STORIES) && 'shared data missing' }, async () => {
    const src = await openModel(STORIES);
    const rt = Runtime.open({ backend: BACKEND, hostBudgetBytes: 4 * MiB, gpuBudgetBytes: 4 * MiB, scratchBudgetBytes: MiB, stagingBytes: MiB });
    try {
      rt.register('stories', src.layout);
      // The expected bytes, read with plain fs from the file at each segment's offset.
      const { readFileSync } = await import('node:fs');
      const file = readFileSync(STORIES);
      const expected = rt.addon.hashBytes(Buffer.concat(src.layout.segments.map((s) => file.subarray(s.fileOffset, s.fileOffset + s.bytes))));
      const groups: number[] = [];
      await rt.load('stories');
      assert.equal(await rt.checksum('stories', 'host'), expected);
      await rt.swapIn('stories', { onGroup: (g) => groups.push(g) });
      assert.deepEqual(groups, src.layout.groups.map((_, i) => i));
      assert.equal(groups.length, src.config.numLayers + 2);
      assert.equal(await rt.checksum('stories', 'gpu'), expected);
      await rt.evict('stories');
      await rt.drop('stories');
      await rt.loadToGpu('stories');
      assert.equal(await rt.checksum('stories', 'gpu'), expected);
      await rt.evict('stories');
    } finally {
      await rt.close();
    }
  });
});
