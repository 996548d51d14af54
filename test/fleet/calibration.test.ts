// Calibration files: the shipped profiles load and reproduce swapserve's measured points; bad files get errors naming the field.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetInputError, fit2, loadCalibration, type ModelShape } from '../../services/fleet/calibration.ts';

const PROFILES = join(import.meta.dirname, '..', '..', 'bench', 'results', 'profiles');
const h200Raw = () => JSON.parse(readFileSync(join(PROFILES, 'h200.json'), 'utf8'));
const llama8b: ModelShape = { name: 'llama-3.1-8b-shape', params: 8030261248, weightBytes: 16060522496, layers: 32, kvBytesPerToken: 131072 };
const within = (got: number, want: number, rel: number) =>
  assert.ok(Math.abs(got - want) <= rel * want, `${got} not within ${rel * 100}% of ${want}`);

describe('shipped calibration profiles', () => {
  const h200 = loadCalibration(join(PROFILES, 'h200.json'));

  it('H200 reproduces the measured engine points (engine-h200.md run 8) within 2%', () => {
    within(h200.decodeStepS(llama8b, 1, 164), 0.004368, 0.02);
    within(h200.decodeStepS(llama8b, 8, 164), 0.004883, 0.02);
    within(8 / h200.decodeStepS(llama8b, 8, 164), 1638, 0.02); // tok/s
    within(h200.prefillS(llama8b, 2048), 0.05339, 0.02);
    within(h200.prefillS(llama8b, 128), 0.0059, 0.02);
  });

  it('H200 predicts the held-out through-the-stack warm prefill of the 8B shape at 2,048 tokens within 15%', () => {
    // headline-h200.md run 5: warm prefill 59.0 ms (the span includes the worker's own bookkeeping).
    within(h200.prefillS(llama8b, 2048), 0.059, 0.15);
  });

  it('H200 host rates are the measured ones', () => {
    assert.equal(h200.swapBytesPerS, 55.5e9);
    within(llama8b.weightBytes / h200.swapBytesPerS, 0.289, 0.01); // swap-h200.md swapIn 0.289 s
    assert.equal(h200.workerStartS, 0.31);
  });

  it('every profile loads; datasheet-derived ones scale the H200 efficiency and say so', () => {
    for (const g of ['h100', 'a100', 'l4']) {
      const c = loadCalibration(join(PROFILES, `${g}.json`));
      assert.match(c.source, /datasheet-derived/);
      assert.ok(c.decodeStepS(llama8b, 1, 164) > h200.decodeStepS(llama8b, 1, 164), `${g} decodes slower than the H200`);
    }
    const h100 = loadCalibration(join(PROFILES, 'h100.json'));
    assert.equal(h100.swapBytesPerS, 55.3e9); // measured on the H100
    within(h100.engine.bandwidthBytesPerS, 3.35e12 * 4295 / 4800, 1e-9);
    const l4 = loadCalibration(join(PROFILES, 'l4.json'));
    within(l4.swapBytesPerS, 31.5e9 * 55.5 / 63, 1e-9);
    assert.equal(l4.diskBytesPerS, h200.diskBytesPerS);
  });

  it('maxBatch: KV capacity beside the weights, 0 where the weights do not fit', () => {
    const l4 = loadCalibration(join(PROFILES, 'l4.json'));
    const room = 24152899584 * 0.9 - 2 * 1024 ** 3 - llama8b.weightBytes;
    assert.equal(l4.maxBatch(llama8b, 2048), Math.floor(room / (2048 * 131072)));
    assert.equal(l4.maxBatch({ ...llama8b, weightBytes: 30e9 }, 2048), 0);
    assert.equal(h200.maxBatch(llama8b, 100), 256); // capped
  });
});

describe('fit2: fixed and per-unit cost, the fixed one never negative', () => {
  it('recovers both where the points carry both', () => {
    const [a, b] = fit2([[32, 1, 32 * 2e-5 + 1 * 3e-3], [32, 8, 32 * 2e-5 + 8 * 3e-3], [32, 64, 32 * 2e-5 + 64 * 3e-3]], 'x');
    within(a, 2e-5, 1e-9);
    within(b, 3e-3, 1e-9);
  });

  it('clamps a fixed cost the free fit puts below zero and refits the per-unit one alone', () => {
    // The H100 profile of 2026-12-07: residuals 0 at batch 1 by construction, growing with the batch.
    const rows: Array<[number, number, number]> = [[32, 1, 0], [32, 8, 1.3e-3], [32, 32, 2.4e-3], [32, 64, 3.0e-3], [32, 128, 9.6e-3], [32, 256, 18.7e-3]];
    const [a, b] = fit2(rows, 'x');
    assert.equal(a, 0);
    const want = rows.reduce((t, r) => t + r[1] * r[2], 0) / rows.reduce((t, r) => t + r[1] * r[1], 0);
    within(b, want, 1e-12);
  });

  it('still refuses points that give no positive per-unit cost', () => {
    assert.throws(() => fit2([[32, 1, 5e-3], [32, 8, 4e-3], [32, 64, 1e-3]], 'engine.decode'), /engine.decode: the points give a negative or zero cost/);
    assert.throws(() => fit2([[32, 8, 1e-3], [32, 8, 2e-3]], 'engine.prefill'), /cannot separate/);
  });
});

describe('bad calibration files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-cal-'));
  const write = (name: string, body: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
    return p;
  };
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{ "gpu": ', /is not JSON/],
    ['negative swap rate', { ...h200Raw(), swapBytesPerS: -1 }, /swapBytesPerS/],
    ['missing gpu', (() => { const r = h200Raw(); delete r.gpu; return r; })(), /gpu/],
    ['unknown field', { ...h200Raw(), swapGBps: 55 }, /swapGBps/],
    ['one decode point', (() => { const r = h200Raw(); r.engine.decode = r.engine.decode.slice(0, 1); return r; })(), /engine\.decode/],
    ['decode points at one batch size', (() => { const r = h200Raw(); r.engine.decode[1].batch = 1; return r; })(), /engine\.decode: the points cannot separate/],
    ['prefill slower for more tokens is fine, faster is not', (() => { const r = h200Raw(); r.engine.prefill[1].s = 0.001; return r; })(), /engine\.prefill: .*negative/],
    ['measured file without disk rate', (() => { const r = h200Raw(); delete r.diskBytesPerS; return r; })(), /must give diskBytesPerS/],
    ['unknown engine kind', (() => { const r = h200Raw(); r.engine.kind = 'guessed'; return r; })(), /engine\.kind/],
  ];
  for (const [name, body, want] of cases) {
    it(name, () => {
      const p = write(`${name.replace(/\W+/g, '-')}.json`, body);
      assert.throws(() => loadCalibration(p), (e: Error) => e instanceof FleetInputError && want.test(e.message) && e.message.includes(p));
    });
  }
  it('a missing file and a missing or looping reference are named', () => {
    assert.throws(() => loadCalibration(join(dir, 'nope.json')), /cannot read calibration file .*nope\.json/);
    const derived = JSON.parse(readFileSync(join(PROFILES, 'l4.json'), 'utf8'));
    const p = write('orphan.json', { ...derived, engine: { ...derived.engine, efficiencyFrom: 'missing-ref.json' } });
    assert.throws(() => loadCalibration(p), /missing-ref\.json/);
    const loop = write('loop.json', { ...derived, engine: { ...derived.engine, efficiencyFrom: 'loop.json' } });
    assert.throws(() => loadCalibration(loop), /loops/);
  });
});
