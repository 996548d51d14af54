// `swapserve plan` end to end on the shipped profiles and prices: capacity formula, GPU-type mixing, swap groups, bad input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FleetInputError, loadCalibration, type EngineModel, type ModelShape } from '../../services/fleet/calibration.ts';
import { bucketCapacity } from '../../services/fleet/plan-capacity.ts';
import { loadPlanInput, parsePlanInput, parsePriceList, type LoadedPlanInput } from '../../services/fleet/plan-input.ts';
import { planConfigFragment, planFleet } from '../../services/fleet/plan.ts';
import { parse as parseYaml } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..');
const PROFILES = join(ROOT, 'bench', 'results', 'profiles');
const PRICES = join(ROOT, 'examples', 'fleet', 'gpu-prices.yaml');
const prices = loadPlanInput(join(ROOT, 'examples', 'fleet', 'plan-input.yaml')).prices;
const price = (gpu: string) => prices.prices.find((p) => p.gpu === gpu)!.perGpuHourUsd;
const llama3b = { id: 'llama-3.2-3b', params: 3212749824, weightBytes: 6425499648, layers: 28, kvBytesPerToken: 114688 };
const shape3b: ModelShape = { name: llama3b.id, ...llama3b };

function loaded(raw: Record<string, unknown>): LoadedPlanInput {
  const input = parsePlanInput({ prices: PRICES, ...raw });
  return { input, prices, calibrationPaths: Object.fromEntries(input.gpus.map((g) => [g.type, join(PROFILES, g.calibration)])) };
}
const gpu = (type: string, file: string, extra: Record<string, unknown> = {}) => ({ type, calibration: file, ...extra });

describe('capacity of one instance inside the SLOs', () => {
  // A made-up engine: 10 ms a decode step whatever the batch, 50 ms a prefill, room for 4 sequences.
  const flat: EngineModel = { prefillS: () => 0.05, decodeStepS: () => 0.01, maxBatch: () => 4 };
  it('follows the documented formula: rate = B / (O·d + B·P), TPOT = d + B·P/O', () => {
    const c = bucketCapacity(flat, shape3b, { inputTokens: 100, outputTokens: 100 }, 10, 1);
    assert.equal(c.batch, 4);
    assert.ok(Math.abs(c.ratePerS - 4 / (100 * 0.01 + 4 * 0.05)) < 1e-12);
    assert.ok(Math.abs(c.tpotS - (0.01 + (4 * 0.05) / 100)) < 1e-12);
  });
  it('a tighter TPOT SLO caps the batch; one no lone request meets gives 0', () => {
    assert.equal(bucketCapacity(flat, shape3b, { inputTokens: 100, outputTokens: 100 }, 10, 0.0112).batch, 2);
    assert.equal(bucketCapacity(flat, shape3b, { inputTokens: 100, outputTokens: 100 }, 10, 0.005).ratePerS, 0);
    assert.equal(bucketCapacity(flat, shape3b, { inputTokens: 100, outputTokens: 100 }, 0.04, 1).ratePerS, 0);
  });
});

