// Partial residency through the worker's tier manager over the real native backend (CPU): an evicted model that is
// likely to be asked for keeps a prefix out of idle memory, one never asked for keeps none; its next swap moves only
// the rest and generates the same text as after a full swap; prefixes go back before any model is evicted, least
// likely first; a prefix that splits the free memory is reclaimed rather than failing another model's swap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dirname } from 'node:path';

import type { JobData } from '../../contracts/job.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { parseConfig, type ModelEntry } from '../../services/config/config.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { TierManager } from '../../services/worker/tiers.ts';
import { makeTinyModel } from '../helpers/make-model.ts';

const IDS = ['a', 'b', 'c'] as const;
let dirs: Record<string, string>;
let size: number;
/** Bytes of groups 0..g-1 of the tiny model's arena. */
let ends: number[];

const job = (model: string): JobData => ({
  v: 1, requestId: `pr-${Math.random().toString(36).slice(2, 10)}`, model, kind: 'completion', input: { type: 'text', prompt: 'once upon a time' },
  sampling: { maxTokens: 6, temperature: 0, topP: 1, stop: [] }, arrivalMs: Date.now(), source: 'sdk',
});

before(async () => {
  dirs = {};
  for (const id of IDS) dirs[id] = await makeTinyModel({ family: 'llama', format: 'hf', seed: 5, config: { numLayers: 8 } });
  const src = await openModel(dirs.a);
  size = src.layout.totalBytes;
  ends = src.layout.groups.map((g) => g.end);
});

/** A backend + tier manager with room for `gpuModels` models on the GPU (in model sizes, plus alignment slack), or `gpuBytes`. */
async function setup(gpuModels: number, partial: ConstructorParameters<typeof TierManager>[3], gpuBytes = Math.floor(gpuModels * size) + 4096) {
  const config = parseConfig({
    modelRoots: [...new Set(Object.values(dirs).map((d) => dirname(dirname(d))))],
    budgets: { hostBytes: 8 * size + 65536, gpuBytes, scratchBytes: '64MiB' },
    models: IDS.map((id) => ({ id, path: dirs[id] })),
  }, {});
  const backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
  const tiers = new TierManager(backend, () => {}, () => {}, partial);
  for (const m of config.models) tiers.add(m as ModelEntry);
  for (const id of IDS) await tiers.ensureOnGpu(id).then(() => tiers.command('evict', id)).catch(() => {}); // registered + loaded to host
  return { backend, tiers };
}

/** `n` job arrivals for a model, ending now. */
function asked(tiers: TierManager, id: string, n: number): void {
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    tiers.use(id, 1, now - (n - i));
    tiers.use(id, -1, now - (n - i));
  }
}

async function text(backend: NativeBackend, id: string): Promise<string> {
  let t = '';
  for await (const ev of backend.generate(id, job(id), new AbortController().signal)) if (ev.type === 'token') t += ev.text;
  return t;
}

/** Bytes the swap towards the GPU moved (its progress total). */
async function swapBytes(tiers: TierManager, id: string): Promise<number> {
  let total = -1;
  await tiers.ensureOnGpu(id, (stage, _d, t) => { if (stage === 'swapping') total = t; });
  return total;
}

