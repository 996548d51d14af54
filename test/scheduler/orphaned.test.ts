// Orphaned active jobs (issue 4 item 10): BullMQ keeps a job whose worker died `active` until a running BullMQ
// Worker's stalled check puts it back, so the policy places such a model exactly as for waiting jobs. Synchronous,
// table-driven, against the recording fake of the effects.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialState, type PolicyConfig, type PolicyEvent, type PolicyState } from '../../services/scheduler/policy.ts';
import { demandOf, indexWorker, orphanedJobs } from '../../services/scheduler/placement.ts';
import type { ModelSettings } from '../../services/scheduler/state.ts';
import type { WorkerState } from '../../contracts/cluster.ts';
import { GB, model, record, workerState } from '../helpers/scheduler-fixtures.ts';

interface Setup {
  models: ModelSettings[];
  config?: Partial<PolicyConfig>;
  workers?: WorkerState[];
  /** model -> [waiting, active] */
  queues?: Record<string, [number, number]>;
}

const queue = (m: string, waiting: number, active: number): PolicyEvent =>
  ({ type: 'queue', model: m, waiting, active, added: waiting + active, oldestWaitingAt: waiting > 0 ? 0 : null });

function setup(s: Setup): PolicyState {
  const state = initialState(s.models, { maxWorkers: 4, ...s.config }, 'e1');
  for (const w of s.workers ?? []) decide(state, { type: 'worker-state', state: w }, 0);
  for (const [m, [waiting, active]] of Object.entries(s.queues ?? {})) decide(state, queue(m, waiting, active), 0);
  // Start each case with nothing in flight (set-up events may have prompted commands).
  state.nextId = 0;
  state.pending.clear();
  state.starting.clear();
  for (const w of state.workers.values()) {
    w.moves.clear();
    w.consume.clear();
    indexWorker(state, w);
  }
  return state;
}

interface Case { name: string; given: Setup; event: PolicyEvent; want: string[] }

const A = (): ModelSettings => model('A');
const cases: Case[] = [
  {
    name: 'active jobs, no worker known at all (a new leader after the death): a worker is started',
    given: { models: [A()], config: { maxWorkers: 1 } },
    event: queue('A', 0, 1), want: ['start w-e1-1 for A'],
  },
  {
    name: 'active jobs, no live consumer, parked in host RAM elsewhere: swap_in then consume, like a waiting job',
    given: { models: [A()], workers: [workerState('w2', { models: { A: ['host', 10 * GB] } })] },
    event: queue('A', 0, 2), want: ['w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'active jobs, no live consumer, on disk everywhere: load, swap_in, consume',
    given: { models: [A()], workers: [workerState('w2')] },
    event: queue('A', 0, 1), want: ['w2 load A', 'w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'the dead worker held a victim\'s GPU room: the orphaned model evicts an idle one like waiting demand does',
    given: { models: [A(), model('B')], workers: [workerState('w2', { gpu: 20 * GB, models: { A: ['host', 10 * GB], B: ['gpu', 15 * GB, 0, 50] } })] },
    event: queue('A', 0, 1), want: ['w2 stop_consume B', 'w2 evict B', 'w2 swap_in A', 'w2 consume A x4'],
  },
  {
    name: 'active jobs while a live worker consumes the model: it runs the stalled check itself; nothing to do',
    given: { models: [A()], workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 1, 0] } }), workerState('w2')] },
    event: queue('A', 0, 3), want: [],
  },
  {
    name: 'active jobs run by a draining worker that stopped consuming: not orphaned',
    given: { models: [A()], workers: [workerState('w1', { draining: true, models: { A: ['gpu', 10 * GB, 1, 0, false] } }), workerState('w2')] },
    event: queue('A', 0, 1), want: [],
  },
  {
    name: 'a draining worker reports its last job done before BullMQ\'s count shows it: not orphaned',
    given: { models: [A()], workers: [workerState('w1', { draining: true, models: { A: ['gpu', 10 * GB, 1, 0, false] } }), workerState('w2')], queues: { A: [0, 1] } },
    event: { type: 'worker-state', state: workerState('w1', { seq: 2, draining: true, models: { A: ['gpu', 10 * GB, 0, 10, false] } }) }, want: [],
  },
  {
    name: 'a worker lets go of the model before a snapshot shows its last job finished: not orphaned on that old count',
    given: { models: [A()], workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 1, 0, false] } }), workerState('w2')], queues: { A: [0, 1] } },
    event: { type: 'worker-state', state: workerState('w1', { seq: 2, models: { A: ['host', 10 * GB, 0, 10, false] } }) }, want: [],
  },
  {
    name: 'active jobs a live worker reports running while loading the model (not yet on its GPU): not orphaned',
    given: { models: [A()], workers: [workerState('w1', { models: { A: ['loading', 10 * GB, 1, 0, false] } }), workerState('w2')] },
    event: queue('A', 0, 1), want: [],
  },
];

describe('policy: orphaned active jobs are demand', () => {
  for (const c of cases) {
    it(c.name, () => {
      const state = setup(c.given);
      assert.deepEqual(record(decide(state, c.event, 1000).actions).calls, c.want);
    });
  }

  it('counts active jobs beyond what live workers run, and none while a worker consumes', () => {
    const state = setup({ models: [A()], workers: [workerState('w1', { models: { A: ['loading', 10 * GB, 1, 0, false] } })], queues: { A: [2, 3] } });
    assert.equal(orphanedJobs(state, 'A'), 2);
    assert.equal(demandOf(state, 'A'), 4);
    decide(state, { type: 'worker-state', state: workerState('w1', { seq: 2, models: { A: ['loading', 10 * GB, 1, 0, true] } }) }, 10);
    assert.equal(orphanedJobs(state, 'A'), 0);
    assert.equal(demandOf(state, 'A'), 2);
  });

  it('end to end: the only worker dies mid-job, a new one is started, gets the model and consumes; then nothing more', () => {
    const state = setup({ models: [A()], config: { maxWorkers: 1 }, workers: [workerState('w1', { models: { A: ['gpu', 10 * GB, 1, 0] } })], queues: { A: [0, 1] } });
    // While w1 still reports (its state key has not expired yet), its job is not orphaned.
    assert.deepEqual(decide(state, { type: 'tick' }, 500).actions, []);
    // Gone: the count read before may include jobs it finished; the scheduler re-reads the queue at once.
    assert.deepEqual(decide(state, { type: 'worker-gone', workerId: 'w1' }, 3000).actions, []);
    assert.equal(state.queues.get('A')?.stale, true);
    const [start] = decide(state, queue('A', 0, 1), 3010).actions;
    assert.ok(start?.type === 'start-worker' && start.model === 'A', 'scale from zero for the orphaned job');
    // Ticks while it starts do not start another.
    assert.deepEqual(decide(state, { type: 'tick' }, 3500).actions, []);
    assert.deepEqual(decide(state, queue('A', 0, 1), 3600).actions, []);
    const placed = decide(state, { type: 'worker-state', state: workerState(start.workerId, { startedAt: 4000 }) }, 4000);
    assert.deepEqual(record(placed.actions).calls, [`${start.workerId} load A`, `${start.workerId} swap_in A`, `${start.workerId} consume A x4`]);
    // The new consumer's stalled check moves the job back to wait; it runs it. Nothing else is asked for.
    assert.deepEqual(decide(state, queue('A', 1, 0), 4500).actions, []);
    assert.deepEqual(decide(state, queue('A', 0, 1), 4600).actions, []);
    assert.deepEqual(decide(state, { type: 'tick' }, 5000).actions, []);
  });
});
