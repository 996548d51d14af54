// The scheduler policy, table-driven and synchronous: state + event in, effect calls (recorded by a fake) out.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialState, type PolicyConfig, type PolicyEvent, type PolicyState, type QueueView } from '../../services/scheduler/policy.ts';
import { indexWorker, refreshDemand } from '../../services/scheduler/placement.ts';
import type { ModelSettings } from '../../services/scheduler/state.ts';
import type { WorkerState } from '../../contracts/cluster.ts';
import { GB, model, record, workerState } from '../helpers/scheduler-fixtures.ts';

interface Setup {
  models: ModelSettings[];
  config?: Partial<PolicyConfig>;
  workers?: WorkerState[];
  /** model -> [waiting, oldestWaitingAt, rate (jobs/ms)] */
  queues?: Record<string, [number, number | null, number?]>;
}

function setup(s: Setup): PolicyState {
  const state = initialState(s.models, { maxWorkers: 4, ...s.config }, 'e1');
  for (const w of s.workers ?? []) decide(state, { type: 'worker-state', state: w }, 0);
  // Start each case with nothing in flight (set-up reports may have prompted commands).
  state.nextId = 0;
  state.pending.clear();
  for (const w of state.workers.values()) {
    w.moves.clear();
    w.consume.clear();
    indexWorker(state, w);
  }
  for (const [m, [waiting, oldest, rate = 0]] of Object.entries(s.queues ?? {})) {
    const q: QueueView = { waiting, active: 0, oldestWaitingAt: oldest, added: waiting, rate, seenAt: 0 };
    state.queues.set(m, q);
    refreshDemand(state, m);
  }
  return state;
}

const queued = (m: string, waiting: number, oldestWaitingAt: number | null = 0): PolicyEvent =>
  ({ type: 'queue', model: m, waiting, active: 0, added: waiting, oldestWaitingAt });
const tick: PolicyEvent = { type: 'tick' };

interface Case { name: string; given: Setup; event: PolicyEvent; now: number; want: string[] }