describe('partial residency in the worker (CPU backend)', () => {
  let cleanup: (() => Promise<void>) | null = null;
  after(async () => { await cleanup?.(); });

  it('a likely model keeps a prefix out of idle memory, its swap moves only the rest, the text equals a full swap', async () => {
    const { backend, tiers } = await setup(3, { maxFraction: 0.5 });
    cleanup = () => backend.close();
    try {
      assert.equal(await swapBytes(tiers, 'a'), size, 'no prefix yet: a full swap');
      const full = await text(backend, 'a');
      asked(tiers, 'a', 20);
      await tiers.command('evict', 'a');
      const p = backend.prefixes.prefix('a');
      const half = ends.filter((e) => e <= 0.5 * size).length;
      assert.equal(p.groups, half, 'maxFraction 0.5 of a likely model with the GPU otherwise idle');
      assert.equal(tiers.residency('a'), 'host');
      assert.equal(backend.usage().gpu, p.bytes, 'the prefix is counted in the GPU usage');
      assert.equal(await swapBytes(tiers, 'a'), size - ends[half - 1], 'only the groups after the prefix crossed');
      assert.equal(await text(backend, 'a'), full, 'same greedy text as after a full swap');

      // Never asked for: nothing kept.
      await tiers.ensureOnGpu('b');
      await tiers.command('evict', 'b');
      assert.deepEqual(backend.prefixes.prefix('b'), { groups: 0, bytes: 0 });
    } finally {
      await backend.close();
      cleanup = null;
    }
  });

  it('with partial residency off, an evict keeps nothing', async () => {
    const { backend, tiers } = await setup(3, null);
    try {
      await tiers.ensureOnGpu('a');
      asked(tiers, 'a', 20);
      await tiers.command('evict', 'a');
      assert.deepEqual(backend.prefixes.prefix('a'), { groups: 0, bytes: 0 });
      assert.equal(backend.usage().gpu, 0);
    } finally {
      await backend.close();
    }
  });

  it('prefixes go back before any model is evicted, least likely first', async () => {
    // a and b each keep at most a quarter while parked; the GPU holds c beside one such prefix, not two.
    const quarter = Math.ceil(ends[ends.filter((e) => e <= 0.25 * size).length - 1] / 256) * 256;
    const { backend, tiers } = await setup(0, { maxFraction: 0.25 }, size + 2 * quarter - 1024);
    try {
      asked(tiers, 'a', 40);
      asked(tiers, 'b', 2);
      for (const id of ['a', 'b']) {
        await tiers.ensureOnGpu(id);
        await tiers.command('evict', id);
      }
      const pa = backend.prefixes.prefix('a');
      const pb = backend.prefixes.prefix('b');
      assert.ok(pa.groups > 0 && pb.groups > 0, `both keep a prefix (a ${pa.groups}, b ${pb.groups} groups)`);
      assert.equal(pa.bytes, quarter);
      assert.equal(pb.bytes, quarter);
      // c fills the GPU beside both prefixes only if one goes back: b's (less likely), not a's.
      await tiers.ensureOnGpu('c');
      assert.equal(tiers.residency('c'), 'gpu');
      assert.deepEqual(backend.prefixes.prefix('b'), { groups: 0, bytes: 0 }, 'the least likely prefix went back');
      assert.deepEqual(backend.prefixes.prefix('a'), pa, 'the likelier one stayed');
      assert.equal(tiers.residency('a'), 'host');
    } finally {
      await backend.close();
    }
  });

  it('a prefix kept while making room is given back when it splits the free memory, and the swap succeeds', async () => {
    // Room for 2.5 models: a [0, S), b [S, 2S). c needs room: a (least recently used) is evicted and may keep up to
    // the half model left idle, at the start of its old range; c's arena then fits nowhere contiguous (first fit), so
    // a's prefix goes back and c's swap is issued again, rather than failing.
    const { backend, tiers } = await setup(2.5, {});
    const reclaimed: string[] = [];
    const reclaim = backend.prefixes.reclaim;
    backend.prefixes.reclaim = (id) => { reclaimed.push(id); return reclaim(id); }; // records, then the real thing
    try {
      asked(tiers, 'a', 40);
      await tiers.ensureOnGpu('a');
      asked(tiers, 'b', 1);
      await tiers.ensureOnGpu('b');
      await tiers.ensureOnGpu('c');
      assert.equal(tiers.residency('c'), 'gpu');
      assert.equal(tiers.residency('b'), 'gpu', 'no model was evicted beyond the one needed');
      assert.equal(tiers.residency('a'), 'host');
      assert.deepEqual(reclaimed, ['a'], "a's prefix was kept, then given back for c's reservation");
      assert.deepEqual(backend.prefixes.prefix('a'), { groups: 0, bytes: 0 });
      assert.ok((await text(backend, 'c')).length > 0, 'c runs');
    } finally {
      await backend.close();
    }
  });
});
