// The policies a fleet replay compares, each a Controller of the simulated cluster: swapserve's (the real
// decide() of services/scheduler/policy.ts, fed the events a scheduler would read), and three baselines —
// always-warm (each model on its own GPUs sized for its peak), scale-to-zero only (KEDA/Knative style: a cold
// worker per replica from disk, released after an idle timeout) and LRU swap (llama-swap/Ollama style: a fixed
// pool, one model per GPU, the GPU idle longest swapped to the model of the oldest request; no queue awareness).
import type { CommandResult } from '../../contracts/cluster.ts';
import { decide, initialState, modelSettings, type Action, type PolicyConfig, type PolicyState } from '../scheduler/policy.ts';
import type { Controller, SimCluster, SimWorker } from './cluster.ts';
import type { FleetModel } from './fleet-spec.ts';
import type { SimRequest } from './trace.ts';

/** GPUs a worker needs to hold one model's weights (a power of two: tensor-parallel groups). */
export function gpusFor(c: SimCluster, model: string): number {
  const bytes = c.s.shapes.get(model)!.weightBytes;
  let g = 1;
  while (g * c.s.weightsBytesPerGpu < bytes) g *= 2;
  return g;
}

/** swapserve: every event goes through the production policy; its actions are applied to the simulated workers. */
export class SwapserveController implements Controller {
  readonly state: PolicyState;
  decisions = 0;

  constructor(private c: SimCluster, models: FleetModel[], config: Partial<PolicyConfig>) {
    this.state = initialState(models.map((m) => modelSettings(m, { bytes: m.weightBytes, concurrency: m.concurrency })), config, 'sim');
  }

  private apply(actions: Action[]): void {
    for (const a of actions) {
      if (a.type === 'send') this.c.workers.get(a.workerId)?.send(a.id, a.command);
      else if (a.type === 'start-worker') this.c.startWorker(a.workerId, a.model ? gpusFor(this.c, a.model) : 1);
      else this.c.stopWorker(a.workerId);
    }
  }

  private decide(ev: Parameters<typeof decide>[1]): void {
    this.decisions++;
    this.apply(decide(this.state, ev, this.c.q.now).actions);
  }

  onQueue(model: string): void {
    this.decide({ type: 'queue', model, ...this.c.waitingOf(model) });
  }
  onWorker(w: SimWorker): void {
    this.decide({ type: 'worker-state', state: w.report() });
  }
  onResult(_w: SimWorker, result: CommandResult): void {
    this.decide({ type: 'result', result });
  }
  onWorkerGone(w: SimWorker): void {
    this.decide({ type: 'worker-gone', workerId: w.id });
  }
  onTick(): void {
    this.decide({ type: 'tick' });
  }
}

/**
 * Replicas each model needs at its peak: the most requests of it in flight at once when each is served alone at
 * warm speed (prefill + decode at batch 1), divided by its per-replica concurrency.
 */
export function peakReplicas(c: SimCluster, requests: SimRequest[], concurrency: (m: string) => number): Map<string, number> {
  const spans = new Map<string, [number, number][]>();
  for (const r of requests) {
    const shape = c.s.shapes.get(r.model)!;
    const ms = (c.s.cal.prefillS(shape, r.promptTokens) + r.outputTokens * c.s.cal.decodeStepS(shape, 1, r.promptTokens + r.outputTokens / 2)) * 1000;
    let l = spans.get(r.model);
    if (!l) spans.set(r.model, (l = []));
    l.push([r.at, 1], [r.at + ms, -1]);
  }
  const out = new Map<string, number>();
  for (const m of c.s.shapes.keys()) {
    const l = (spans.get(m) ?? []).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let n = 0, peak = 0;
    for (const [, d] of l) peak = Math.max(peak, (n += d));
    out.set(m, Math.max(1, Math.ceil(peak / concurrency(m))));
  }
  return out;
}

let ids = 0;
const nextId = (p: string): string => `${p}-${++ids}`;

/** Makes `model` resident and consuming on a fresh worker, as if placed before the replay starts. */
function preload(w: SimWorker, model: string, concurrency: number): void {
  const s = w.slot(model);
  s.residency = 'gpu';
  s.consuming = true;
  s.concurrency = Math.min(s.concurrency, concurrency);
  s.arrival = { atMs: -1, load: null, swap: null };
}

/** Always-warm: each model on its own workers, as many as its peak needs, for the whole replay. */
export class AlwaysWarmController implements Controller {
  constructor(c: SimCluster, models: FleetModel[], requests: SimRequest[]) {
    const conc = new Map(models.map((m) => [m.id, m.concurrency]));
    for (const [m, n] of peakReplicas(c, requests, (x) => conc.get(x)!)) {
      for (let i = 0; i < n; i++) {
        const w = c.startWorker(nextId('warm'), gpusFor(c, m), 0);
        w.readyAt = 0;
        preload(w, m, conc.get(m)!);
      }
    }
  }
  onQueue(): void {}
  onWorker(): void {}
  onResult(): void {}
  onWorkerGone(): void {}
  onTick(): void {}
}