const cases: Case[] = [
  {
    name: 'warm: a consuming GPU replica serves; nothing to do',
    given: { models: [model('A')], workers: [workerState('w1', { models: { A: ['gpu', 10 * GB] } })] },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'warm: a GPU replica that is not consuming is told to consume',
    given: { models: [model('A')], workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 0, null, false] } })] },
    event: queued('A', 1), now: 100, want: ['w1 consume A x4'],
  },
  {
    name: 'swap: parked in host RAM with GPU room -> swap_in then consume',
    given: { models: [model('A')], workers: [workerState('w1', { models: { A: ['host', 10 * GB] } })] },
    event: queued('A', 1), now: 100, want: ['w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'swap preferred over a disk load on an emptier worker',
    given: {
      models: [model('A')],
      workers: [workerState('w1', { models: { A: ['host', 10 * GB] } }), workerState('w2')],
    },
    event: queued('A', 1), now: 100, want: ['w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'partial residency: of two workers with the model parked, the one holding a GPU prefix of it swaps it in',
    given: {
      models: [model('A')],
      workers: [workerState('w1', { models: { A: ['host', 10 * GB] } }), (() => {
        const w = workerState('w2', { models: { A: ['host', 10 * GB] } });
        w.models.A.gpuPrefixBytes = 4 * GB;
        return w;
      })()],
    },
    event: queued('A', 1), now: 100, want: ['w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'cold: nowhere resident -> load (parks a host copy) then swap_in, on a worker with room',
    given: { models: [model('A')], workers: [workerState('w1')] },
    event: queued('A', 1), now: 100, want: ['w1 load A', 'w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'victim: an idle GPU model is stopped, evicted, then the waiting model swaps in',
    given: {
      models: [model('A'), model('B')],
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 0, 50] } })],
    },
    event: queued('A', 1), now: 100, want: ['w1 stop_consume B', 'w1 evict B', 'w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'victim by expected cost, not recency: the rarely used model goes although used last',
    given: {
      models: [model('A'), model('B'), model('C')],
      workers: [workerState('w1', { gpu: 25 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 10 * GB, 0, 90], C: ['gpu', 10 * GB, 0, 10] } })],
      queues: { B: [0, null, 1e-7], C: [0, null, 1e-3] },
    },
    event: queued('A', 1), now: 100, want: ['w1 stop_consume B', 'w1 evict B', 'w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'a model in use is never evicted (maxWorkers reached: the request waits)',
    given: {
      models: [model('A'), model('B')], config: { maxWorkers: 1 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 1, 50] } })],
    },
    event: queued('A', 1, 90), now: 100, want: [],
  },
  {
    name: 'thrash control: an idle resident model whose own jobs wait is not a victim',
    given: {
      models: [model('A'), model('B')], config: { maxWorkers: 1 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 0, 50] } })],
      queues: { B: [3, 0] },
    },
    event: queued('A', 1, 90), now: 100, want: [],
  },
  {
    name: 'no room anywhere and below maxWorkers: start a worker for it',
    given: {
      models: [model('A'), model('B')], config: { maxWorkers: 2 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { B: ['gpu', 15 * GB, 1, 50] } })],
    },
    event: queued('A', 1), now: 100, want: ['start w-e1-1 for A'],
  },
  {
    name: 'scale from zero: no workers -> start one',
    given: { models: [model('A')] },
    event: queued('A', 1), now: 100, want: ['start w-e1-1 for A'],
  },
  {
    name: 'scale out: oldest wait past the SLO -> a second replica on another worker',
    given: {
      models: [model('A', { sloMs: 500 })],
      workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 4, 90] } }), workerState('w2')],
    },
    event: queued('A', 9, 0), now: 1000, want: ['w2 load A', 'w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'no scale out within the SLO',
    given: {
      models: [model('A', { sloMs: 500 })],
      workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 4, 90] } }), workerState('w2')],
    },
    event: queued('A', 9, 800), now: 1000, want: [],
  },
  {
    name: 'no scale out past maxReplicas',
    given: {
      models: [model('A', { sloMs: 500, maxReplicas: 1 })],
      workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 4, 90] } }), workerState('w2')],
    },
    event: queued('A', 9, 0), now: 1000, want: [],
  },
  {
    name: 'demote: GPU -> host after gpuIdleMs',
    given: { models: [model('A', { gpuIdleMs: 1000 })], config: { minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 0, 0] } })] },
    event: tick, now: 1000, want: ['w1 stop_consume A', 'w1 evict A'],
  },
  {
    name: 'demote: not before gpuIdleMs',
    given: { models: [model('A', { gpuIdleMs: 1000 })], config: { minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 0, 0] } })] },
    event: tick, now: 999, want: [],
  },
  {
    name: 'demote: keep-warm replicas stay on the GPU',
    given: { models: [model('A', { gpuIdleMs: 1000, keepWarm: 1 })], config: { minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 0, 0] } })] },
    event: tick, now: 5000, want: [],
  },
  {
    name: 'demote: host -> disk after hostIdleMs',
    given: { models: [model('A', { hostIdleMs: 1000 })], config: { minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['host', 10 * GB, 0, 0] } })] },
    event: tick, now: 1000, want: ['w1 drop A'],
  },
  {
    name: 'keep-warm: a keep-warm model with no replica is placed on a tick',
    given: { models: [model('A', { keepWarm: 1 })], config: { minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['host', 10 * GB, 0, 0] } })] },
    event: tick, now: 10, want: ['w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'scale to zero: an idle worker is drained after workerIdleMs',
    given: { models: [model('A')], config: { workerIdleMs: 1000 }, workers: [workerState('w1', { models: { A: ['host', 10 * GB, 0, 0] } })] },
    event: tick, now: 1000, want: ['w1 drain'],
  },
  {
    name: 'scale to zero: not below minWorkers',
    given: { models: [model('A')], config: { workerIdleMs: 1000, minWorkers: 1 }, workers: [workerState('w1', { models: { A: ['host', 10 * GB, 0, 0] } })] },
    event: tick, now: 5000, want: [],
  },
  {
    name: 'scale to zero: a busy worker is kept',
    given: { models: [model('A')], config: { workerIdleMs: 1000 }, workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 1, 0] } })] },
    event: tick, now: 5000, want: [],
  },
  {
    name: 'starvation bound: past starvationMs a busy model is told to stop consuming (not evicted yet)',
    given: {
      models: [model('A'), model('B')], config: { maxWorkers: 1, starvationMs: 1000 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 2, 50] } })],
      queues: { B: [5, 0] },
    },
    event: queued('A', 1, 0), now: 1000, want: ['w1 stop_consume B'],
  },
  {
    name: 'starvation bound: before starvationMs the busy model keeps its GPU',
    given: {
      models: [model('A'), model('B')], config: { maxWorkers: 1, starvationMs: 1000 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 2, 50] } })],
      queues: { B: [5, 0] },
    },
    event: queued('A', 1, 0), now: 999, want: [],
  },
  {
    name: 'a queue of an unknown model is ignored',
    given: { models: [model('A')], workers: [workerState('w1')] },
    event: queued('nope', 3), now: 100, want: [],
  },
  {
    name: 'a draining worker gets no placements',
    given: { models: [model('A')], config: { maxWorkers: 1 }, workers: [workerState('w1', { draining: true })] },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'a model larger than any GPU budget is not placed',
    given: { models: [model('A', { bytes: 90 * GB })], config: { maxWorkers: 1 }, workers: [workerState('w1')] },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'cold without host room: load_to_gpu (no host copy), and nothing is dropped for it',
    given: {
      models: [model('A'), model('B')],
      workers: [workerState('w1', { host: 20 * GB, models: { B: ['host', 15 * GB, 0, 10] } })],
    },
    event: queued('A', 1), now: 100, want: ['w1 load_to_gpu A', 'w1 consume A x4'],
  },
  {
    name: 'a victim with no host copy costs a disk reload: the one parked in host RAM goes instead',
    given: {
      models: [model('A'), model('B'), model('C')],
      workers: [workerState('w1', { gpu: 25 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 10 * GB, 0, 10, true, true], C: ['gpu', 10 * GB, 0, 10, true, false] } })],
      queues: { B: [0, null, 2e-6], C: [0, null, 1e-6] },
    },
    event: queued('A', 1), now: 100, want: ['w1 stop_consume B', 'w1 evict B', 'w1 swap_in A', 'w1 consume A x4'],
  },
  {
    name: 'a fresh worker whose pinned host pool is not ready yet: load_to_gpu (a load would wait for the pinning)',
    given: { models: [model('A')], workers: [{ ...workerState('w1'), hostReady: false }] },
    event: queued('A', 1), now: 100, want: ['w1 load_to_gpu A', 'w1 consume A x4'],
  },
  {
    name: 'a worker reporting its host pool ready parks a host copy as before: load + swap_in',
    given: { models: [model('A')], workers: [{ ...workerState('w1'), hostReady: true }] },
    event: queued('A', 1), now: 100, want: ['w1 load A', 'w1 swap_in A', 'w1 consume A x4'],
  },
  // Placement constraints (config `placement`, written by `swapserve plan`): a model with groups runs only on workers of them.
  {
    name: 'placement: a model of group g1 goes to the g1 worker, not to an emptier worker of g2',
    given: {
      models: [model('A', { groups: ['g1'] })],
      workers: [{ ...workerState('w1'), group: 'g2' }, { ...workerState('w2', { gpu: 30 * GB, models: { B: ['gpu', 15 * GB, 1, 50] } }), group: 'g1' }],
    },
    event: queued('A', 1), now: 100, want: ['w2 load A', 'w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'placement: a model parked in host RAM on a worker outside its groups is not swapped in there',
    given: {
      models: [model('A', { groups: ['g1'] })], config: { maxWorkers: 1 },
      workers: [{ ...workerState('w1', { models: { A: ['host', 10 * GB] } }), group: 'g2' }],
    },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'placement: a worker of no group serves no model that has groups',
    given: { models: [model('A', { groups: ['g1'] })], config: { maxWorkers: 1 }, workers: [workerState('w1')] },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'placement: no worker of its group -> start one in that group',
    given: { models: [model('A', { groups: ['g1'] })], config: { maxWorkers: 4 }, workers: [{ ...workerState('w1'), group: 'g2' }] },
    event: queued('A', 1), now: 100, want: ['start w-e1-1 for A in g1'],
  },
  {
    name: 'placement: the first group at its worker cap -> start in the next of the model\'s groups',
    given: {
      models: [model('A', { groups: ['g1', 'g2'] })], config: { maxWorkers: 4, groupMaxWorkers: { g1: 1 } },
      workers: [{ ...workerState('w1', { gpu: 20 * GB, models: { B: ['gpu', 15 * GB, 1, 50] } }), group: 'g1' }],
    },
    event: queued('A', 1), now: 100, want: ['start w-e1-1 for A in g2'],
  },
  {
    name: 'placement: every group of the model at its worker cap -> no start, though maxWorkers allows one',
    given: {
      models: [model('A', { groups: ['g1'] })], config: { maxWorkers: 4, groupMaxWorkers: { g1: 1 } },
      workers: [{ ...workerState('w1', { gpu: 20 * GB, models: { B: ['gpu', 15 * GB, 1, 50] } }), group: 'g1' }],
    },
    event: queued('A', 1), now: 100, want: [],
  },
  {
    name: 'placement: the starvation bound reclaims only a GPU of the starving model\'s groups',
    given: {
      models: [model('A', { groups: ['g1'] }), model('B')], config: { maxWorkers: 1, starvationMs: 1000 },
      workers: [{ ...workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 2, 50] } }), group: 'g2' }],
      queues: { B: [5, 0] },
    },
    event: queued('A', 1, 0), now: 1000, want: [],
  },
  {
    name: 'placement: a model in no group still runs on a grouped worker',
    given: { models: [model('A')], workers: [{ ...workerState('w1'), group: 'g1' }] },
    event: queued('A', 1), now: 100, want: ['w1 load A', 'w1 swap_in A', 'w1 consume A x4'],
  },
];

