// The co-location decision (issue 14), pure: profiles in, workers per GPU out, from a gain table (the seed's prior or
// a measured one); and the config section's validation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decideColocation, mixOf, predictGain, SEED_GAIN_TABLE, type ColocationProfile, type GainRow } from '../../services/scheduler/colocate.ts';
import { loadGainTable, planColocation } from '../../services/scheduler/colocation-setup.ts';
import { ConfigError, parseConfig, workersOnGpu } from '../../services/config/config.ts';

const p = (model: string, paramsB: number, promptTokens: number, outputTokens: number): ColocationProfile => ({ model, paramsB, promptTokens, outputTokens });
const OPTS = { workersPerGpu: 2, minGain: 1.2 };

describe('co-location decision from the seed prior (Databricks shape)', () => {
  const cases: [string, ColocationProfile[], number][] = [
    ['0.5B, 128-token prompts, decode-heavy: pays', [p('a', 0.5, 128, 256)], 2],
    ['1.5B, 512-token prompts, prefill-heavy: pays', [p('a', 1.5, 512, 64)], 2],
    ['3B, short prompts: pays', [p('a', 3.1, 100, 200)], 2],
    ['7B: no gain', [p('a', 7.6, 128, 256)], 1],
    ['14B (beyond the table): read as 7B, no gain', [p('a', 14, 128, 256)], 1],
    ['0.5B beyond 2k context: no gain', [p('a', 0.5, 3000, 100)], 1],
    ['1.5B, 1,500 prompt + 1,000 completion (decode context 2,500): no gain', [p('a', 1.5, 1500, 1000)], 1],
    ['two small models: pays', [p('a', 0.5, 128, 256), p('b', 1.5, 256, 256)], 2],
    ['one small and one 7B on the same GPU: the 7B would lose, so one worker', [p('a', 0.5, 128, 256), p('b', 7, 128, 256)], 1],
    ['no models: one worker', [], 1],
  ];
  for (const [name, models, workers] of cases) {
    it(name, () => {
      const d = decideColocation(SEED_GAIN_TABLE, models, OPTS);
      assert.equal(d.workers, workers, d.reason);
      assert.equal(d.colocate, workers > 1);
    });
  }
  it('says why, naming the model and the cell', () => {
    const d = decideColocation(SEED_GAIN_TABLE, [p('big', 7, 128, 256)], OPTS);
    assert.match(d.reason, /does not pay.*big ×1\.00 \(cell 7B\/512 tok\/decode\)/);
  });
  it('mix: prefill-heavy when prompt tokens are at least half', () => {
    assert.equal(mixOf({ promptTokens: 512, outputTokens: 64 }), 'prefill');
    assert.equal(mixOf({ promptTokens: 128, outputTokens: 512 }), 'decode');
  });
  it('one worker per GPU configured: never co-located', () => {
    assert.equal(decideColocation(SEED_GAIN_TABLE, [p('a', 0.5, 128, 256)], { workersPerGpu: 1, minGain: 1.2 }).workers, 1);
  });
});

