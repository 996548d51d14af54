// The plan's ILP against exhaustive enumeration of every slice assignment on small random instances (several seeds).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadCalibration } from '../../services/fleet/calibration.ts';
import type { PlanGpuType, PlanProblem } from '../../services/fleet/plan-capacity.ts';
import { planCost, solveIlp } from '../../services/fleet/plan-ilp.ts';
import { rng } from '../../services/simulator/rng.ts'; // mulberry32: a failing seed replays

const PROFILES = join(import.meta.dirname, '..', '..', 'bench', 'results', 'profiles');
const someCalibration = loadCalibration(join(PROFILES, 'h200.json')); // the ILP reads none of it

/** A random instance: 2-3 GPU types, 2-3 models of 1-2 buckets, 1-2 slices a bucket (at most 7 slices). */
function randomProblem(seed: number): PlanProblem {
  const r = rng(seed);
  const T = 2 + Math.floor(r() * 2);
  const M = 2 + Math.floor(r() * 2);
  const types: PlanGpuType[] = Array.from({ length: T }, (_, t) => ({
    name: `g${t}`, pricePerGpuHour: 0.5 + r() * 4, calibration: someCalibration,
    maxGpus: r() < 0.3 ? 2 + Math.floor(r() * 4) : undefined,
    hostBytesPerWorker: (20 + r() * 60) * 1e9, mpsLoadFactor: 1, usableGpuBytes: (30 + r() * 100) * 1e9, tensorParallelEfficiency: 0.85,
  }));
  const models = Array.from({ length: M }, (_, m) => ({ id: `m${m}`, weightBytes: (2 + r() * 30) * 1e9, ratePerS: 0.05 + r() * 3 }));
  const slices: PlanProblem['slices'] = [];
  models.forEach((_, m) => {
    const buckets = 1 + Math.floor(r() * 2);
    for (let b = 0; b < buckets; b++) {
      const n = 1 + Math.floor(r() * 2);
      for (let k = 0; k < n; k++) slices.push({ model: m, bucket: b, ratePerS: 1 });
    }
  });
  while (slices.length > 7) slices.pop();
  const instanceGpus: number[][] = models.map(() => types.map(() => (r() < 0.15 ? 0 : r() < 0.2 ? 2 : 1)));
  instanceGpus.forEach((row) => { if (!row.some((k) => k > 0)) row[0] = 1; });
  const poolOk = models.map((_, m) => types.map((_, t) => instanceGpus[m][t] === 1 && r() < 0.7));
  // Loads per slice: a bucket's slices are identical, as the planner makes them.
  const bucketLoad = new Map<string, number[]>();
  const loadOf = (s: PlanProblem['slices'][number]) => {
    const key = `${s.model}/${s.bucket}`;
    if (!bucketLoad.has(key)) bucketLoad.set(key, types.map((_, t) => (instanceGpus[s.model][t] === 0 ? Infinity : 0.05 + r() * 1.6)));
    return bucketLoad.get(key)!;
  };
  const dedicatedLoad = slices.map((s) => loadOf(s));
  const poolLoad = slices.map((s, si) => types.map((_, t) => (poolOk[s.model][t] ? dedicatedLoad[si][t] : Infinity)));
  return {
    types, models, slices, instanceGpus, dedicatedLoad, poolOk, poolLoad,
    swapLoad: models.map(() => types.map(() => r() * 0.3)),
    residentBytes: models.map((m) => types.map(() => m.weightBytes * (0.3 + r() * 0.8))),
    swapTtftS: models.map(() => types.map(() => 0.3)), swapShare: models.map(() => 0.1),
    headroom: 0.8 + r() * 0.2, capacity: [],
  };
}

const up = (v: number) => Math.ceil(v - 1e-9);

/** Every assignment of every slice to every option; the cheapest feasible cost (Infinity: none). */
function bruteForce(p: PlanProblem): number {
  const T = p.types.length;
  const opts = p.slices.map((s, si) => {
    const o: Array<{ t: number; pool: boolean }> = [];
    for (let t = 0; t < T; t++) {
      if (Number.isFinite(p.dedicatedLoad[si][t])) o.push({ t, pool: false });
      if (p.poolOk[s.model][t] && Number.isFinite(p.poolLoad[si][t])) o.push({ t, pool: true });
    }
    return o;
  });
  let best = Infinity;
  const pick: number[] = p.slices.map(() => 0);
  const visit = (i: number): void => {
    if (i === p.slices.length) {
      const ded: number[][] = p.models.map(() => Array.from({ length: T }, () => 0));
      const pool: number[] = Array.from({ length: T }, () => 0);
      const member: boolean[][] = p.models.map(() => Array.from({ length: T }, () => false));
      p.slices.forEach((s, si) => {
        const o = opts[si][pick[si]];
        if (o.pool) { pool[o.t] += p.poolLoad[si][o.t]; member[s.model][o.t] = true; } else ded[s.model][o.t] += p.dedicatedLoad[si][o.t];
      });
      const x = ded.map((row) => row.map((l) => up(l / p.headroom)));
      const z = pool.map((l, t) => {
        let load = l, host = 0, mem = 0;
        p.models.forEach((m, mi) => {
          if (!member[mi][t]) return;
          load += p.swapLoad[mi][t]; host += m.weightBytes; mem += p.residentBytes[mi][t];
        });
        if (host > p.types[t].hostBytesPerWorker) return Infinity;
        return Math.max(up(load / p.headroom), up(mem / p.types[t].usableGpuBytes));
      });
      if (z.some((v) => !Number.isFinite(v))) return;
      for (let t = 0; t < T; t++) {
        let gpus = z[t];
        p.models.forEach((_, mi) => { gpus += x[mi][t] * p.instanceGpus[mi][t]; });
        const cap = p.types[t].maxGpus;
        if (cap !== undefined && gpus > cap) return;
      }
      best = Math.min(best, planCost(p, x, z));
      return;
    }
    for (let k = 0; k < opts[i].length; k++) { pick[i] = k; visit(i + 1); }
  };
  visit(0);
  return best;
}

describe('plan ILP = exhaustive enumeration on small instances', () => {
  for (let seed = 1; seed <= 40; seed++) {
    it(`seed ${seed}`, async () => {
      const p = randomProblem(seed);
      const want = bruteForce(p);
      if (!Number.isFinite(want)) {
        await assert.rejects(solveIlp(p, { mipGap: 0 }), /no plan serves the workload/);
        return;
      }
      const got = await solveIlp(p, { mipGap: 0 });
      assert.ok(Math.abs(got.costPerHour - want) <= 1e-6 * want, `ILP ${got.costPerHour} vs brute force ${want}`);
      // The ILP's own plan is one the enumeration would accept: every slice placed, costs agree.
      assert.equal(got.sliceTo.length, p.slices.length);
      assert.ok(Math.abs(planCost(p, got.dedicated, got.poolGpus) - got.costPerHour) < 1e-9);
    });
  }
});
