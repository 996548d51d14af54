// The fleet simulator: its inputs (fleet file, GenTD26 + Azure replay) and what a replay measures, on small
// hand-made traces whose answers are known, and the example fleet on the real trace.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCalibration } from '../../services/fleet/calibration.ts';
import { EventQueue } from '../../services/simulator/events.ts';
import { FleetError, loadFleet, type Fleet } from '../../services/simulator/fleet-spec.ts';
import { CLUSTER_DEFAULTS, runOnce } from '../../services/simulator/run.ts';
import { buildReplay, TRACE_DEFAULTS, type Replay, type SimRequest } from '../../services/simulator/trace.ts';
import { SHARED_DATA } from '../helpers/data.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const cal = loadCalibration(join(ROOT, 'bench', 'results', 'profiles', 'h200.json'));
const fleet = loadFleet(join(ROOT, 'examples', 'fleet', 'llm-14.yaml'));
const ARRIVALS = join(SHARED_DATA, 'traces', 'alibaba-gentd26', 'lora_request_trace.csv');
const TOKENS = join(SHARED_DATA, 'traces', 'azure-llm-2023', 'AzureLLMInferenceTrace_conv.csv');
const noData = existsSync(ARRIVALS) && existsSync(TOKENS) ? false : `../shared/data traces missing (${ARRIVALS})`;

const replayOf = (f: Fleet, reqs: Omit<SimRequest, 'id'>[]): Replay =>
  ({ requests: reqs.map((r, id) => ({ ...r, id })), spanMs: reqs[reqs.length - 1].at, mapping: [], tokenRows: 0, skipped: 0 });

describe('fleet simulator', () => {
  it('the example fleet has >= 12 real LLM shapes from 0.5B to 70B', () => {
    assert.ok(fleet.models.length >= 12);
    const params = fleet.models.map((m) => m.params);
    assert.ok(Math.min(...params) < 0.6e9 && Math.max(...params) > 70e9);
    for (const m of fleet.models) assert.ok(Math.abs(m.weightBytes - 2 * m.params) / m.weightBytes < 0.01, `${m.id}: bf16 bytes = 2 x params`);
  });

  it('a bad fleet file is refused with the file and the field named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-'));
    const p = join(dir, 'bad.yaml');
    writeFileSync(p, 'models:\n  - { id: a, params: -1, weightBytes: 2, layers: 1, kvBytesPerToken: 1 }\n');
    assert.throws(() => loadFleet(p), (e: unknown) => e instanceof FleetError && e.message.includes(p) && e.message.includes('models.0.params'));
  });

  it('the event queue runs events in time order, ties in scheduling order', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.at(5, () => seen.push('b'));
    q.at(1, () => { seen.push('a'); q.at(5, () => seen.push('c')); });
    q.at(9, () => seen.push('d'));
    q.run();
    assert.deepEqual(seen, ['a', 'b', 'c', 'd']);
  });

  it('swapserve: the first request of each model on an idle fleet is cold, later ones warm; one worker held throughout', () => {
    const small = { ...fleet, models: fleet.models.filter((m) => m.params < 4e9).slice(0, 2) };
    const [a, b] = small.models.map((m) => m.id);
    const r = replayOf(small, [
      { at: 0, model: a, promptTokens: 100, outputTokens: 10 },
      { at: 60_000, model: a, promptTokens: 100, outputTokens: 10 },
      { at: 120_000, model: b, promptTokens: 100, outputTokens: 10 },
      { at: 180_000, model: a, promptTokens: 100, outputTokens: 10 },
    ]);
    const out = runOnce({ policy: 'swapserve', config: { maxWorkers: 1 } }, small, r, cal, CLUSTER_DEFAULTS);
    assert.equal(out.served, 4);
    assert.equal(out.paths.cold.n, 2, 'a from disk at first, b from disk on its first request');
    assert.equal(out.paths.warm.n, 2);
    // One worker held from the first request to the end: GPU-hours = span.
    assert.ok(Math.abs(out.gpuHours - 180_000 / 3.6e6) < 1e-3, `${out.gpuHours}`);
  });

  it('always-warm serves everything warm on peak-sized replicas; scale-to-zero starts a worker per idle gap', () => {
    const one = { ...fleet, models: [fleet.models[0]] };
    const m = one.models[0].id;
    const reqs = [0, 1000, 600_000, 601_000].map((at) => ({ at, model: m, promptTokens: 500, outputTokens: 50 }));
    const warm = runOnce({ policy: 'always-warm' }, one, replayOf(one, reqs), cal, CLUSTER_DEFAULTS);
    assert.equal(warm.paths.warm.n, 4);
    assert.ok(Math.abs(warm.gpuHours - 601_000 / 3.6e6) < 1e-6);
    const stz = runOnce({ policy: 'scale-to-zero', idleMs: 60_000 }, one, replayOf(one, reqs), cal, CLUSTER_DEFAULTS);
    assert.equal(stz.workerStartsPerHour * (601_000 / 3.6e6), 2);
    assert.ok(stz.gpuHours < warm.gpuHours / 3);
  });

  it('GenTD26 + Azure: every trace model maps by popularity rank and every request gets tokens', { skip: noData }, () => {
    const r = buildReplay(fleet, { ...TRACE_DEFAULTS, arrivals: ARRIVALS, tokens: TOKENS });
    assert.equal(r.mapping.length, 86);
    assert.equal(r.skipped, 25);
    assert.equal(r.requests.length, 26_823 - 25);
    assert.equal(r.mapping[0].fleetModel, fleet.models[0].id);
    assert.ok(r.mapping[0].requests >= r.mapping[1].requests);
    assert.ok(r.spanMs > 8 * 3.6e6 && r.spanMs < 10 * 3.6e6, 'about 23 days / 60');
    for (const q of r.requests) assert.ok(q.promptTokens >= 1 && q.outputTokens >= 1);
  });
});
