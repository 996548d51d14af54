// Pure helpers of the policy: effective residency, tier accounting, expected cost, victim and worker choice.
import type { ModelOnWorker } from '../../contracts/cluster.ts';
import type { Residency } from '../../contracts/vocab.ts';
import { HOST_ONLY, ON_GPU, pairKey, type PolicyState, type WorkerCache, type WorkerView } from './state.ts';

/** A model's residency on a worker once the move in flight there lands (commands run in order on a worker). */
export function residencyOf(w: WorkerView, model: string): Residency {
  const move = w.moves.get(model);
  if (move) {
    switch (move.kind) {
      case 'load': return 'loading';
      case 'swap_in':
      case 'load_to_gpu': return 'swapping-in';
      case 'evict': return hasHostCopy(w, model) ? 'host' : 'disk';
      case 'drop': return 'disk';
    }
  }
  return w.state.models[model]?.residency ?? 'disk';
}

/**
 * Whether the model has (or will have, once moves land) a host copy on the worker: what makes `evict` a park in
 * host RAM rather than a trip back to disk.
 */
export function hasHostCopy(w: WorkerView, model: string): boolean {
  const rep = w.state.models[model];
  const move = w.moves.get(model);
  if (move?.kind === 'load_to_gpu') return false;
  if (move?.kind === 'load' || move?.kind === 'swap_in') return true;
  if (move?.kind === 'drop') return false;
  if (!rep || rep.residency === 'disk') return false;
  if (HOST_ONLY.has(rep.residency)) return true;
  return rep.hostCopy ?? w.hostCopy.get(model) ?? true;
}

/** Whether the config's placement lets `model` run on worker `w` (a model with no groups runs anywhere). */
export function mayPlace(state: PolicyState, model: string, w: WorkerView): boolean {
  const groups = state.models.get(model)?.groups;
  return groups === undefined || (w.state.group !== undefined && groups.includes(w.state.group));
}

/** A GPU replica (or one on its way): the model can serve jobs there. */
export const isReplica = (r: Residency): boolean => r === 'gpu' || r === 'swapping-in';

export function isConsuming(w: WorkerView, model: string): boolean {
  return w.consume.get(model)?.want ?? w.state.models[model]?.consuming ?? false;
}

export function reported(w: WorkerView, model: string): ModelOnWorker | undefined {
  return w.state.models[model];
}

export function modelBytes(state: PolicyState, w: WorkerView | null, model: string): number {
  const b = w?.state.models[model]?.bytes;
  return b && b > 0 ? b : (state.models.get(model)?.bytes ?? 0);
}

/** Every model a worker holds or is being asked to hold. */
export function modelsOn(w: WorkerView): readonly string[] {
  return cacheOf(w).models;
}

function cacheOf(w: WorkerView): WorkerCache {
  if (w.cache.version !== w.version) {
    const models = Object.keys(w.state.models);
    for (const m of w.moves.keys()) if (!(m in w.state.models)) models.push(m);
    w.cache = { version: w.version, models, gpu: -1, host: -1, onGpu: null, hostOnly: null };
  }
  return w.cache;
}

/** Models whose effective residency on the worker is exactly `tier` (victim candidates for that tier). */
function settledIn(w: WorkerView, tier: 'gpu' | 'host'): readonly string[] {
  const c = cacheOf(w);
  if (c.onGpu === null || c.hostOnly === null) {
    c.onGpu = [];
    c.hostOnly = [];
    for (const m of c.models) {
      const r = residencyOf(w, m);
      if (r === 'gpu') c.onGpu.push(m);
      else if (r === 'host') c.hostOnly.push(m);
    }
  }
  return tier === 'gpu' ? c.onGpu : c.hostOnly;
}