describe('policy: one event -> recorded effects', () => {
  for (const c of cases) {
    it(c.name, () => {
      const state = setup(c.given);
      const { actions } = decide(state, c.event, c.now);
      assert.deepEqual(record(actions).calls, c.want);
    });
  }
});

describe('policy: sequences', () => {
  it('a command in flight is not sent twice; its result lets the next decision go on', () => {
    const state = setup({ models: [model('A')], workers: [workerState('w1', { models: { A: ['host', 10 * GB] } })] });
    const first = decide(state, queued('A', 1), 10).actions;
    assert.deepEqual(record(first).calls, ['w1 swap_in A', 'w1 consume A x4']);
    assert.deepEqual(decide(state, queued('A', 2), 20).actions, []);
    // The worker reports the model on the GPU and answers both commands: still nothing to do.
    decide(state, { type: 'worker-state', state: workerState('w1', { seq: 2, models: { A: ['gpu', 10 * GB, 1, 20, true] } }) }, 30);
    for (const a of first) {
      if (a.type !== 'send') continue;
      const r = decide(state, { type: 'result', result: { commandId: a.id, workerId: 'w1', kind: a.command.kind, ok: true, durationMs: 1, finishedAt: 30 } }, 30);
      assert.deepEqual(r.actions, []);
    }
    assert.equal(state.pending.size, 0);
  });

  it('a failed move backs off that worker and places the model elsewhere', () => {
    const state = setup({ models: [model('A')], workers: [workerState('w1'), workerState('w2')] });
    const first = decide(state, queued('A', 1), 10).actions;
    assert.deepEqual(record(first).calls, ['w1 load A', 'w1 swap_in A', 'w1 consume A x4']);
    const load = first[0];
    assert.ok(load.type === 'send');
    const r = decide(state, {
      type: 'result',
      result: { commandId: load.id, workerId: 'w1', kind: 'load', model: 'A', ok: false, error: { code: 'io', message: 'x' }, durationMs: 5, finishedAt: 20 },
    }, 20);
    assert.deepEqual(record(r.actions).calls, ['w2 load A', 'w2 swap_in A', 'w2 consume A x4']);
  });

  it('scale from zero starts one worker, not one per event, and gives up on one that never reports', () => {
    const state = setup({ models: [model('A')], config: { workerStartTimeoutMs: 5000 } });
    assert.deepEqual(record(decide(state, queued('A', 1), 0).actions).calls, ['start w-e1-1 for A']);
    assert.deepEqual(decide(state, queued('A', 2), 10).actions, []);
    // Given up: stopped; the next start waits out failureBackoffMs (5 s) rather than spawning every tick.
    assert.deepEqual(record(decide(state, tick, 5000).actions).calls, ['stop w-e1-1']);
    assert.deepEqual(record(decide(state, tick, 9999).actions).calls, []);
    assert.deepEqual(record(decide(state, tick, 10_000).actions).calls, ['start w-e1-2 for A']);
  });

  it('a worker start that fails is retried after failureBackoffMs, not at once', () => {
    const state = setup({ models: [model('A')] });
    const [start] = decide(state, queued('A', 1), 0).actions;
    assert.ok(start.type === 'start-worker');
    assert.deepEqual(decide(state, { type: 'worker-start-failed', workerId: start.workerId, message: 'ENOENT' }, 10).actions, []);
    assert.deepEqual(decide(state, tick, 1000).actions, []);
    assert.deepEqual(record(decide(state, tick, 5010).actions).calls, ['start w-e1-2 for A']);
  });

  it('a started worker that reports gets the waiting model', () => {
    const state = setup({ models: [model('A')] });
    const [start] = decide(state, queued('A', 1), 0).actions;
    assert.ok(start.type === 'start-worker');
    const r = decide(state, { type: 'worker-state', state: workerState(start.workerId) }, 500);
    assert.deepEqual(record(r.actions).calls, [`${start.workerId} load A`, `${start.workerId} swap_in A`, `${start.workerId} consume A x4`]);
    assert.equal(state.starting.size, 0);
  });

  it('starvation bound, end to end: stop_consume, then evict only once the busy model has no active job', () => {
    const state = setup({
      models: [model('A'), model('B')], config: { maxWorkers: 1, starvationMs: 1000 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 2, 50] } })],
      queues: { B: [5, 0] },
    });
    assert.deepEqual(record(decide(state, queued('A', 1, 0), 1000).actions).calls, ['w1 stop_consume B']);
    // B still has an active job: nothing is evicted, and B is not told to consume again.
    const busy = decide(state, { type: 'worker-state', state: workerState('w1', { seq: 2, gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 1, 1100, false] } }) }, 1100);
    assert.deepEqual(record(busy.actions).calls, []);
    const idle = decide(state, { type: 'worker-state', state: workerState('w1', { seq: 3, gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 0, 1200, false] } }) }, 1200);
    assert.deepEqual(record(idle.actions).calls, ['w1 evict B', 'w1 swap_in A', 'w1 consume A x4']);
  });

  it('a reclaim ends once the starving model is served elsewhere: the busy model consumes again', () => {
    const state = setup({
      models: [model('A'), model('B')], config: { maxWorkers: 2, starvationMs: 1000 },
      workers: [workerState('w1', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 2, 50] } })],
      queues: { B: [5, 0] },
    });
    // A cannot be placed and a worker start is in flight; past the bound, B is asked to stop consuming.
    assert.deepEqual(record(decide(state, queued('A', 1, 0), 10).actions).calls, ['start w-e1-1 for A']);
    assert.deepEqual(record(decide(state, queued('A', 1, 0), 1000).actions).calls, ['w1 stop_consume B']);
    // The new worker reports: A goes there, and then B (its jobs still waiting) is told to consume again.
    const fresh = decide(state, { type: 'worker-state', state: workerState('w-e1-1') }, 1100);
    assert.deepEqual(record(fresh.actions).calls, ['w-e1-1 load A', 'w-e1-1 swap_in A', 'w-e1-1 consume A x4']);
    const again = decide(state, { type: 'worker-state', state: workerState('w1', { seq: 2, gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 1, 1100, false] } }) }, 1200);
    assert.deepEqual(record(again.actions).calls, ['w1 consume B x4']);
    assert.equal(state.reclaims.size, 0);
  });

  it('a worker restarted under the same id loses the commands sent to its previous process', () => {
    const state = setup({ models: [model('A')], config: { maxWorkers: 1 }, workers: [workerState('w1', { startedAt: 0 })] });
    assert.deepEqual(record(decide(state, queued('A', 1), 10).actions).calls, ['w1 load A', 'w1 swap_in A', 'w1 consume A x4']);
    const r = decide(state, { type: 'worker-state', state: workerState('w1', { startedAt: 500, seq: 0 }) }, 600);
    assert.deepEqual(record(r.actions).calls, ['w1 load A', 'w1 swap_in A', 'w1 consume A x4']);
  });

  it('a late (older) worker report does not undo a newer one', () => {
    const state = setup({ models: [model('A')], workers: [workerState('w1', { seq: 5, models: { A: ['gpu', 10 * GB] } })] });
    decide(state, { type: 'worker-state', state: workerState('w1', { seq: 4, models: { A: ['host', 10 * GB] } }) }, 10);
    assert.equal(state.workers.get('w1')?.state.models.A.residency, 'gpu');
  });

  it('a gone worker is forgotten with its commands in flight; the model is placed again', () => {
    const state = setup({ models: [model('A')], workers: [workerState('w1'), workerState('w2')] });
    assert.deepEqual(record(decide(state, queued('A', 1), 0).actions).calls, ['w1 load A', 'w1 swap_in A', 'w1 consume A x4']);
    const r = decide(state, { type: 'worker-gone', workerId: 'w1' }, 100);
    assert.deepEqual(record(r.actions).calls, ['w2 load A', 'w2 swap_in A', 'w2 consume A x4']);
    assert.ok([...state.pending.values()].every((p) => p.workerId === 'w2'));
  });

  it('commands carry the epoch, id and time of the leader that applied them', () => {
    const state = setup({ models: [model('A')], workers: [workerState('w1')] });
    const fx = record(decide(state, queued('A', 1), 0).actions, 7, 1234);
    assert.deepEqual(fx.commands[0].command, { kind: 'load', model: 'A', id: 'e1-1', epoch: 7, issuedAt: 1234 });
  });
});
