// A random simulated cluster for the policy's decision-time benchmark and invariant tests: Zipf demand over many
// models, commands that land after a fixed delay, random job counts in worker reports, ticks. No trace, no timing
// model: it exercises decide() with many events, it does not predict what a fleet costs (fleet.ts does that).
import type { ModelOnWorker, WorkerState } from '../../contracts/cluster.ts';
import type { PolicyEvent } from '../scheduler/policy.ts';
import type { Action, ModelSettings } from '../scheduler/state.ts';
import { rng } from './rng.ts';

const GB = 1e9;

/** Size of the random cluster and of the run. */
export interface ClusterArgs { models: number; workers: number; events: number; seed: number }

/** A simulated cluster: applies sent commands after a delay and reports like a worker would. */
export class RandomCluster {
  readonly rand: () => number;
  readonly workers: WorkerState[] = [];
  readonly cdf: number[] = [];
  readonly models: ModelSettings[] = [];
  private inflight: { at: number; workerId: string; id: string; kind: string; model: string | null }[] = [];
  private added = new Map<string, number>();

  constructor(readonly a: ClusterArgs) {
    this.rand = rng(a.seed);
    let sum = 0;
    for (let i = 0; i < a.models; i++) {
      const bytes = Math.round(GB * Math.pow(16, this.rand())); // 1..16 GB, log-uniform
      this.models.push({
        id: `org/model-${i}`, bytes, sloMs: 2000, keepWarm: i < 10 ? 1 : 0, maxReplicas: 8, concurrency: 4,
        gpuIdleMs: 300_000, hostIdleMs: 3_600_000, priority: i % 50 === 0 ? 1 : 0,
      });
      sum += 1 / Math.pow(i + 1, 1.1);
      this.cdf.push(sum);
    }
    for (let i = 0; i < a.models; i++) this.cdf[i] /= sum;
    for (let w = 0; w < a.workers; w++) {
      this.workers.push({
        workerId: `gpu-${w}`, pid: 100 + w, host: 'sim', backend: 'cuda', device: 'sim H100', startedAt: 0, heartbeatAt: 0, seq: 0,
        budgets: { gpu: 80 * GB, host: 512 * GB }, usage: { gpu: 0, host: 0 }, maxJobs: 16, models: {}, draining: false, healthy: true, epoch: 1,
      });
    }
    // Every model parked in some worker's host RAM; GPUs filled with the most popular ones up to ~80%.
    this.models.forEach((m, i) => {
      const w = this.workers[i % a.workers];
      const gpuRoom = w.budgets.gpu * 0.8 - this.used(w, 'gpu');
      w.models[m.id] = { residency: m.bytes <= gpuRoom ? 'gpu' : 'host', bytes: m.bytes, activeJobs: 0, lastUsedAt: 0, consuming: m.bytes <= gpuRoom };
    });
  }

  used(w: WorkerState, tier: 'gpu' | 'host'): number {
    let b = 0;
    for (const m of Object.values(w.models)) if (tier === 'gpu' ? m.residency === 'gpu' : m.residency !== 'disk') b += m.bytes;
    return b;
  }

  report(w: WorkerState, now: number): PolicyEvent {
    w.seq++;
    w.heartbeatAt = now;
    w.usage = { gpu: this.used(w, 'gpu'), host: this.used(w, 'host') };
    const models: Record<string, ModelOnWorker> = {};
    for (const [id, m] of Object.entries(w.models)) models[id] = { ...m };
    return { type: 'worker-state', state: { ...w, models } };
  }

  zipf(): ModelSettings {
    const r = this.rand();
    let lo = 0, hi = this.cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cdf[mid] < r) lo = mid + 1;
      else hi = mid;
    }
    return this.models[lo];
  }

  take(actions: Action[], now: number): void {
    for (const a of actions) {
      if (a.type !== 'send') continue;
      const move = ['load', 'swap_in', 'load_to_gpu', 'evict', 'drop'].includes(a.command.kind);
      const delay = a.command.kind === 'load_to_gpu' || a.command.kind === 'load' ? 2000 : move ? 300 : 1;
      this.inflight.push({ at: now + delay, workerId: a.workerId, id: a.id, kind: a.command.kind, model: 'model' in a.command ? a.command.model : null });
    }
  }

  /** The next event at `now`: a landed command (state, then result), else demand, a heartbeat or a tick. */
  *events(now: number, tickDue: boolean): Generator<PolicyEvent> {
    const due = this.inflight.filter((c) => c.at <= now);
    this.inflight = this.inflight.filter((c) => c.at > now);
    for (const c of due) {
      const w = this.workers.find((x) => x.workerId === c.workerId)!;
      if (c.model !== null) {
        const m = (w.models[c.model] ??= { residency: 'disk', bytes: this.models.find((x) => x.id === c.model)!.bytes, activeJobs: 0, lastUsedAt: null, consuming: false });
        if (c.kind === 'swap_in' || c.kind === 'load_to_gpu') m.residency = 'gpu';
        else if (c.kind === 'evict' || c.kind === 'load') m.residency = 'host';
        else if (c.kind === 'drop') m.residency = 'disk';
        else if (c.kind === 'consume') m.consuming = true;
        else if (c.kind === 'stop_consume') m.consuming = false;
      }
      yield this.report(w, now);
      yield { type: 'result', result: { commandId: c.id, workerId: c.workerId, kind: c.kind as 'load', ok: true, durationMs: 1, finishedAt: now } };
    }
    if (tickDue) yield { type: 'tick' };
    const r = this.rand();
    if (r < 0.75) {
      const m = this.zipf();
      const added = (this.added.get(m.id) ?? 0) + 1;
      this.added.set(m.id, added);
      const waiting = this.rand() < 0.5 ? 0 : 1 + Math.floor(this.rand() * 6);
      // BullMQ's active count is what the workers run (no worker dies here, so no job is orphaned: a random count
      // would read as active jobs of dead workers, which the policy places as demand). The draw stays, so a seed
      // gives the same workload as before.
      this.rand();
      let active = 0;
      for (const w of this.workers) active += w.models[m.id]?.activeJobs ?? 0;
      yield { type: 'queue', model: m.id, waiting, active, added, oldestWaitingAt: waiting > 0 ? now - Math.floor(this.rand() * 3000) : null };
    } else {
      const w = this.workers[Math.floor(this.rand() * this.workers.length)];
      for (const m of Object.values(w.models)) {
        if (m.residency === 'gpu') {
          m.activeJobs = this.rand() < 0.3 ? 1 + Math.floor(this.rand() * 3) : 0;
          if (m.activeJobs > 0) m.lastUsedAt = now;
        } else m.activeJobs = 0;
      }
      yield this.report(w, now);
    }
  }
}