/** GPU and host bytes in use on a worker once the moves in flight land, plus what the worker reports besides models. */
export function usageOf(state: PolicyState, w: WorkerView): { gpu: number; host: number } {
  const c = cacheOf(w);
  if (c.gpu < 0) {
    let gpu = 0, host = 0, repGpu = 0, repHost = 0;
    for (const m of c.models) {
      const b = modelBytes(state, w, m);
      const r = residencyOf(w, m);
      if (ON_GPU.has(r)) gpu += b;
      if (HOST_ONLY.has(r) || (ON_GPU.has(r) && hasHostCopy(w, m))) host += b;
      const rep = w.state.models[m];
      if (rep) {
        if (ON_GPU.has(rep.residency)) repGpu += rep.bytes;
        if (HOST_ONLY.has(rep.residency) || (ON_GPU.has(rep.residency) && (rep.hostCopy ?? w.hostCopy.get(m) ?? true))) repHost += rep.bytes;
      }
    }
    c.gpu = gpu + Math.max(0, w.state.usage.gpu - repGpu);
    c.host = host + Math.max(0, w.state.usage.host - repHost);
  }
  return { gpu: c.gpu, host: c.host };
}

/** Weight of a model's priority in expected cost: 2^priority (clamped to 2^-8..2^8). */
export function priorityWeight(state: PolicyState, model: string): number {
  return Math.pow(2, Math.max(-8, Math.min(8, state.models.get(model)?.priority ?? 0)));
}

/**
 * Jobs BullMQ holds as `active` that no live worker runs: their worker died (SIGKILL, a lost machine). Their locks
 * expire, but only a running BullMQ Worker's stalled check puts them back in `wait` (or fails them past
 * maxStalledCount), so they are demand for a consumer exactly like waiting jobs. Counted as BullMQ's active count
 * beyond what live workers account for (`coverOf`), and only from a queue snapshot read after that last shrank
 * (`stale`: a worker that finished jobs, or left, may be reported before BullMQ's count drops, which must not read
 * as orphans).
 */
export function orphanedJobs(state: PolicyState, model: string): number {
  const q = state.queues.get(model);
  if (!q || q.active === 0 || q.stale) return 0;
  return Math.max(0, q.active - coverOf(state, model));
}

/**
 * Active jobs of a model that live workers account for: all of them (Infinity) while one consumes the model or
 * holds it on its GPU (a consumer runs the stalled check itself; a GPU holder is told to consume by rule 1 or,
 * draining, is about to exit), else the jobs they report running.
 */
export function coverOf(state: PolicyState, model: string): number {
  if ((state.replicas.get(model)?.size ?? 0) > 0) return Infinity; // the common case, without a scan
  let running = 0;
  for (const w of state.workers.values()) {
    const rep = w.state.models[model];
    if (isConsuming(w, model) || ON_GPU.has(residencyOf(w, model)) || (rep !== undefined && ON_GPU.has(rep.residency))) return Infinity;
    running += rep?.activeJobs ?? 0;
  }
  return running;
}

/**
 * A model's jobs that need a consumer: waiting ones plus orphaned active ones, as `refreshDemand` last counted
 * them (it runs on every change of the queue's counts, of a worker's entry for the model or of its replicas).
 */
export function demandOf(state: PolicyState, model: string): number {
  const q = state.queues.get(model);
  return q === undefined ? 0 : q.waiting + (q.orphaned ?? 0);
}

/** Chance (0..1) that a model gets a request within the horizon: 1 while jobs wait, else from its arrival rate. */
export function chanceSoon(state: PolicyState, model: string): number {
  const q = state.queues.get(model);
  if (!q) return 0;
  if (q.waiting > 0 || (q.orphaned ?? 0) > 0) return 1;
  return 1 - Math.exp(-q.rate * state.config.horizonMs);
}

/** Expected cost of taking a model out of a tier: its bytes x chance of a request soon x priority weight. */
export function expectedCost(state: PolicyState, model: string, bytes: number): number {
  const q = state.queues.get(model);
  if (!q) return 0;
  if (q.soon === undefined) q.soon = chanceSoon(state, model) * priorityWeight(state, model);
  return bytes * q.soon;
}

/** When a model was last used on a worker (or arrived there), for idle clocks and recency tie-breaks (ms). */
export function lastUsed(w: WorkerView, model: string): number {
  const rep = w.state.models[model];
  return Math.max(rep?.lastUsedAt ?? 0, w.touchedAt.get(model) ?? 0, rep ? 0 : w.state.startedAt);
}

const NONE: ReadonlySet<WorkerView> = new Set();

