// Partial residency policy (services/worker/partial-residency.ts), table-driven: the arrival-rate estimate and the
// chance of a request soon, the prefix size from free memory and that chance, and the reclaim order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  choosePrefixGroups, GPU_BLOCK_ALIGN, observeArrival, PREFIX_DEFAULTS, prefixesToReclaim, reclaimOrder, requestProbability, type ArrivalRate,
} from '../../services/worker/partial-residency.ts';

const GiB = 1024 ** 3;
/** An 8B-shaped model: embeddings, 32 layers of 0.44 GiB, then norm + head (GiB-rounded ends keep the table readable). */
const ends8b = (() => {
  const ends = [GiB];
  for (let l = 0; l < 32; l++) ends.push(ends[ends.length - 1] + 0.4375 * GiB);
  ends.push(ends[ends.length - 1] + GiB);
  return ends;
})();
const total8b = ends8b[ends8b.length - 1]; // 16 GiB

describe('request probability from the arrival rate', () => {
  const o = { rateHalfLifeMs: 60_000, horizonMs: 60_000 };
  it('is 0 for a model never requested', () => {
    assert.equal(requestProbability(null, 0, o), 0);
  });
  it('rises with arrivals and decays with time', () => {
    let r: ArrivalRate | null = null;
    for (let i = 0; i < 10; i++) r = observeArrival(r, i * 1000, o);
    const now = requestProbability(r, 9000, o);
    const later = requestProbability(r, 9000 + 5 * 60_000, o);
    assert.ok(now > 0.99, `10 requests in 10 s -> a request in the next minute is near certain (${now})`);
    assert.ok(later < now && later > 0, `five half-lives later it has decayed (${later})`);
    const one = requestProbability(observeArrival(null, 0, o), 0, o);
    assert.ok(one > 0.4 && one < 0.75, `one request: about 1 - exp(-ln 2) = 0.5 (${one})`);
  });
  it('matches 1 - exp(-rate * horizon) with rate = count / tau', () => {
    const r = { count: 3, atMs: 0 };
    const tau = o.rateHalfLifeMs / Math.LN2;
    assert.ok(Math.abs(requestProbability(r, 0, o) - (1 - Math.exp(-(3 / tau) * o.horizonMs))) < 1e-12);
    // one half-life later the count has halved
    assert.ok(Math.abs(requestProbability(r, o.rateHalfLifeMs, o) - (1 - Math.exp(-(1.5 / tau) * o.horizonMs))) < 1e-12);
  });
  it('out-of-order arrivals never move the estimate back in time', () => {
    const r = observeArrival(observeArrival(null, 10_000, o), 5_000, o);
    assert.equal(r.atMs, 10_000);
    assert.equal(r.count, 2);
  });
});

describe('choosePrefixGroups', () => {
  const cases: { name: string; free: number; p: number; opts?: Partial<typeof PREFIX_DEFAULTS>; want: number }[] = [
    { name: 'no free memory keeps nothing', free: 0, p: 1, want: 0 },
    { name: 'a model never requested keeps nothing', free: 80 * GiB, p: 0, want: 0 },
    { name: 'below minProbability keeps nothing', free: 80 * GiB, p: 0.04, want: 0 },
    { name: 'certain + room for all: the whole model', free: 80 * GiB, p: 1, want: 34 },
    { name: 'certain, 8 GiB free: embeddings + 16 layers (1 + 16 x 0.4375 = 8 GiB)', free: 8 * GiB, p: 1, want: 17 },
    { name: 'p = 0.5 of 8 GiB -> 4 GiB: embeddings + 6 layers', free: 8 * GiB, p: 0.5, want: 7 },
    { name: 'headroom is never offered', free: 8 * GiB, p: 1, opts: { headroomBytes: 4 * GiB }, want: 7 },
    { name: 'maxFraction caps the prefix at a quarter', free: 80 * GiB, p: 1, opts: { maxFraction: 0.25 }, want: 7 },
    { name: 'less than the first group keeps nothing', free: GiB - 1, p: 1, want: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(choosePrefixGroups({ groupEnds: ends8b, freeBytes: c.free, probability: c.p }, c.opts), c.want);
    });
  }
  it('the prefix chosen always fits in the free memory offered (aligned as the pool holds it)', () => {
    const ends = [1000, 5000, 5001, 9000, 20_000];
    for (let free = 0; free < 25_000; free += 97) {
      for (const p of [0.06, 0.3, 0.9, 1]) {
        const k = choosePrefixGroups({ groupEnds: ends, freeBytes: free, probability: p });
        if (k > 0) assert.ok(Math.ceil(ends[k - 1] / GPU_BLOCK_ALIGN) * GPU_BLOCK_ALIGN <= free * p, `free ${free} p ${p} k ${k}`);
        if (k < ends.length) assert.ok(Math.ceil(ends[k] / GPU_BLOCK_ALIGN) * GPU_BLOCK_ALIGN > free * p, `k ${k} is the largest that fits`);
      }
    }
  });
  it('never keeps more than the model', () => {
    assert.equal(choosePrefixGroups({ groupEnds: ends8b, freeBytes: 10 * total8b, probability: 1 }), ends8b.length);
  });
});

describe('reclaim order', () => {
  const parked = [
    { id: 'likely', bytes: 4 * GiB, probability: 0.9, lastUsedAt: 100 },
    { id: 'rare', bytes: 2 * GiB, probability: 0.1, lastUsedAt: 500 },
    { id: 'rare-older', bytes: 3 * GiB, probability: 0.1, lastUsedAt: 50 },
    { id: 'none', bytes: 0, probability: 0, lastUsedAt: 0 },
  ];
  it('least likely first, then least recently used; models without a prefix are not listed', () => {
    assert.deepEqual(reclaimOrder(parked).map((p) => p.id), ['rare-older', 'rare', 'likely']);
  });
  const cases: [number, string[]][] = [
    [0, []],
    [1, ['rare-older']],
    [3 * GiB, ['rare-older']],
    [3 * GiB + 1, ['rare-older', 'rare']],
    [5 * GiB + 1, ['rare-older', 'rare', 'likely']],
    [100 * GiB, ['rare-older', 'rare', 'likely']],
  ];
  for (const [need, want] of cases) {
    it(`to free ${need} bytes: ${want.join(', ') || 'nothing'}`, () => {
      assert.deepEqual(prefixesToReclaim(parked, need), want);
    });
  }
});