describe('swapserve plan on the shipped profiles', () => {
  it('mixes GPU types where the cheaper one wins small requests and the faster one large requests (as Mélange reports)', async () => {
    const l4 = loadCalibration(join(PROFILES, 'l4.json'));
    const h100 = loadCalibration(join(PROFILES, 'h100.json'));
    const small = { inputTokens: 128, outputTokens: 64 }, large = { inputTokens: 8192, outputTokens: 512 };
    const perUsd = (c: typeof l4, g: string, b: typeof small) => bucketCapacity(c, shape3b, b, 2, 0.1).ratePerS / price(g);
    // The premise, from the profiles and prices themselves.
    assert.ok(perUsd(l4, 'L4', small) > perUsd(h100, 'H100', small), 'L4 serves more small requests per dollar');
    assert.ok(perUsd(h100, 'H100', large) > perUsd(l4, 'L4', large), 'H100 serves more large requests per dollar');
    const r = await planFleet(loaded({
      gpus: [gpu('L4', 'l4.json'), gpu('H100', 'h100.json')],
      models: [{ ...llama3b, sloTtftMs: 2000, sloTpotMs: 100, workload: [{ ...small, ratePerS: 2000 }, { ...large, ratePerS: 100 }] }],
    }));
    assert.ok(r.gpus.L4 > 0 && r.gpus.H100 > 0, `both types used: ${JSON.stringify(r.gpus)}`);
    for (const a of r.alternatives) if (a.name.endsWith(' only')) assert.ok(r.costPerHourUsd < a.costPerHourUsd!, `${a.name} costs ${a.costPerHourUsd}, the mix ${r.costPerHourUsd}`);
  });

  it('parks rarely used models in a swap group instead of a GPU each, and only those whose swap fits their TTFT SLO', async () => {
    const rare = (id: string, extra: Record<string, unknown> = {}) => ({ ...llama3b, id, sloTtftMs: 1000, sloTpotMs: 100, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }], ...extra });
    const big = { id: 'qwen-32b', params: 32763876352, weightBytes: 65527752704, layers: 64, kvBytesPerToken: 262144 };
    const r = await planFleet(loaded({
      gpus: [gpu('H100', 'h100.json')],
      models: [rare('a'), rare('b'), rare('c'), rare('d'), rare('big-tight', { ...big, id: 'big-tight', sloTtftMs: 800 })],
    }));
    const swap = r.groups.find((g) => g.mode === 'swap');
    assert.ok(swap, 'a swap group');
    assert.deepEqual([...swap.models].sort(), ['a', 'b', 'c', 'd']);
    // 65.5 GB at 55.3 GB/s is 1.2 s: over its 800 ms TTFT SLO, so it keeps its own GPU.
    assert.deepEqual(r.groups.find((g) => g.models.includes('big-tight'))?.mode, 'dedicated', JSON.stringify(r.groups));
    assert.equal(r.gpus.H100, 2);
    const noSwap = r.alternatives.find((a) => a.name.startsWith('no swap groups'))!;
    assert.equal(noSwap.costPerHourUsd, 5 * price('H100'));
    // The fragment is a placement config naming every model once per group.
    const frag = parseYaml(planConfigFragment(r, 'test')) as { placement: { groups: Array<{ name: string; models: string[] }> } };
    assert.deepEqual(frag.placement.groups.flatMap((g) => g.models).sort(), ['a', 'b', 'big-tight', 'c', 'd']);
  });

  it('keeps a swap group inside the pinned host RAM of its workers', async () => {
    const rare = (id: string) => ({ ...llama3b, id, sloTtftMs: 1000, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }] });
    // 8 GPUs share 30 GB of pinned RAM: 3.75 GB a worker holds no 6.4 GB model.
    const r = await planFleet(loaded({ gpus: [gpu('H100', 'h100.json', { hostBytesPerNode: '30GB' })], models: [rare('a'), rare('b')] }));
    assert.ok(r.groups.every((g) => g.mode === 'dedicated'));
  });
});

describe('bad plan input gets an error naming it', () => {
  const model = { ...llama3b, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 1 }] };
  it('an unknown GPU type (no price)', async () => {
    await assert.rejects(planFleet(loaded({ gpus: [gpu('B300', 'h100.json')], models: [model] })), (e: Error) => e instanceof FleetInputError && /GPU type "B300" has no price/.test(e.message));
  });
  it('a negative price', () => {
    assert.throws(() => parsePriceList({ source: 's', date: '2026-12-07', currency: 'USD', prices: [{ gpu: 'L4', perGpuHourUsd: -1 }] }), /prices\.0\.perGpuHourUsd/);
  });
  it('a model no GPU type can serve within its SLOs', async () => {
    await assert.rejects(planFleet(loaded({ gpus: [gpu('L4', 'l4.json')], models: [{ ...model, id: 'too-fast', sloTpotMs: 1 }] })),
      (e: Error) => e instanceof FleetInputError && /model "too-fast" cannot be served within its SLOs .* L4: /.test(e.message));
  });
  it('a GPU cap too low for the workload', async () => {
    await assert.rejects(planFleet(loaded({ gpus: [gpu('H100', 'h100.json', { max: 1 })], models: [{ ...model, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 500 }] }] })),
      /no plan serves the workload .*H100 ≤ 1/);
  });
  it('MPS asked for without a measured profile', async () => {
    await assert.rejects(planFleet(loaded({ gpus: [gpu('H100', 'h100.json', { mps: true })], models: [model] })), /mps is on but .*no measured mps section/);
  });
  it('schema errors name the field: duplicate model, missing workload, zero rate, unknown option', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ prices: 'p', gpus: [gpu('L4', 'l4.json')], models: [model, model] }, /models\.1: duplicate model id/],
      [{ prices: 'p', gpus: [gpu('L4', 'l4.json')], models: [{ ...model, workload: [] }] }, /models\.0\.workload/],
      [{ prices: 'p', gpus: [gpu('L4', 'l4.json')], models: [{ ...model, workload: [{ inputTokens: 1, outputTokens: 1, ratePerS: 0 }] }] }, /models\.0\.workload\.0\.ratePerS/],
      [{ prices: 'p', gpus: [gpu('L4', 'l4.json')], models: [model], options: { slices: 3 } }, /options: .*slices/],
    ];
    for (const [raw, want] of bad) assert.throws(() => parsePlanInput(raw), (e: Error) => e instanceof FleetInputError && want.test(e.message));
  });
  it('a missing price file is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-plan-'));
    const p = join(dir, 'in.yaml');
    writeFileSync(p, stringify({ prices: 'nope.yaml', gpus: [gpu('L4', 'l4.json')], models: [model] }));
    assert.throws(() => loadPlanInput(p), /cannot read price list .*nope\.yaml/);
  });
});