/** GPU replicas of a model across live workers (those in flight count), from the index. */
export function replicasOf(state: PolicyState, model: string): ReadonlySet<WorkerView> {
  return state.replicas.get(model) ?? NONE;
}

/** Keeps `waiting` and `unserved` (models with jobs that need a consumer: `demandOf`) in step with a model's queue, replicas and workers. */
export function refreshDemand(state: PolicyState, model: string): void {
  const q = state.queues.get(model);
  if (q) {
    // What live workers account for shrank: the snapshot read before may count jobs that finished since.
    const cover = coverOf(state, model);
    if (cover < (q.cover ?? 0)) q.stale = true;
    q.cover = cover;
    q.orphaned = orphanedJobs(state, model);
    q.soon = chanceSoon(state, model) * priorityWeight(state, model);
  }
  const waits = q !== undefined && demandOf(state, model) > 0 && state.models.has(model);
  if (waits) state.waiting.add(model);
  else state.waiting.delete(model);
  if (waits && replicasOf(state, model).size === 0) state.unserved.add(model);
  else state.unserved.delete(model);
}

/** Call after anything that changes a model's residency on a worker (report, move sent or answered). */
export function indexModel(state: PolicyState, w: WorkerView, model: string): void {
  w.version++;
  const rep = !w.draining && isReplica(residencyOf(w, model));
  if (rep === w.indexed.has(model)) return;
  let set = state.replicas.get(model);
  if (rep) {
    if (!set) state.replicas.set(model, (set = new Set()));
    set.add(w);
    w.indexed.add(model);
  } else {
    set?.delete(w);
    if (set && set.size === 0) state.replicas.delete(model);
    w.indexed.delete(model);
  }
  refreshDemand(state, model);
}

/** Call after a worker's new report or a change of its draining flag: re-indexes all its models. */
export function indexWorker(state: PolicyState, w: WorkerView): void {
  w.version++;
  for (const m of [...w.indexed]) indexModel(state, w, m);
  for (const m of modelsOn(w)) indexModel(state, w, m);
}

/** Removes a worker from the index. */
export function unindexWorker(state: PolicyState, w: WorkerView): void {
  w.version++;
  const was = [...w.indexed];
  for (const m of was) {
    const set = state.replicas.get(m);
    set?.delete(w);
    if (set && set.size === 0) state.replicas.delete(m);
  }
  w.indexed.clear();
  for (const m of was) refreshDemand(state, m);
}

export interface Victim {
  model: string;
  bytes: number;
  cost: number;
  /** Still taking jobs: send stop_consume before the move. */
  consuming: boolean;
}

/**
 * Chooses models to take out of a tier on a worker to free `need` bytes, cheapest expected cost per byte first.
 * Never a model with active jobs or a move in flight, never one whose jobs wait (unless reclaimed for `forModel`),
 * never one that would fall below its keep-warm replicas. Returns null when `need` cannot be freed.
 */
export function chooseVictims(
  state: PolicyState, w: WorkerView, tier: 'gpu' | 'host', need: number, forModel: string,
): Victim[] | null {
  if (need <= 0) return [];
  const candidates: (Victim & { density: number; used: number })[] = [];
  for (const m of settledIn(w, tier)) {
    if (m === forModel || w.moves.has(m)) continue;
    const rep = w.state.models[m];
    if (!rep || rep.activeJobs > 0) continue;
    const q = state.queues.get(m);
    // Its waiting jobs are served first (thrash control), unless it was reclaimed for this model.
    if (q && q.waiting > 0 && state.reclaims.get(pairKey(w.state.workerId, m))?.forModel !== forModel) continue;
    const keep = state.models.get(m)?.keepWarm ?? 0;
    if (tier === 'gpu' && keep > 0 && replicasOf(state, m).size <= keep) continue;
    const bytes = modelBytes(state, w, m);
    // Evicting a model with no host copy sends it back to disk: its next use is a disk load, not a swap.
    const cost = expectedCost(state, m, bytes) * (tier === 'gpu' && !hasHostCopy(w, m) ? state.config.diskCostFactor : 1);
    candidates.push({ model: m, bytes, cost, consuming: isConsuming(w, m), density: bytes > 0 ? cost / bytes : 0, used: lastUsed(w, m) });
  }
  if (state.config.victimOrder === 'lru') candidates.sort((a, b) => a.used - b.used || (a.model < b.model ? -1 : 1));
  else candidates.sort((a, b) => a.density - b.density || b.bytes - a.bytes || a.used - b.used || (a.model < b.model ? -1 : 1));
  const out: Victim[] = [];
  let freed = 0;
  for (const c of candidates) {
    if (freed >= need) break;
    out.push({ model: c.model, bytes: c.bytes, cost: c.cost, consuming: c.consuming });
    freed += c.bytes;
  }
  return freed >= need ? out : null;
}

