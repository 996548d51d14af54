// The codec's device work buffer is part of the GPU budget (native/src/runtime/codec/design.md "Device memory"): a
// runtime opened with codecWorkBytes keeps gpuBudgetBytes - codecWorkBytes for models (the same on the CPU backend,
// which allocates nothing for it), a model that fits the whole budget but not what is left is refused, the worker
// reserves config hostCodec.workBytes when compression is on and publishes the reduced GPU budget to the scheduler,
// and a model whose tables would not fit beside the staging slots stays raw instead of growing the buffer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { writeTinyModel } from '../../native/ts/model/tiny.ts';
import { CODEC_MIN_WORK_BYTES, Runtime } from '../../native/ts/runtime.ts';
import { codec } from '../../native/ts/testing.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { ConfigError, GPU_SHARE_ENV, parseConfig } from '../../services/config/config.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { needsData } from '../helpers/requires.ts';

const MiB = 1 << 20;

describe('runtime: the codec work buffer comes out of gpuBudgetBytes (CPU backend)', () => {
  let dir = '';
  let source: ModelSource;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'swapserve-codec-budget-'));
    // ~11 MB of bf16: fits a 16 MiB gpu budget, not the 8 MiB left beside an 8 MiB work buffer.
    await writeTinyModel(dir, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: 3, config: { hiddenSize: 256, intermediateSize: 768, numLayers: 4, numHeads: 8, numKvHeads: 4, headDim: 32, maxPositions: 1024, vocabSize: 4096 } });
    source = await openModel(dir);
    assert.ok(source.layout.totalBytes > 8 * MiB && source.layout.totalBytes < 16 * MiB, `${source.layout.totalBytes} bytes`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const open = (codecWorkBytes?: number) => Runtime.open({ backend: 'cpu', hostBudgetBytes: 32 * MiB, gpuBudgetBytes: 16 * MiB, scratchBudgetBytes: MiB, ...(codecWorkBytes === undefined ? {} : { codecWorkBytes }) });

  it('the gpu pool is gpuBudgetBytes - codecWorkBytes, and usage() says how much the codec holds', async () => {
    const off = open();
    const on = open(8 * MiB);
    try {
      assert.deepEqual([off.usage().gpu.budgetBytes, off.usage().codecWorkBytes], [16 * MiB, 0]);
      assert.deepEqual([on.usage().gpu.budgetBytes, on.usage().codecWorkBytes], [8 * MiB, 8 * MiB]);
      assert.equal(on.usage().gpu.budgetBytes + on.usage().codecWorkBytes + on.usage().scratch.budgetBytes, 16 * MiB + MiB);
    } finally {
      await off.close();
      await on.close();
    }
  });

  it('a model that fits the whole gpu budget but not what the work buffer leaves is refused (budget)', async () => {
    for (const work of [0, 8 * MiB]) {
      const rt = open(work);
      try {
        rt.register('m', source.layout);
        await rt.load('m');
        if (work === 0) {
          await rt.swapIn('m');
          assert.equal(rt.residency('m').gpu, true);
        } else {
          await assert.rejects(rt.swapIn('m'), (e: unknown) => SwapserveNativeError.is(e, 'budget') && /gpu pool's budget/.test((e as Error).message));
        }
      } finally {
        await rt.close();
      }
    }
  });

  it('rejects a work buffer above gpuBudgetBytes or below the minimum, naming codecWorkBytes', () => {
    for (const bad of [17 * MiB, MiB, -1, 1.5]) {
      assert.throws(() => open(bad), (e: unknown) => SwapserveNativeError.is(e, 'invalid_argument') && /codecWorkBytes/.test((e as Error).message), String(bad));
    }
    assert.equal(CODEC_MIN_WORK_BYTES, 5 * MiB);
  });

  it('the work buffer never grows: tables first, slots share the rest; tables that leave a slot < 1 MiB are refused', async () => {
    // The smallest buffer (5 MiB) leaves ~1 MiB of tables: enough for this model, which compresses. compress() runs the
    // same plan and keeps a model raw with its message where the plan refuses.
    const rt = open(CODEC_MIN_WORK_BYTES);
    try {
      rt.register('m', source.layout);
      await rt.load('m');
      const r = await rt.compress('m');
      assert.equal(r.state, 'compressed', r.reason);
    } finally {
      await rt.close();
    }
    const c = codec('cpu');
    const ok = c.planWork(1000, 100, 144 * MiB);
    assert.equal(ok.slotBytes, 32 * MiB);  // capped: the rest of the buffer holds tables of larger models
    assert.ok(ok.usedBytes <= 144 * MiB && ok.slotsAt >= 1000 + 400);
    const tight = c.planWork(10 * MiB, 80000, 16 * MiB);
    assert.ok(tight.slotBytes >= MiB && tight.usedBytes <= 16 * MiB, JSON.stringify(tight));
    assert.throws(() => c.planWork(13 * MiB, 80000, 16 * MiB), (e: unknown) => SwapserveNativeError.is(e, 'budget') && /hostCodec\.workBytes/.test((e as Error).message));
  });
});

describe('worker: hostCodec.compress reserves hostCodec.workBytes out of budgets.gpuBytes', { skip: needsData() }, () => {
  const base = { modelRoots: [dirname(STORIES260K_GGUF)], budgets: { hostBytes: '16MiB', gpuBytes: '16MiB', scratchBytes: '64MiB' }, models: [{ id: 'stories', path: STORIES260K_GGUF }] };

  it('publishes gpuBytes - workBytes as its GPU budget with compression on, gpuBytes with it off', async () => {
    for (const [hostCodec, want] of [[{ compress: true, workBytes: '6MiB' }, 10 * MiB], [{ compress: false, workBytes: '6MiB' }, 16 * MiB], [{ compress: true }, null]] as const) {
      if (want === null) {
        // The default 144 MiB does not fit a 16 MiB GPU budget: a config error, not a silent overrun.
        assert.throws(() => parseConfig({ ...base, hostCodec }, {}), (e: unknown) => e instanceof ConfigError && /hostCodec\.workBytes/.test((e as Error).message));
        continue;
      }
      const backend = new NativeBackend(parseConfig({ ...base, hostCodec }, {}), { backend: 'cpu', threads: 1 });
      try {
        assert.equal(backend.budgets.gpu, want);
      } finally {
        await backend.close();
      }
    }
  });

  it('a co-located worker checks the work buffer against its share of the GPU budget', () => {
    const cfg = { ...base, budgets: { ...base.budgets, gpuBytes: '32MiB' }, hostCodec: { compress: true, workBytes: '12MiB' } };
    assert.equal(parseConfig(cfg, {}).hostCodec.workBytes, 12 * MiB);
    assert.throws(() => parseConfig(cfg, { [GPU_SHARE_ENV]: '4' }), (e: unknown) => e instanceof ConfigError && /share/.test((e as Error).message));
  });
});
