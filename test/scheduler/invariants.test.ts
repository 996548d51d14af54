// Invariants of the policy over long simulated runs (the benchmark's cluster simulator, 1,000s of events):
// a model with active jobs on a worker is never evicted or dropped there; a model whose own jobs wait is never
// a victim unless reclaimed; no move is sent for a model while one towards the GPU is in flight on that worker.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RandomCluster } from '../../services/simulator/random-cluster.ts';
import { decide, initialState } from '../../services/scheduler/policy.ts';
import { pairKey } from '../../services/scheduler/state.ts';

describe('policy invariants over a simulated cluster', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 200 models x 16 workers, 20,000 events`, () => {
      const sim = new RandomCluster({ models: 200, workers: 16, events: 20_000, seed });
      const state = initialState(sim.models, { maxWorkers: 16, starvationMs: 2000 }, 'e1');
      let now = 1_000_000;
      for (const w of sim.workers) sim.take(decide(state, sim.report(w, now), now).actions, now);
      let events = 0, evictions = 0, moves = 0;
      let nextTick = now + 1000;
      while (events < 20_000) {
        now += 1 + Math.floor(sim.rand() * 4);
        const tickDue = now >= nextTick;
        if (tickDue) nextTick += 1000;
        for (const ev of sim.events(now, tickDue)) {
          events++;
          // What the policy knew before deciding.
          const before = new Map([...state.workers].map(([id, w]) => [id, { models: w.state.models, moves: new Map([...w.moves].map(([m, p]) => [m, `${p.kind}${p.doneAt !== undefined ? ' (answered)' : ''}`])) }]));
          const reclaimsBefore = new Set(state.reclaims.keys());
          const { actions } = decide(state, ev, now);
          const sentMoves = new Set<string>();
          for (const a of actions) {
            if (a.type !== 'send' || !('model' in a.command)) continue;
            const { kind, model } = a.command;
            const w = before.get(a.workerId);
            assert.ok(w, `command to unknown worker ${a.workerId}`);
            // The report the decision was made on (a worker-state event replaces it before deciding).
            const rep = state.workers.get(a.workerId)?.state.models[model] ?? w.models[model];
            if (kind === 'evict' || kind === 'drop') {
              evictions++;
              assert.equal(rep?.activeJobs ?? 0, 0, `${kind} of ${model} on ${a.workerId} with ${rep?.activeJobs} active jobs`);
              const q = state.queues.get(model);
              const reclaimed = reclaimsBefore.has(pairKey(a.workerId, model)) || state.reclaims.has(pairKey(a.workerId, model));
              assert.ok(!q || q.waiting === 0 || reclaimed, `${kind} of ${model} while its jobs wait`);
            }
            if (['load', 'swap_in', 'load_to_gpu', 'evict', 'drop'].includes(kind)) {
              moves++;
              // No move while one towards the GPU is in flight for that model there (load + swap_in go together as
              // one placement). After an evict or drop it may come straight back: the worker runs them in order.
              const inFlight = w.moves.get(model);
              assert.ok(!inFlight || /^(evict|drop)/.test(inFlight), `${kind} ${model} on ${a.workerId} while a move is in flight: ${inFlight}`);
              const key = `${a.workerId}\n${model}`;
              if (kind !== 'swap_in') assert.ok(!sentMoves.has(key), `two moves for ${model} on ${a.workerId} in one decision`);
              sentMoves.add(key);
            }
          }
          sim.take(actions, now);
        }
      }
      assert.ok(evictions > 100 && moves > 500, `the run must exercise evictions (${evictions}) and moves (${moves})`);
    });
  }
});