/**
 * Placement stops searching once no remaining worker can be more than this fraction cheaper than the best found
 * (a 1,000-model x 64-worker search stays well under a millisecond; the choice is within 2% of the optimum).
 */
export const PLACEMENT_SLACK = 0.02;

export interface Placement {
  worker: WorkerView;
  /**
   * How the model reaches the GPU: `swap_in` from its host copy; `load_swap_in` = `load` then `swap_in` (a disk
   * load that parks a host copy, so a later eviction keeps it one swap away); `load_to_gpu` when host RAM has no
   * room or the worker's pinned host pool is not ready yet (no host copy: evicting it later sends it back to disk).
   */
  move: 'swap_in' | 'load_swap_in' | 'load_to_gpu';
  gpuVictims: Victim[];
  cost: number;
}

/**
 * The cheapest worker to bring `model` onto the GPU: swap in where it is parked in host RAM, else load it from
 * disk; cost = victims' expected cost + the move itself (disk bytes weigh `diskCostFactor` times host bytes).
 */
export function choosePlacement(
  state: PolicyState, model: string, now: number, exclude: ReadonlySet<WorkerView>, only?: WorkerView,
): Placement | null {
  // Candidates by their cheapest possible cost (the move alone); stop once that cannot beat the best found.
  const cands: { w: WorkerView; r: Residency; bytes: number; lb: number; short: number }[] = [];
  for (const w of only ? [only] : state.workers.values()) {
    if (w.draining || !w.state.healthy || exclude.has(w) || !mayPlace(state, model, w)) continue;
    const until = state.backoff.get(pairKey(w.state.workerId, model));
    if (until !== undefined && until > now) continue;
    const r = residencyOf(w, model);
    if (r !== 'disk' && r !== 'host') continue; // a replica already, or a move in flight
    const bytes = modelBytes(state, w, model);
    if (bytes > w.state.budgets.gpu) continue;
    const use = usageOf(state, w);
    // Bytes that victims would have to free (0: the move alone, the exact cost).
    const short = Math.max(0, use.gpu + bytes - w.state.budgets.gpu);
    // A swap moves only what a resident prefix (partial residency) does not already hold.
    const prefix = r === 'host' ? Math.min(bytes, w.state.models[model]?.gpuPrefixBytes ?? 0) : 0;
    cands.push({ w, r, bytes, short, lb: r === 'host' ? bytes - prefix : bytes * state.config.diskCostFactor });
  }
  cands.sort((a, b) => a.lb - b.lb || a.short - b.short || (a.w.state.workerId < b.w.state.workerId ? -1 : 1));
  let best: Placement | null = null;
  for (const { w, r, bytes, lb } of cands) {
    // Good enough: nothing left can be more than PLACEMENT_SLACK cheaper than the best found.
    if (best && lb * (1 + PLACEMENT_SLACK) >= best.cost) break;
    const use = usageOf(state, w);
    const gpuVictims = chooseVictims(state, w, 'gpu', use.gpu + bytes - w.state.budgets.gpu, model);
    if (!gpuVictims) continue;
    // A worker whose pinned host pool is not there yet (a fresh process pins it in the background) would make a
    // `load` wait for the pinning: stream disk -> staging -> GPU instead.
    const parkable = w.state.hostReady !== false && use.host + bytes <= w.state.budgets.host;
    const move = r === 'host' ? 'swap_in' : parkable ? 'load_swap_in' : 'load_to_gpu';
    let cost = lb;
    for (const v of gpuVictims) cost += v.cost;
    if (!best || cost < best.cost) best = { worker: w, move, gpuVictims, cost };
  }
  return best;
}