describe('co-location decision from a measured table', () => {
  // A measurement where the engine already saturates the GPU at 0.5B decode (no gain) but prefill still gains.
  const measured: GainRow[] = [
    { paramsB: 0.5, promptTokens: 128, mix: 'decode', gain: 1.05 },
    { paramsB: 0.5, promptTokens: 128, mix: 'prefill', gain: 1.6 },
    { paramsB: 3, promptTokens: 128, mix: 'prefill', gain: 1.1 },
  ];
  it('follows the measurement, not the prior', () => {
    assert.equal(decideColocation(measured, [p('a', 0.5, 128, 512)], OPTS).workers, 1, 'decode measured at ×1.05');
    assert.equal(decideColocation(measured, [p('a', 0.5, 200, 50)], OPTS).workers, 2, 'prefill measured at ×1.6');
    assert.equal(decideColocation(measured, [p('a', 3, 200, 50)], OPTS).workers, 1);
    assert.equal(predictGain(measured, p('a', 1, 128, 50)).cell.paramsB, 0.5, '1B is nearer 0.5B than 3B on a log scale');
  });
  it('minGain is the threshold', () => {
    assert.equal(decideColocation(measured, [p('a', 0.5, 200, 50)], { workersPerGpu: 3, minGain: 1.7 }).workers, 1);
    assert.equal(decideColocation(measured, [p('a', 0.5, 200, 50)], { workersPerGpu: 3, minGain: 1.5 }).workers, 3);
  });
  it('planColocation reads a bench mps JSON, and judges only co-located GPUs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-coloc-'));
    try {
      const file = join(dir, 'mps.json');
      writeFileSync(file, JSON.stringify({ gainTable: measured }));
      const models = [{ id: 'small', path: 'x.gguf' }];
      const cfg = parseConfig({ modelRoots: [dir], models, coLocation: { enabled: true, gainTable: file, gpus: [{ device: 1 }], workload: { promptTokens: 200, outputTokens: 50 } } }, {});
      const plan = planColocation(cfg, 2, [1e9]); // 1 GB of bf16 = 0.5B
      assert.deepEqual(plan.perGpu, [1, 2]);
      assert.deepEqual(plan.colocated, [1]);
      assert.match(plan.reasons[0], /^GPU 1: co-locating 2 workers: small ×1\.60/);
      const decode = parseConfig({ modelRoots: [dir], models, coLocation: { enabled: true, gainTable: file, workload: { promptTokens: 128, outputTokens: 512 } } }, {});
      assert.deepEqual(planColocation(decode, 2, [1e9]).perGpu, [1, 1]);
      // A model's own workload overrides the default: the prefill-heavy one pays, so does the GPU; one decode-heavy
      // model among them (measured ×1.05) keeps the GPU at one worker.
      const own = parseConfig({ modelRoots: [dir], models: [{ ...models[0], workload: { promptTokens: 200, outputTokens: 50 } }], coLocation: { enabled: true, gainTable: file, workload: { promptTokens: 128, outputTokens: 512 } } }, {});
      assert.deepEqual(planColocation(own, 1, [1e9]).perGpu, [2]);
      const mixed = parseConfig({ modelRoots: [dir], models: [{ ...models[0], workload: { promptTokens: 200, outputTokens: 50 } }, { id: 'chat', path: 'y.gguf' }], coLocation: { enabled: true, gainTable: file, workload: { promptTokens: 128, outputTokens: 512 } } }, {});
      const m = planColocation(mixed, 1, [1e9, 1e9]);
      assert.deepEqual(m.perGpu, [1]);
      assert.match(m.reasons[0], /chat ×1\.05/);
      assert.throws(() => parseConfig({ modelRoots: [dir], models: [{ ...models[0], workload: { promptTokens: 0, outputTokens: 5 } }] }, {}), ConfigError);
      writeFileSync(file, JSON.stringify({ gainTable: [{ paramsB: -1 }] }));
      assert.throws(() => planColocation(cfg, 2, [1e9]), (e: unknown) => e instanceof ConfigError && /is not a gain table/.test(e.message));
      assert.deepEqual(planColocation(parseConfig({}, {}), 2, []).perGpu, [1, 1], 'off by default');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config: coLocation', () => {
  it('off by default, with its defaults', () => {
    const c = parseConfig({}, {}).coLocation;
    assert.equal(c.enabled, false);
    assert.equal(c.workersPerGpu, 2);
    assert.equal(c.mps.enabled, true);
    assert.equal(workersOnGpu(c, 0), 1);
  });
  it('per GPU counts', () => {
    const c = parseConfig({ coLocation: { enabled: true, workersPerGpu: 3, gpus: [{ device: 0 }, { device: 2, workersPerGpu: 2 }] } }, {}).coLocation;
    assert.deepEqual([0, 1, 2].map((d) => workersOnGpu(c, d)), [3, 1, 2]);
  });
  const bad: [string, unknown, RegExp][] = [
    ['workersPerGpu 1', { workersPerGpu: 1 }, /coLocation\.workersPerGpu: .*>=2/],
    ['workersPerGpu 9', { workersPerGpu: 9 }, /coLocation\.workersPerGpu/],
    ['an unknown key', { enable: true }, /coLocation: .*enable/],
    ['a GPU twice', { gpus: [{ device: 0 }, { device: 0 }] }, /coLocation\.gpus\.1\.device: GPU 0 is listed twice/],
    ['thread percentage 0', { mps: { activeThreadPercentage: 0 } }, /coLocation\.mps\.activeThreadPercentage/],
    ['minGain below 1', { minGain: 0.5 }, /coLocation\.minGain/],
  ];
  for (const [name, raw, re] of bad) {
    it(`rejects ${name} with a clear error`, () => {
      assert.throws(() => parseConfig({ coLocation: raw }, {}), (e: unknown) => e instanceof ConfigError && re.test(e.message));
    });
  }
  it('SWAPSERVE_GPU_SHARE must be 1..8', () => {
    assert.throws(() => parseConfig({}, { SWAPSERVE_GPU_SHARE: '0' }), /SWAPSERVE_GPU_SHARE must be an integer 1..8, received "0"/);
  });
});

describe('co-location decision from the table measured on an H100 (bench/results/mps/2026-12-07-h100-16ee34a.json)', () => {
  // `swapserve bench mps` with swapserve's engine, batch 8 per engine: two engines under MPS over the better of one
  // engine and one engine at twice the batch, ×1.12–1.69 (README, issue 14). The policy reads the bench JSON as is.
  const table = loadGainTable(join(import.meta.dirname, '../../bench/results/mps/2026-12-07-h100-16ee34a.json'));
  it('is the 24 measured cells: 4 sizes × 3 prompts × 2 mixes', () => {
    assert.equal(table.length, 24);
    assert.deepEqual([...new Set(table.map((r) => r.paramsB))].sort((a, b) => a - b), [0.5, 1.5, 3, 7]);
  });
  for (const minGain of [1.2, 1.3, 1.45, 1.5]) {
    it(`at minGain ${minGain} a model co-locates exactly where its measured cell gains at least that much`, () => {
      for (const cell of table) {
        // A model whose typical request lands on this cell: of its mix, with the context the policy reads it at
        // (decode: prompt + completion; prefill: the prompt).
        const prompt = cell.mix === 'decode' ? Math.ceil(cell.promptTokens / 3) : cell.promptTokens;
        const prof = p(`${cell.paramsB}B`, cell.paramsB, prompt, cell.mix === 'decode' ? cell.promptTokens - prompt : 4);
        assert.equal(mixOf(prof), cell.mix);
        assert.deepEqual(predictGain(table, prof).cell, cell);
        const d = decideColocation(table, [prof], { workersPerGpu: 2, minGain });
        assert.equal(d.colocate, cell.gain >= minGain, `${cell.paramsB}B/${cell.promptTokens}/${cell.mix} ×${cell.gain}: ${d.reason}`);
      }
    });
  }
  it('at the default minGain (1.2) only 7B with 2,048-token prefill-heavy requests stays alone (×1.12)', () => {
    assert.equal(decideColocation(table, [p('q7', 7, 2048, 4)], OPTS).workers, 1);
    assert.equal(decideColocation(table, [p('q05', 0.5, 128, 64)], OPTS).workers, 2);
    assert.equal(decideColocation(table, [p('q05', 0.5, 128, 64), p('q7', 7, 2048, 4)], OPTS).workers, 1);
  });
});
