// Partial residency over the real runtime (CPU backend; SWAPSERVE_TEST_BACKEND=cuda on the GPU machine): a partial
// evict keeps the first groups on the gpu, the next swapIn copies only the rest (bytes counted), the bytes are those
// of a full swap, the gpu budget counts the prefix, reclaiming it frees it, and a prefix that cannot grow in place is
// given up rather than failing the swap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { SwapserveNativeError } from '../../native/ts/errors.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { acquireLease, holdNextMove } from '../../native/ts/testing.ts';
import { makeRandomModel, type RandomModel } from './fixture.ts';

const MiB = 1024 * 1024;
const BACKEND = (process.env.SWAPSERVE_TEST_BACKEND ?? 'cpu') as 'cpu' | 'cuda';
/** The gpu pool's block alignment (pool.cc): a prefix holds its groups' bytes rounded up to it. */
const GPU_ALIGN = 256;
const up = (n: number) => Math.ceil(n / GPU_ALIGN) * GPU_ALIGN;

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof SwapserveNativeError, `expected a SwapserveNativeError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (re) assert.match(err.message, re);
}

describe(`partial residency (${BACKEND} backend)`, () => {
  let m: RandomModel;
  let total: number;
  /** End of group g (exclusive), arena bytes. */
  let endOf: (g: number) => number;

  before(() => {
    m = makeRandomModel({ groups: 8, tensorsPerGroup: 3, tensorBytes: 50_000, seed: 23 });
    total = m.layout.totalBytes;
    endOf = (g) => m.layout.groups[g].end;
  });
  after(() => m.cleanup());

  const open = (gpuBudgetBytes: number) => Runtime.open({ backend: BACKEND, hostBudgetBytes: 8 * MiB, gpuBudgetBytes, scratchBudgetBytes: MiB, stagingBytes: MiB, readThreads: 2 });

  it('a swapIn after a partial evict copies only the rest, and the gpu bytes equal a full swap', async () => {
    const rt = open(4 * MiB);
    try {
      await rt.hostReady;
      const expected = rt.addon.hashBytes(m.expected);
      rt.register('a', m.layout);
      await rt.load('a');
      const full = await rt.swapIn('a');
      assert.equal(full.bytes, total);
      assert.equal(await rt.checksum('a', 'gpu'), expected);

      const ev = await rt.evict('a', { keepGroups: 3 });
      const prefix = up(endOf(2));
      assert.deepEqual(rt.residentPrefix('a'), { groups: 3, bytes: prefix });
      assert.equal(ev.bytes, up(total) - prefix, 'evict returns the rest of the arena to the pool');
      assert.equal(rt.usage().gpu.usedBytes, prefix, 'the gpu budget counts the prefix');
      assert.equal(rt.residency('a').state, 'host');
      assert.equal(rt.residency('a').gpu, false);

      const groups: number[] = [];
      let last: [number, number] = [0, 0];
      const r = await rt.swapIn('a', { onGroup: (g) => groups.push(g), onProgress: (d, t) => { last = [d, t]; } });
      assert.equal(r.bytes, total - endOf(2), 'only groups 3..7 crossed');
      assert.deepEqual(last, [total - endOf(2), total - endOf(2)]);
      assert.deepEqual(groups, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(await rt.checksum('a', 'gpu'), expected, 'identical to a full swap');
      assert.deepEqual(rt.residentPrefix('a'), { groups: 0, bytes: 0 });
      assert.equal(rt.usage().gpu.usedBytes, up(total));

      // Every group resident: the swap moves nothing and the model is whole.
      await rt.evict('a', { keepGroups: 8 });
      const all = await rt.swapIn('a');
      assert.equal(all.bytes, 0);
      assert.equal(await rt.checksum('a', 'gpu'), expected);
    } finally {
      await rt.close();
    }
  });

  it('the prefix groups are ready before the move runs (execute-while-loading starts at once)', async () => {
    const rt = open(4 * MiB);
    try {
      await rt.hostReady;
      rt.register('a', m.layout);
      await rt.load('a');
      await rt.swapIn('a');
      await rt.evict('a', { keepGroups: 8 });
      // Held at its start, the move has copied nothing; every group is resident, so a lease reads the whole model now.
      const release = holdNextMove(rt);
      const swapping = rt.swapIn('a');
      const lease = acquireLease(rt, 'a');
      try {
        assert.equal(await lease.checksum(), rt.addon.hashBytes(m.expected));
      } finally {
        lease.release();
        release();
      }
      assert.equal((await swapping).bytes, 0);
    } finally {
      await rt.close();
    }
  });

  it('reclaiming a prefix frees exactly its bytes; drop and loadToGpu give it up; a later swap is full', async () => {
    const rt = open(4 * MiB);
    try {
      await rt.hostReady;
      const expected = rt.addon.hashBytes(m.expected);
      rt.register('a', m.layout);
      await rt.load('a');
      await rt.swapIn('a');
      await rt.evict('a', { keepGroups: 2 });
      const held = rt.residentPrefix('a').bytes;
      assert.ok(held > 0);
      assert.equal((await rt.reclaimPrefix('a')).bytes, held);
      assert.equal(rt.usage().gpu.usedBytes, 0);
      assert.equal((await rt.reclaimPrefix('a')).bytes, 0, 'a second reclaim frees nothing');
      assert.equal((await rt.swapIn('a')).bytes, total);
      assert.equal(await rt.checksum('a', 'gpu'), expected);

      await rt.evict('a', { keepGroups: 2 });
      await rt.drop('a');
      assert.deepEqual(rt.residentPrefix('a'), { groups: 0, bytes: 0 });
      assert.equal(rt.usage().gpu.usedBytes, 0, 'the prefix went with the host copy');

      await rt.load('a');
      await rt.swapIn('a');
      await rt.evict('a', { keepGroups: 4 });
      assert.equal((await rt.loadToGpu('a')).bytes, m.expected.length, 'loadToGpu reads everything');
      assert.equal(rt.usage().gpu.usedBytes, up(total));
      assert.equal(await rt.checksum('a', 'gpu'), expected);
    } finally {
      await rt.close();
    }
  });

  it('a prefix whose tail was taken is given up: the swap reserves a whole arena elsewhere and copies everything', async () => {
    // Room for the prefix and two arenas: b takes the range after a's prefix (first fit), so a cannot grow in place.
    const rt = open(up(total) * 2 + up(endOf(1)));
    try {
      await rt.hostReady;
      const expected = rt.addon.hashBytes(m.expected);
      rt.register('a', m.layout);
      rt.register('b', m.layout);
      await rt.load('a');
      await rt.swapIn('a');
      await rt.evict('a', { keepGroups: 2 });
      await rt.loadToGpu('b');
      const r = await rt.swapIn('a');
      assert.equal(r.bytes, total, 'all groups copied');
      assert.equal(await rt.checksum('a', 'gpu'), expected);
      assert.equal(await rt.checksum('b', 'gpu'), expected, "b's bytes untouched");
      assert.equal(rt.usage().gpu.usedBytes, 2 * up(total), 'the old prefix went back to the pool');
    } finally {
      await rt.close();
    }
  });

  it('budget: the swap needs only the bytes not resident; over budget it fails and keeps the prefix', async () => {
    const rt = open(up(total) + up(endOf(3)));
    try {
      await rt.hostReady;
      rt.register('a', m.layout);
      rt.register('b', m.layout);
      await rt.load('a');
      await rt.swapIn('a');
      await rt.evict('a', { keepGroups: 4 });
      // b fits beside a's prefix (exactly the budget); a's rest does not fit beside b.
      await rt.loadToGpu('b');
      assert.equal(rt.usage().gpu.usedBytes, up(total) + up(endOf(3)));
      await rejectsWith(rt.swapIn('a'), 'budget', /not resident on the gpu/);
      assert.deepEqual(rt.residentPrefix('a'), { groups: 4, bytes: up(endOf(3)) }, 'a failed swap leaves the prefix');
      assert.equal(rt.residency('a').state, 'host');
      await rt.evict('b');
      const r = await rt.swapIn('a');
      assert.equal(r.bytes, total - endOf(3));
      assert.equal(await rt.checksum('a', 'gpu'), rt.addon.hashBytes(m.expected));
    } finally {
      await rt.close();
    }
  });

  it('refuses a partial evict without a complete host copy, and keepGroups outside [0, groups]', async () => {
    const rt = open(4 * MiB);
    try {
      await rt.hostReady;
      rt.register('a', m.layout);
      await rt.loadToGpu('a');
      await rejectsWith(rt.evict('a', { keepGroups: 1 }), 'state', /no complete host copy/);
      assert.equal(rt.residency('a').state, 'gpu', 'a refused evict changes nothing');
      await rejectsWith(rt.evict('a', { keepGroups: 9 }), 'invalid_argument', /keepGroups/);
      await rejectsWith(rt.evict('a', { keepGroups: -1 }), 'invalid_argument', /keepGroups/);
      await rejectsWith(rt.evict('a', { keepGroups: 1.5 }), 'invalid_argument', /keepGroups/);
      await rt.evict('a');
      assert.equal(rt.usage().gpu.usedBytes, 0);
    } finally {
      await rt.close();
    }
  });
});
