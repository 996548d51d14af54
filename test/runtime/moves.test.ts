// Weights runtime (CPU backend): byte-exact round trips of every tier move, progress and group order, budgets,
// state rules, leases and per-group readiness, typed errors.
import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { cudaBuilt } from '../../native/ts/addon.ts';
import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { Runtime, type RuntimeOptions } from '../../native/ts/runtime.ts';
import { makeRandomModel, type RandomModel } from './fixture.ts';
import { acquireLease, failNextMove, holdNextMove } from '../../native/ts/testing.ts';

const MiB = 1024 * 1024;
/** SWAPSERVE_TEST_BACKEND=cuda runs these tests against the CUDA backend (on the GPU machine). */
const BACKEND = (process.env.SWAPSERVE_TEST_BACKEND ?? 'cpu') as 'cpu' | 'cuda';
const BASE: RuntimeOptions = { backend: BACKEND, hostBudgetBytes: 16 * MiB, gpuBudgetBytes: 16 * MiB, scratchBudgetBytes: MiB, stagingBytes: MiB, readThreads: 3 };

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, re?: RegExp): Promise<SwapserveNativeError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SwapserveNativeError, `expected a SwapserveNativeError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (re) assert.match(err.message, re);
  return err;
}

describe(`runtime moves (${BACKEND} backend)`, () => {
  let rt: Runtime;
  let m: RandomModel;
  let expected: string;

  before(async () => {
    m = makeRandomModel({ groups: 6, tensorsPerGroup: 4, tensorBytes: 60_000 });
    rt = Runtime.open(BASE);
    await rt.hostReady;
    expected = rt.addon.hashBytes(m.expected);
  });
  after(async () => {
    await rt.close();
    m.cleanup();
  });

  it('reports the backend and device', () => {
    assert.equal(rt.backend, BACKEND);
    assert.match(rt.deviceName, BACKEND === 'cpu' ? /^cpu/ : /\w/);
    assert.equal(rt.healthy, true);
    assert.equal(rt.usage().host.ready, true);
  });

  it('the checksum sees every byte (one flipped byte changes it)', () => {
    const copy = Buffer.from(m.expected);
    copy[copy.length >> 1] ^= 1;
    assert.notEqual(rt.addon.hashBytes(copy), expected);
    assert.notEqual(rt.addon.hashBytes(m.expected.subarray(1)), expected);
  });

  it('load -> swapIn -> evict -> drop round-trips byte for byte', async () => {
    rt.register('a', m.layout);
    assert.deepEqual(rt.residency('a'), { state: 'disk', host: false, gpu: false, leases: 0 });
    const progress: number[] = [];
    const groups: number[] = [];
    const release = holdNextMove(rt);
    const loading = rt.load('a', { onProgress: (d, t) => { progress.push(d); assert.equal(t, m.expected.length); }, onGroup: (g) => groups.push(g) });
    assert.deepEqual(rt.residency('a'), { state: 'loading', host: false, gpu: false, leases: 0 });
    release();
    const r = await loading;
    assert.equal(r.kind, 'load');
    assert.equal(r.bytes, m.expected.length);
    assert.deepEqual(groups, [0, 1, 2, 3, 4, 5]);
    assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]), 'progress is monotonic');
    assert.equal(progress.at(-1), m.expected.length);
    assert.deepEqual(rt.residency('a'), { state: 'host', host: true, gpu: false, leases: 0 });
    assert.equal(await rt.checksum('a', 'host'), expected);

    const sgroups: number[] = [];
    const s = await rt.swapIn('a', { onGroup: (g) => sgroups.push(g) });
    assert.equal(s.kind, 'swap_in');
    assert.equal(s.bytes, m.layout.totalBytes);
    assert.ok(s.deviceMs >= 0 && s.wallMs >= s.deviceMs * 0.5);
    assert.deepEqual(sgroups, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(rt.residency('a'), { state: 'gpu', host: true, gpu: true, leases: 0 });
    assert.equal(await rt.checksum('a', 'gpu'), expected);
    assert.ok(rt.usage().gpu.usedBytes >= m.layout.totalBytes);

    const e = await rt.evict('a');
    assert.equal(e.kind, 'evict');
    assert.equal(rt.usage().gpu.usedBytes, 0);
    assert.equal(rt.residency('a').state, 'host');
    await rt.drop('a');
    assert.equal(rt.usage().host.usedBytes, 0);
    assert.equal(rt.residency('a').state, 'disk');
    rt.unregister('a');
  });

  it('loadToGpu (through 64 KiB staging slots, many cycles of the ring) lands the same bytes', async () => {
    rt.register('b', m.layout);
    const groups: number[] = [];
    const r = await rt.loadToGpu('b', { onGroup: (g) => groups.push(g) });
    assert.equal(r.kind, 'load_to_gpu');
    assert.equal(r.bytes, m.expected.length);
    assert.deepEqual(groups, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(rt.residency('b'), { state: 'gpu', host: false, gpu: true, leases: 0 });
    assert.equal(await rt.checksum('b', 'gpu'), expected);
    await rejectsWith(rt.checksum('b', 'host'), 'not_resident');
    await rt.evict('b');
    rt.unregister('b');
  });

  it('a move returns at once and reports on later ticks (the work runs off the event loop)', async () => {
    const big = makeRandomModel({ groups: 4, tensorsPerGroup: 4, tensorBytes: 400_000, seed: 5 });
    try {
      rt.register('ev', big.layout);
      const seen: number[] = [];
      const p = rt.loadToGpu('ev', { onProgress: (d) => seen.push(d) });
      // Synchronously after the call: the arena is reserved, nothing is reported yet (reports come on later ticks).
      assert.ok(rt.usage().gpu.usedBytes >= big.layout.totalBytes);
      assert.equal(seen.length, 0);
      await p;
      assert.equal(seen.length, 4, 'one progress report per landed group');
      assert.equal(seen.at(-1), big.expected.length);
      await rt.evict('ev');
      rt.unregister('ev');
    } finally {
      big.cleanup();
    }
  });

  it('moves of different models run at once and each lands its own bytes', async () => {
    const other = makeRandomModel({ groups: 3, tensorBytes: 90_000, seed: 99 });
    try {
      rt.register('c1', m.layout);
      rt.register('c2', other.layout);
      await Promise.all([rt.load('c1'), rt.loadToGpu('c2')]);
      await rt.swapIn('c1');
      assert.equal(await rt.checksum('c1', 'gpu'), expected);
      assert.equal(await rt.checksum('c2', 'gpu'), rt.addon.hashBytes(other.expected));
      // Two loadToGpu at once share the staging ring one after the other; both land their own bytes.
      await rt.evict('c1');
      await rt.evict('c2');
      await Promise.all([rt.loadToGpu('c1'), rt.loadToGpu('c2')]);
      assert.equal(await rt.checksum('c1', 'gpu'), expected);
      assert.equal(await rt.checksum('c2', 'gpu'), rt.addon.hashBytes(other.expected));
      await rt.evict('c1');
      await rt.evict('c2');
      await rt.drop('c1');
      rt.unregister('c1');
      rt.unregister('c2');
    } finally {
      other.cleanup();
    }
  });

  it('rejects moves that are not valid in the current residency', async () => {
    rt.register('s', m.layout);
    await rejectsWith(rt.swapIn('s'), 'state', /not on the host tier/);
    await rejectsWith(rt.evict('s'), 'state', /not on the gpu tier/);
    await rejectsWith(rt.drop('s'), 'state', /not on the host tier/);
    const release = holdNextMove(rt);
    const loading = rt.load('s');
    await rejectsWith(rt.load('s'), 'state', /loading/);
    await rejectsWith(rt.swapIn('s'), 'state', /loading/);
    await rejectsWith(rt.drop('s'), 'state', /loading/);
    await rejectsWith(() => rt.unregister('s'), 'state');
    release();
    await loading;
    await rejectsWith(rt.load('s'), 'state', /already on the host/);
    await rejectsWith(() => rt.register('s', m.layout), 'state', /already registered/);
    await rejectsWith(rt.load('nope'), 'invalid_argument', /unknown model "nope"/);
    await rt.drop('s');
    rt.unregister('s');
  });
});

describe(`runtime budgets (${BACKEND} backend)`, () => {
  it('a move over budget fails with budget before allocating, and succeeds after an evict', async () => {
    const m = makeRandomModel({ groups: 4, tensorBytes: 100_000 });
    const total = m.layout.totalBytes;
    // Room for one model on the gpu tier, not two; the host tier takes two.
    const rt = Runtime.open({ ...BASE, hostBudgetBytes: 2 * total + 2 * 4096, gpuBudgetBytes: Math.floor(total * 1.5) });
    try {
      rt.register('x', m.layout);
      rt.register('y', m.layout);
      await rt.load('x');
      await rt.load('y');
      rt.register('z', m.layout);
      await rejectsWith(rt.load('z'), 'budget', /host pool's budget would be exceeded/);
      assert.equal(rt.residency('z').state, 'disk');
      await rt.swapIn('x');
      const before = rt.usage().gpu.usedBytes;
      await rejectsWith(rt.swapIn('y'), 'budget', /gpu pool's budget would be exceeded/);
      await rejectsWith(rt.loadToGpu('z'), 'budget');
      assert.equal(rt.usage().gpu.usedBytes, before, 'a refused move reserves nothing');
      assert.deepEqual(rt.residency('y'), { state: 'host', host: true, gpu: false, leases: 0 });
      await rt.evict('x');
      await rt.swapIn('y');
      assert.equal(await rt.checksum('y', 'gpu'), rt.addon.hashBytes(m.expected));
    } finally {
      await rt.close();
      m.cleanup();
    }
  });

  it('the scratch pool has its own budget', async () => {
    const rt = Runtime.open({ ...BASE, scratchBudgetBytes: 0 });
    try {
      assert.deepEqual(rt.usage().scratch, { budgetBytes: 0, usedBytes: 0 });
    } finally {
      await rt.close();
    }
  });
});

describe(`runtime leases (${BACKEND} backend)`, () => {
  it('a lease taken while a swapIn is in flight waits per group and reads the right bytes; evict waits for its release', async () => {
    const m = makeRandomModel({ groups: 8, tensorsPerGroup: 2, tensorBytes: 300_000, seed: 3 });
    const rt = Runtime.open({ ...BASE, hostBudgetBytes: 32 * MiB, gpuBudgetBytes: 32 * MiB });
    try {
      rt.register('l', m.layout);
      await assert.rejects(async () => acquireLease(rt, 'l'), (e: unknown) => SwapserveNativeError.is(e, 'not_resident'));
      await rt.load('l');
      const release = holdNextMove(rt);
      const swapping = rt.swapIn('l');
      const lease = acquireLease(rt, 'l');
      assert.equal(lease.groups, 8);
      assert.equal(rt.residency('l').leases, 1);
      assert.equal(rt.residency('l').state, 'swapping-in');
      // The lease's reader waits in waitGroup(0) while no byte has moved; it must read the right bytes once they land.
      const reading = lease.checksum();
      release();
      const [sum] = await Promise.all([reading, swapping]);
      assert.equal(sum, rt.addon.hashBytes(m.expected));
      await rejectsWith(rt.evict('l'), 'state', /1 engine lease/);
      assert.equal(rt.residency('l').state, 'gpu');
      lease.release();
      assert.equal(rt.residency('l').leases, 0);
      await rt.evict('l');
      assert.equal(rt.residency('l').state, 'host');
    } finally {
      await rt.close();
      m.cleanup();
    }
  });
});

describe(`runtime errors (${BACKEND} backend)`, () => {
  it('validates arguments with "Expected X for Y but received Z"', async () => {
    await rejectsWith(() => Runtime.open({ ...BASE, hostBudgetBytes: -1 }), 'invalid_argument', /Expected a non-negative integer number of bytes for hostBudgetBytes but received -1/);
    await rejectsWith(() => Runtime.open({ ...BASE, backend: 'tpu' as 'cpu' }), 'invalid_argument', /Expected 'auto', 'cpu' or 'cuda' for backend/);
    await rejectsWith(() => Runtime.open({ ...BASE, readThreads: 0 }), 'invalid_argument', /for readThreads but received 0/);
    const rt = Runtime.open(BASE);
    const m = makeRandomModel({ groups: 2 });
    try {
      await rejectsWith(() => rt.register('', m.layout), 'invalid_argument', /for modelId but received ""/);
      const bad = structuredClone(m.layout);
      bad.segments[1].arenaOffset = 0;
      await rejectsWith(() => rt.register('bad', bad), 'invalid_argument', /layout\.segments\[1\]\.arenaOffset/);
      const outside = structuredClone(m.layout);
      outside.groups[1].end -= 512;
      outside.totalBytes = m.layout.totalBytes;
      await rejectsWith(() => rt.register('bad', outside), 'invalid_argument', /inside layout\.groups/);
      const missing = structuredClone(m.layout);
      missing.segments[0].file = '/nonexistent/model.bin';
      await rejectsWith(() => rt.register('bad', missing), 'io', /nonexistent/);
      const short = structuredClone(m.layout);
      short.segments[0].fileOffset = 1e9;
      await rejectsWith(() => rt.register('bad', short), 'io', /has \d+ bytes but/);
      rt.register('ok', m.layout);
      await rejectsWith(rt.load('ok', { onProgress: 3 as unknown as () => void }), 'invalid_argument', /for onProgress but received 3/);
      await rejectsWith(rt.checksum('ok', 'disk' as 'host'), 'invalid_argument', /for tier but received "disk"/);
    } finally {
      await rt.close();
      m.cleanup();
    }
  });

  it('a file that shrank after register fails the load with io and leaves the model on disk', async () => {
    const m = makeRandomModel({ groups: 3 });
    const rt = Runtime.open(BASE);
    try {
      rt.register('t', m.layout);
      truncateSync(m.layout.segments.at(-1)!.file, 100);
      const e = await rejectsWith(rt.load('t'), 'io', /unexpected end of file|failed/);
      assert.match(e.stack ?? '', /moves\.test\.ts/, 'the error carries the JS caller\'s stack');
      assert.equal(rt.residency('t').state, 'disk');
      assert.equal(rt.usage().host.usedBytes, 0);
      assert.equal(rt.healthy, true);
    } finally {
      await rt.close();
      m.cleanup();
    }
  });

  it('out of memory is recoverable; a sticky error makes the runtime unusable', async () => {
    const m = makeRandomModel({ groups: 3 });
    const rt = Runtime.open(BASE);
    try {
      rt.register('f', m.layout);
      await rt.load('f');
      failNextMove(rt, 'oom');
      const oom = await rejectsWith(rt.swapIn('f'), 'oom');
      assert.equal(oom.recoverable, true);
      assert.equal(oom.fatal, false);
      assert.equal(rt.healthy, true);
      assert.deepEqual(rt.residency('f'), { state: 'host', host: true, gpu: false, leases: 0 });
      assert.equal(rt.usage().gpu.usedBytes, 0);
      await rt.swapIn('f');
      await rt.evict('f');

      failNextMove(rt, 'cuda_sticky');
      const sticky = await rejectsWith(rt.swapIn('f'), 'cuda_sticky');
      assert.equal(sticky.fatal, true);
      assert.equal(rt.healthy, false);
      await rejectsWith(rt.swapIn('f'), 'unusable', /drain this worker/);
    } finally {
      await rt.close();
      m.cleanup();
    }
  });

  it('a GPU pool larger than the card fails open() with a recoverable oom', { skip: BACKEND !== 'cuda' && 'cuda only' }, async () => {
    const e = await rejectsWith(() => Runtime.open({ ...BASE, gpuBudgetBytes: 4 * 1024 ** 4 }), 'oom', /cudaMalloc/);
    assert.equal(e.recoverable, true);
  });

  it('a backend that is not built fails with one actionable addon message', { skip: cudaBuilt() && 'the CUDA backend is built here' }, async () => {
    await rejectsWith(() => Runtime.open({ ...BASE, backend: 'cuda' }), 'addon', /not built.*(SWAPSERVE_BACKEND=cpu|npm run build:native)/);
  });

  it('close is idempotent and later calls fail clearly', async () => {
    const m = makeRandomModel({ groups: 2 });
    const rt = Runtime.open(BASE);
    rt.register('c', m.layout);
    const loading = rt.load('c').then(() => null, (e: unknown) => e);
    const a = rt.close();
    assert.equal(rt.close(), a);
    await a;
    const outcome = await loading;
    assert.ok(outcome === null || SwapserveNativeError.is(outcome, 'aborted'), String(outcome));
    await rejectsWith(rt.load('c'), 'state', /closed/);
    m.cleanup();
  });
});