/** Scale-to-zero only: replicas = ceil(jobs / concurrency), each a fresh worker loading from disk; idle ones leave. */
export class ScaleToZeroController implements Controller {
  private replicas = new Map<string, Set<SimWorker>>();

  constructor(private c: SimCluster, private models: FleetModel[], private idleMs: number) {
    for (const m of models) this.replicas.set(m.id, new Set());
  }

  onQueue(model: string): void {
    const m = this.models.find((x) => x.id === model)!;
    const { waiting, active } = this.c.waitingOf(model);
    const set = this.replicas.get(model)!;
    let live = 0;
    for (const w of set) if (!w.draining) live++;
    const want = Math.ceil((waiting + active) / m.concurrency);
    for (; live < want; live++) {
      const w = this.c.startWorker(nextId('stz'), gpusFor(this.c, model));
      set.add(w);
      w.send(nextId('c'), { kind: 'load_to_gpu', model });
      w.send(nextId('c'), { kind: 'consume', model, concurrency: m.concurrency });
    }
  }
  onWorker(): void {}
  onResult(): void {}
  onWorkerGone(w: SimWorker): void {
    for (const set of this.replicas.values()) set.delete(w);
  }
  onTick(): void {
    const now = this.c.q.now;
    for (const [model, set] of this.replicas) {
      if (this.c.waitingOf(model).waiting > 0) continue;
      for (const w of set) {
        const s = w.slots.get(model);
        if (w.draining || !s || s.residency !== 'gpu' || s.activeJobs > 0) continue;
        if (now - (s.lastUsedAt ?? s.arrival?.atMs ?? now) < this.idleMs) continue;
        w.draining = true; // takes no new job from now; the drain command lands a hop later
        w.send(nextId('c'), { kind: 'drain' });
      }
    }
  }
}

/**
 * LRU swap: `gpus` workers for the whole replay, each holding at most one model. The oldest waiting request whose
 * model no worker holds takes the worker idle longest (one with no running job; else it stops taking jobs and is
 * taken once they finish): its model is dropped and the new one read from disk (or the page cache).
 */
export class LruController implements Controller {
  private holds = new Map<SimWorker, { model: string | null; usedAt: number; reservedFor: string | null }>();

  constructor(private c: SimCluster, private models: FleetModel[], workers: number, gpusPerWorker: number) {
    for (let i = 0; i < workers; i++) {
      const w = c.startWorker(nextId('lru'), gpusPerWorker, 0);
      w.readyAt = 0;
      this.holds.set(w, { model: null, usedAt: 0, reservedFor: null });
    }
  }

  private serve(): void {
    const waiting = this.models.map((m) => ({ m, at: this.c.waitingOf(m.id).oldestWaitingAt })).filter((x) => x.at !== null)
      .sort((a, b) => a.at! - b.at!);
    for (const { m } of waiting) {
      let held = false;
      for (const h of this.holds.values()) if (h.model === m.id || h.reservedFor === m.id) held = true;
      if (held) continue;
      // Candidates: no move pending. Idle ones (nothing running, nothing of theirs waiting) first, the one used
      // longest ago first; else a busy one is reserved and switches once its running jobs finish.
      let best: SimWorker | null = null;
      let bestScore = Infinity;
      for (const [w, h] of this.holds) {
        if (h.reservedFor || w.pendingCommands() > 0 || w.budgets.gpu < m.weightBytes) continue;
        const busy = w.activeJobs() > 0 || (h.model !== null && this.c.waitingOf(h.model).waiting > 0);
        const score = (h.model === null ? -1e15 : 0) + (busy ? 1e15 : 0) + h.usedAt;
        if (score < bestScore) [best, bestScore] = [w, score];
      }
      if (!best) return;
      const w: SimWorker = best;
      const h = this.holds.get(w)!;
      h.reservedFor = m.id;
      if (h.model) w.send(nextId('c'), { kind: 'stop_consume', model: h.model });
      this.swapWhenIdle(w);
    }
  }

  private swapWhenIdle(w: SimWorker): void {
    const h = this.holds.get(w)!;
    if (!h.reservedFor || w.activeJobs() > 0) return;
    const m = this.models.find((x) => x.id === h.reservedFor)!;
    if (h.model) w.send(nextId('c'), { kind: 'drop', model: h.model });
    w.send(nextId('c'), { kind: 'load_to_gpu', model: m.id });
    w.send(nextId('c'), { kind: 'consume', model: m.id, concurrency: m.concurrency });
    h.model = m.id;
    h.reservedFor = null;
  }

  onQueue(): void {
    this.serve();
  }
  onWorker(w: SimWorker): void {
    const h = this.holds.get(w);
    if (!h) return;
    if (h.model && w.slots.get(h.model)?.lastUsedAt != null) h.usedAt = w.slots.get(h.model)!.lastUsedAt!;
    this.swapWhenIdle(w);
    this.serve();
  }
  onResult(): void {}
  onWorkerGone(): void {}
  onTick(): void {
    this.serve();
  }
}
