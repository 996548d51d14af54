// The rates a simulator-vs-reality run measures (services/simulator/measured-calibration.ts): a busy run of the
// simulator itself, recorded the way a real worker's Server-Timing records a run, must give back the pass and step
// times that drove it — although most requests' own windows also hold their neighbours' work.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Calibration, ModelShape } from '../../services/fleet/calibration.ts';
import { PREFILL_CHUNK, SimCluster, type Controller, type Served } from '../../services/simulator/cluster.ts';
import { EventQueue } from '../../services/simulator/events.ts';
import { measureRates, median, type MeasuredRequest } from '../../services/simulator/measured-calibration.ts';
import { rng } from '../../services/simulator/rng.ts';

const PASS_S = 0.004, TOKEN_S = 2e-6, STEP_S = 0.0015;
const shape: ModelShape = { name: 'm', params: 1e9, weightBytes: 2e9, layers: 16, kvBytesPerToken: 32768 };
const cal: Calibration = {
  gpu: 'test', source: 'test', file: 'test', gpuMemoryBytes: 80e9, swapBytesPerS: 50e9, diskBytesPerS: 20e9, pageCacheBytesPerS: 20e9, workerStartS: 0,
  prefillS: (_m, t) => PASS_S + TOKEN_S * t, decodeStepS: () => STEP_S, maxBatch: () => 4,
  engine: { bandwidthBytesPerS: 0, decodeFlopsPerS: 0, prefillFlopsPerS: 0, decodeLayerOverheadS: 0, prefillLayerOverheadS: 0, memoryUtilization: 1, activationReserveBytes: 0, maxBatchCap: 4 },
};
const idle: Controller = { onQueue() {}, onWorker() {}, onResult() {}, onWorkerGone() {}, onTick() {} };

/** One warm replica of `m` (batch 4) serving `n` requests, a few ms apart: most share the engine with another. */
function busyRun(n: number): { served: Served[]; prompt: Map<number, number> } {
  const q = new EventQueue();
  const c = new SimCluster(q, { cal, shapes: new Map([['m', shape]]), concurrency: new Map([['m', 4]]), weightsBytesPerGpu: 80e9, hostBytesPerGpu: 100e9, pageCache: false, batchContextTokens: 1 });
  c.controller = idle;
  const w = c.startWorker('w', 1, 0);
  w.readyAt = 0;
  const s = w.slot('m');
  Object.assign(s, { residency: 'gpu', consuming: true, arrival: { atMs: -1, load: null, swap: null } });
  const rand = rng(7);
  const prompts = [40, 300, 700, 1653];
  const prompt = new Map<number, number>();
  let at = 0;
  for (let id = 0; id < n; id++) {
    at += -Math.log(1 - rand()) * 20; // mean gap 20 ms: a request takes ~30-110 ms, so most overlap
    const r = { id, model: 'm', at, promptTokens: prompts[Math.floor(rand() * prompts.length)], outputTokens: rand() < 0.2 ? 1 : 32 };
    prompt.set(id, r.promptTokens);
    q.at(at, () => c.arrive(r));
  }
  q.run();
  return { served: c.served, prompt };
}

/** What a real worker's final chunk would have said of each request (Server-Timing, ms from arrival). */
const asMeasured = (served: Served[], prompt: (id: number) => number): MeasuredRequest[] => served.map((s) => {
  const first = s.at + s.ttftMs;
  return {
    id: s.id, model: s.model, at: s.at, path: s.path, ttftMs: s.ttftMs, promptTokens: prompt(s.id), outputTokens: s.outputTokens,
    timing: { queue_ms: s.takenAt - s.at, load_ms: 0, swap_ms: 0, prefill_ms: first - s.takenAt, ttft_ms: s.ttftMs, decode_ms: s.doneAt - first, total_ms: s.doneAt - s.at },
    stepMs: s.outputTokens > 1 ? (s.doneAt - first) / (s.outputTokens - 1) : null,
  };
});

describe('rates measured from a run', () => {
  const { served, prompt } = busyRun(600);
  const real = asMeasured(served, (id) => prompt.get(id)!);

  it('the run is busy: a median over every request would charge the neighbours\' passes to the step and the prompt', () => {
    assert.equal(served.length, 600);
    for (const s of served) assert.ok(Number.isFinite(s.doneAt) && s.doneAt >= s.at + s.ttftMs && s.takenAt <= s.at + s.ttftMs, `request ${s.id}`);
    // What the replay measured before: each request's decode_ms / (tokens - 1), and prefill_ms / tokens.
    const naiveStep = median(real.filter((r) => r.stepMs !== null).map((r) => r.stepMs! / 1000));
    assert.ok(naiveStep > STEP_S * 1.15, `naive decode step ${naiveStep * 1000} ms vs ${STEP_S * 1000}: the run must mix prompts into decodes`);
  });

  it('gives back the decode step and the per-pass prefill that drove the run', () => {
    const m = measureRates(real, [shape], PREFILL_CHUNK);
    const step = m.step.get('m')!, pass = m.prefill.get('m')!;
    assert.ok(step.samples >= 10 && pass.samples >= 10, `clean samples: ${step.samples} decodes, ${pass.samples} prefills`);
    assert.ok(Math.abs(step.s - STEP_S) / STEP_S < 0.05, `decode step ${step.s * 1000} ms vs ${STEP_S * 1000}`);
    // A full pass and the short last pass of a 1653-token prompt (117 tokens), as the cluster prices them.
    for (const t of [PREFILL_CHUNK, 117]) {
      const got = pass.passS + pass.tokenS * t, want = PASS_S + TOKEN_S * t;
      assert.ok(Math.abs(got - want) / want < 0.1, `a ${t}-token pass: ${got * 1000} ms vs ${want * 1000}`);
    }
  });

  it('a model with no clean sample is refused by name; a bad chunk size is refused', () => {
    const other: ModelShape = { ...shape, name: 'absent' };
    assert.throws(() => measureRates(real, [shape, other], PREFILL_CHUNK), /model absent: no warm request whose prefill ran alone/);
    assert.throws(() => measureRates(real, [shape], 0), /Expected a positive integer for prefillChunk but received 0/);
  });
});
