// Weights runtime: a host pool opened with deferHostPin is pinned only when a move first needs it (or on
// pinHostPool()), so a fresh worker's first loadToGpu does not compete with pinning; close never waits for it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { loadAddon } from '../../native/ts/addon.ts';
import { Runtime, type RuntimeOptions } from '../../native/ts/runtime.ts';
import { makeRandomModel, type RandomModel } from './fixture.ts';

const MiB = 1024 * 1024;
const BACKEND = (process.env.SWAPSERVE_TEST_BACKEND ?? 'cpu') as 'cpu' | 'cuda';
const OPTS: RuntimeOptions = {
  backend: BACKEND, hostBudgetBytes: 16 * MiB, gpuBudgetBytes: 16 * MiB, scratchBudgetBytes: MiB, stagingBytes: MiB,
  readThreads: 2, deferHostPin: true,
};

describe(`runtime with a deferred host pin (${BACKEND} backend)`, () => {
  let m: RandomModel;
  let expected: string;
  before(() => {
    m = makeRandomModel({ groups: 4, tensorsPerGroup: 3, tensorBytes: 50_000 });
  });
  after(() => m.cleanup());

  it('loadToGpu runs without the host pool, which a load into the host tier then pins', async () => {
    const rt = Runtime.open(OPTS);
    try {
      expected = rt.addon.hashBytes(m.expected);
      rt.register('m', m.layout);
      assert.equal(rt.usage().host.ready, false);
      await rt.loadToGpu('m');
      assert.equal(await rt.checksum('m', 'gpu'), expected);
      assert.equal(rt.usage().host.ready, false, 'loadToGpu needs only the staging ring');
      await rt.evict('m');
      await rt.load('m'); // waits for the pool, which this demand starts pinning
      assert.equal(rt.usage().host.ready, true);
      await rt.hostReady;
      assert.equal(await rt.checksum('m', 'host'), expected);
    } finally {
      await rt.close();
    }
  });

  it('pinHostPool() starts the pin and hostReady resolves', async () => {
    const rt = Runtime.open(OPTS);
    try {
      assert.equal(rt.usage().host.ready, false);
      rt.pinHostPool();
      await rt.hostReady;
      assert.equal(rt.usage().host.ready, true);
      rt.pinHostPool(); // no-op once started
    } finally {
      await rt.close();
    }
  });

  it('closes without pinning a pool nobody asked for', async () => {
    const rt = Runtime.open(OPTS);
    await rt.close();
    await assert.rejects(rt.hostReady, (e: Error & { code?: string }) => e.code === 'state');
  });

  it('rejects a non-boolean deferHostPin', () => {
    assert.throws(() => Runtime.open({ ...OPTS, deferHostPin: 'yes' as unknown as boolean }), /Expected a boolean for deferHostPin/);
  });

  it('prewarm (a worker start creates its CUDA context early) returns at once; a runtime opens after it', async () => {
    const addon = loadAddon(BACKEND);
    assert.equal(addon.prewarm(0), undefined);
    assert.throws(() => addon.prewarm('0' as unknown as number), /prewarm: Expected a device ordinal/);
    const rt = Runtime.open(OPTS);
    await rt.close();
  });
});
