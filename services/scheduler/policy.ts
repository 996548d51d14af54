// The scheduler's pure policy: decide(state, event, now) -> { state, actions }. No Redis, no timers, no clock.
//
// `decide` updates the state it is given in place and returns it (copying 64 worker views per event would cost
// more than the decision); it touches nothing else, so the same inputs always give the same actions.
// The rules are written out in services/scheduler/design.md.
import type { CommandBody, WorkerState } from '../../contracts/cluster.ts';
import type { ModelEntry } from '../config/config.ts';
import {
  choosePlacement, chooseVictims, demandOf, expectedCost, indexModel, indexWorker, isConsuming, isReplica, lastUsed, mayPlace, modelBytes, modelsOn,
  refreshDemand, replicasOf, residencyOf, unindexWorker,
} from './placement.ts';
import {
  POLICY_DEFAULTS, pairKey, type Action, type Decision, type ModelSettings, type PolicyConfig, type PolicyEvent, type PolicyState,
  type QueueView, type WorkerView,
} from './state.ts';

export * from './state.ts';

/** A fresh policy state (a new leader starts from one and rebuilds it from worker reports and queue counts). */
export function initialState(models: ModelSettings[], config: Partial<PolicyConfig> = {}, idPrefix = 'e0'): PolicyState {
  return {
    config: { ...POLICY_DEFAULTS, ...config },
    models: new Map(models.map((m) => [m.id, m])),
    idPrefix,
    nextId: 0,
    workers: new Map(),
    replicas: new Map(),
    queues: new Map(),
    waiting: new Set(),
    unserved: new Set(),
    pending: new Map(),
    starting: new Map(),
    reclaims: new Map(),
    startBackoffUntil: 0,
    backoff: new Map(),
  };
}

/** Policy settings for a configured model (services/config/config.ts), with the cluster defaults it lacks. */
export function modelSettings(
  m: Pick<ModelEntry, 'id' | 'sloTtftMs' | 'keepWarm' | 'gpuIdleMs' | 'hostIdleMs' | 'priority'>,
  extra: { bytes?: number; maxReplicas?: number; concurrency?: number; groups?: readonly string[] } = {},
): ModelSettings {
  return {
    ...(extra.groups !== undefined ? { groups: extra.groups } : {}),
    id: m.id,
    bytes: extra.bytes ?? 0,
    sloMs: m.sloTtftMs,
    keepWarm: m.keepWarm ? 1 : 0,
    maxReplicas: extra.maxReplicas ?? 64,
    concurrency: extra.concurrency ?? 4,
    gpuIdleMs: m.gpuIdleMs,
    hostIdleMs: m.hostIdleMs,
    priority: m.priority,
  };
}

/** Takes one event at time `now` (ms) and returns the actions it calls for. */
export function decide(state: PolicyState, event: PolicyEvent, now: number): Decision {
  const out: Action[] = [];
  switch (event.type) {
    case 'worker-state': {
      const changed = onWorkerState(state, event.state, now);
      if (!changed) break;
      // Only what this report changed: the models whose entry changed here, then the room it may have freed.
      for (const m of changed.models) if (state.models.has(m)) serve(state, m, now, out, changed.w);
      serveWaiting(state, now, out, changed.w);
      break;
    }
    case 'worker-gone': {
      forgetWorker(state, event.workerId);
      serveWaiting(state, now, out);
      break;
    }
    case 'queue': {
      onQueue(state, event, now);
      serve(state, event.model, now, out);
      break;
    }
    case 'result': {
      const p = state.pending.get(event.result.commandId);
      if (p) {
        state.pending.delete(p.id);
        const w = state.workers.get(p.workerId);
        if (w && p.model !== null) {
          const move = w.moves.get(p.model);
          const consume = w.consume.get(p.model);
          if (event.result.ok) {
            if (move?.id === p.id) move.doneAt = event.result.finishedAt;
            if (consume?.id === p.id) consume.doneAt = event.result.finishedAt;
            settle(w, p.model, w.state.models[p.model], w.state.heartbeatAt);
          } else {
            // A failed load also dooms the swap_in queued behind it: forget that overlay now.
            if (move?.id === p.id || (p.kind === 'load' && move?.kind === 'swap_in')) w.moves.delete(p.model);
            if (consume?.id === p.id) w.consume.delete(p.model);
          }
          indexModel(state, w, p.model);
        }
        if (!event.result.ok && p.model !== null) state.backoff.set(pairKey(p.workerId, p.model), now + state.config.failureBackoffMs);
        if (p.model !== null && state.models.has(p.model)) serve(state, p.model, now, out);
      }
      break;
    }
    case 'worker-start-failed': {
      state.starting.delete(event.workerId);
      state.startBackoffUntil = now + state.config.failureBackoffMs;
      break;
    }
    case 'tick': {
      expire(state, now, out);
      serveWaiting(state, now, out);
      for (const s of state.models.values()) if (s.keepWarm > 0 && replicasOf(state, s.id).size < s.keepWarm) serve(state, s.id, now, out);
      demoteIdle(state, now, out);
      stopIdleWorkers(state, now, out);
      break;
    }
  }
  return { state, actions: out };
}

/** Takes a worker's report; returns its view and the models whose entry changed (null for a stale report). */
function onWorkerState(state: PolicyState, s: WorkerState, now: number): { w: WorkerView; models: string[] } | null {
  let w = state.workers.get(s.workerId);
  const changed: string[] = [];
  if (w && s.seq < w.state.seq && s.startedAt === w.state.startedAt) return null; // an older report arriving late
  if (w && s.startedAt !== w.state.startedAt) {
    // The same id, restarted: it never saw the commands sent to its previous process.
    forgetWorker(state, s.workerId);
    w = undefined;
  }
  if (!w) {
    w = { state: s, moves: new Map(), consume: new Map(), touchedAt: new Map(), draining: s.draining, indexed: new Set(), hostCopy: new Map(),
      version: 0, cache: { version: -1, models: [], gpu: -1, host: -1, onGpu: null, hostOnly: null } };
    state.workers.set(s.workerId, w);
    state.starting.delete(s.workerId);
    for (const m of Object.keys(s.models)) {
      w.touchedAt.set(m, now);
      changed.push(m);
    }
  } else {
    const before = w.state.models;
    for (const [m, rep] of Object.entries(s.models)) {
      const old = before[m];
      if (old?.residency !== rep.residency) w.touchedAt.set(m, now);
      if (!old || old.residency !== rep.residency || old.consuming !== rep.consuming || old.activeJobs !== rep.activeJobs) changed.push(m);
    }
    for (const m of Object.keys(before)) if (!(m in s.models)) changed.push(m);
    w.state = s;
    w.draining = w.draining || s.draining;
    for (const m of [...w.moves.keys(), ...w.consume.keys()]) settle(w, m, s.models[m], s.heartbeatAt);
  }
  for (const [m, rep] of Object.entries(s.models)) {
    if (rep.residency === 'host' || rep.residency === 'loading') w.hostCopy.set(m, true);
    else if (rep.residency === 'disk') w.hostCopy.delete(m);
  }
  indexWorker(state, w);
  // A model's orphaned active jobs depend on what workers consume, hold and run (placement.ts `orphanedJobs`).
  for (const m of changed) refreshDemand(state, m);
  if (s.draining || !s.healthy) {
    for (const key of state.reclaims.keys()) if (key.startsWith(`${s.workerId}\n`)) state.reclaims.delete(key);
  }
  return { w, models: changed };
}

const MOVE_TARGET = { load: 'host', swap_in: 'gpu', load_to_gpu: 'gpu', evict: 'host', drop: 'disk' } as const;

/**
 * Drops the overlay of answered commands once the worker's report shows their effect, or was written after
 * they finished (then the report is the truth, whatever it says).
 */
function settle(w: WorkerView, model: string, rep: WorkerState['models'][string] | undefined, reportAt: number): void {
  const move = w.moves.get(model);
  if (move?.doneAt !== undefined && move.kind in MOVE_TARGET) {
    const target = MOVE_TARGET[move.kind as keyof typeof MOVE_TARGET];
    if ((rep?.residency ?? 'disk') === target || reportAt > move.doneAt) w.moves.delete(model);
  }
  const consume = w.consume.get(model);
  if (consume?.doneAt !== undefined && ((rep?.consuming ?? false) === consume.want || reportAt > consume.doneAt)) w.consume.delete(model);
}

function forgetWorker(state: PolicyState, workerId: string): void {
  const w = state.workers.get(workerId);
  if (w) unindexWorker(state, w);
  state.workers.delete(workerId);
  // Jobs it was running are orphaned now (BullMQ still holds them as active): demand for a new consumer.
  if (w) for (const m of modelsOn(w)) refreshDemand(state, m);
  for (const [id, p] of state.pending) if (p.workerId === workerId) state.pending.delete(id);
  for (const key of state.reclaims.keys()) if (key.startsWith(`${workerId}\n`)) state.reclaims.delete(key);
}

function onQueue(state: PolicyState, e: Extract<PolicyEvent, { type: 'queue' }>, now: number): void {
  const q: QueueView | undefined = state.queues.get(e.model);
  if (!q) {
    state.queues.set(e.model, { waiting: e.waiting, active: e.active, oldestWaitingAt: e.oldestWaitingAt, added: e.added, rate: 0, seenAt: now });
    refreshDemand(state, e.model);
    return;
  }
  // Exponentially decayed arrival rate (jobs/ms): new arrivals over the interval, blended by the half-life.
  const dt = Math.max(1, now - q.seenAt);
  const arrivals = Math.max(0, e.added - q.added);
  const keep = Math.pow(0.5, dt / state.config.rateHalfLifeMs);
  q.rate = q.rate * keep + (arrivals / dt) * (1 - keep);
  q.waiting = e.waiting;
  q.active = e.active;
  q.oldestWaitingAt = e.oldestWaitingAt;
  q.added = Math.max(q.added, e.added);
  q.seenAt = now;
  q.stale = false; // read after anything the policy has seen
  refreshDemand(state, e.model);
}

function send(state: PolicyState, w: WorkerView, command: CommandBody, now: number, out: Action[], overlay = true): void {
  const id = `${state.idPrefix}-${++state.nextId}`;
  const model = 'model' in command ? command.model : null;
  const p = { id, workerId: w.state.workerId, kind: command.kind, model, issuedAt: now };
  state.pending.set(id, p);
  if (model !== null) {
    if (command.kind === 'consume' || command.kind === 'stop_consume') w.consume.set(model, { id, want: command.kind === 'consume' });
    else if (overlay) {
      if (command.kind === 'load_to_gpu') w.hostCopy.set(model, false);
      else if (command.kind === 'swap_in' || command.kind === 'load') w.hostCopy.set(model, true);
      w.moves.set(model, p);
      indexModel(state, w, model);
    }
  }
  if (command.kind === 'drain' || command.kind === 'shutdown') {
    w.draining = true;
    indexWorker(state, w);
  }
  out.push({ type: 'send', workerId: w.state.workerId, id, command });
}

/** Most placements tried per event beyond the event's own model, so one event's decision time stays bounded. */
export const MAX_PLACEMENTS_PER_EVENT = 16;

/** Whether a model wants another GPU replica: jobs wait and none serves, below keep-warm, or past its SLO. */
function wantsReplica(state: PolicyState, s: ModelSettings, q: QueueView | undefined, now: number): boolean {
  const replicas = replicasOf(state, s.id);
  const waiting = q === undefined ? 0 : demandOf(state, s.id); // waiting + orphaned active jobs
  if (replicas.size === 0) return waiting > 0 || s.keepWarm > 0;
  if (replicas.size < s.keepWarm) return true;
  if (waiting === 0 || q?.oldestWaitingAt == null || now - q.oldestWaitingAt <= s.sloMs || replicas.size >= s.maxReplicas) return false;
  for (const w of replicas) if (residencyOf(w, s.id) === 'swapping-in') return false; // one scale-out at a time
  return true;
}

/**
 * Tries to place the models that want a replica, oldest waiting first, at most MAX_PLACEMENTS_PER_EVENT of them
 * (the rest wait for the next event or tick). With `only`, only that worker is considered (its report changed).
 */
function serveWaiting(state: PolicyState, now: number, out: Action[], only?: WorkerView): void {
  const wanting: { model: string; since: number }[] = [];
  for (const m of only ? state.unserved : state.waiting) {
    const s = state.models.get(m);
    const q = state.queues.get(m);
    if (s && q && wantsReplica(state, s, q, now)) wanting.push({ model: m, since: q.oldestWaitingAt ?? now });
  }
  wanting.sort((a, b) => a.since - b.since || (a.model < b.model ? -1 : 1));
  for (const { model } of wanting.slice(0, MAX_PLACEMENTS_PER_EVENT)) serve(state, model, now, out, only);
}

/**
 * Makes sure a model's waiting jobs have somewhere to run, and enough replicas for its SLO. With `only`, places
 * on that worker or not at all (no worker start, no reclaim: those wait for the model's own events and ticks).
 */
function serve(state: PolicyState, model: string, now: number, out: Action[], only?: WorkerView): void {
  const s = state.models.get(model);
  if (!s) return;
  const q = state.queues.get(model);
  const waiting = demandOf(state, model); // waiting + orphaned active jobs (their worker died)
  const replicas = replicasOf(state, model);
  for (const w of replicas) {
    if (!isConsuming(w, model) && !reclaimed(state, w, model)) {
      send(state, w, { kind: 'consume', model, concurrency: s.concurrency }, now, out);
    }
  }
  if (!wantsReplica(state, s, q, now)) return;
  const placement = choosePlacement(state, model, now, replicas, only);
  if (placement) {
    const w = placement.worker;
    for (const v of placement.gpuVictims) {
      if (v.consuming) send(state, w, { kind: 'stop_consume', model: v.model }, now, out);
      send(state, w, { kind: 'evict', model: v.model }, now, out);
      state.reclaims.delete(pairKey(w.state.workerId, v.model));
    }
    if (placement.move === 'load_swap_in') {
      // Two moves, one overlay: the model counts as swapping-in from the first (the worker runs them in order).
      send(state, w, { kind: 'load', model }, now, out, false);
      send(state, w, { kind: 'swap_in', model }, now, out);
    } else {
      send(state, w, { kind: placement.move, model }, now, out);
    }
    send(state, w, { kind: 'consume', model, concurrency: s.concurrency }, now, out);
    return;
  }
  if (waiting === 0 || only) return;
  // No worker has room: start one if allowed (scale from zero, or out), else reclaim a busy GPU past the bound.
  let startingForThis = false;
  for (const st of state.starting.values()) if (st.model === model) startingForThis = true;
  if (!startingForThis && now >= state.startBackoffUntil && state.workers.size + state.starting.size < state.config.maxWorkers) {
    const group = groupWithRoom(state, s);
    if (group !== null) {
      const workerId = `w-${state.idPrefix}-${++state.nextId}`;
      state.starting.set(workerId, group === undefined ? { requestedAt: now, model } : { requestedAt: now, model, group });
      out.push(group === undefined ? { type: 'start-worker', workerId, model } : { type: 'start-worker', workerId, model, group });
      return;
    }
  }
  // Past the bound, a starting worker (which may take long, or fail) does not stop the reclaim.
  if (replicas.size === 0 && q?.oldestWaitingAt != null && now - q.oldestWaitingAt >= state.config.starvationMs) {
    reclaimFor(state, model, now, out);
  }
}

/**
 * The worker group a new worker for the model would join: undefined when the model has no groups (a worker of no
 * group), else the first of its groups below its worker cap (live + starting), else null (no start).
 */
function groupWithRoom(state: PolicyState, s: ModelSettings): string | undefined | null {
  if (s.groups === undefined) return undefined;
  for (const g of s.groups) {
    const cap = state.config.groupMaxWorkers[g];
    if (cap === undefined) return g;
    let n = 0;
    for (const w of state.workers.values()) if (w.state.group === g) n++;
    for (const st of state.starting.values()) if (st.group === g) n++;
    if (n < cap) return g;
  }
  return null;
}

/** Whether a replica was told to stop consuming for a model that still has no replica (else the reclaim is over). */
function reclaimed(state: PolicyState, w: WorkerView, model: string): boolean {
  const key = pairKey(w.state.workerId, model);
  const r = state.reclaims.get(key);
  if (!r) return false;
  if (state.unserved.has(r.forModel)) return true;
  state.reclaims.delete(key);
  return false;
}

/**
 * Starvation bound: a model that has waited `starvationMs` for GPU room takes it from a busy model. The busy
 * replica is told to stop consuming; once its active jobs finish it becomes a victim (never before).
 */
function reclaimFor(state: PolicyState, model: string, now: number, out: Action[]): void {
  for (const r of state.reclaims.values()) if (r.forModel === model) return; // one at a time
  const need = modelBytes(state, null, model);
  let best: { w: WorkerView; victim: string; cost: number } | null = null;
  for (const w of state.workers.values()) {
    if (w.draining || !w.state.healthy || need > w.state.budgets.gpu || !mayPlace(state, model, w)) continue;
    const r = residencyOf(w, model);
    if (r !== 'disk' && r !== 'host') continue;
    for (const m of modelsOn(w)) {
      if (m === model || w.moves.has(m) || residencyOf(w, m) !== 'gpu' || !isConsuming(w, m)) continue;
      const bytes = modelBytes(state, w, m);
      const keep = state.models.get(m)?.keepWarm ?? 0;
      if (replicasOf(state, m).size <= keep) continue;
      // Only worth it if freeing this model (plus idle ones) makes room.
      const others = chooseVictims(state, w, 'gpu', need - bytes - freeGpu(state, w), model);
      if (!others) continue;
      const cost = expectedCost(state, m, bytes);
      if (!best || cost < best.cost) best = { w, victim: m, cost };
    }
  }
  if (!best) return;
  state.reclaims.set(pairKey(best.w.state.workerId, best.victim), { forModel: model, since: now });
  send(state, best.w, { kind: 'stop_consume', model: best.victim }, now, out);
}

function freeGpu(state: PolicyState, w: WorkerView): number {
  let used = 0;
  for (const m of modelsOn(w)) if (isReplica(residencyOf(w, m)) || residencyOf(w, m) === 'evicting') used += modelBytes(state, w, m);
  return Math.max(0, w.state.budgets.gpu - used);
}

/** Forgets commands, worker starts and reclaims that outlived their time. */
function expire(state: PolicyState, now: number, out: Action[]): void {
  for (const [id, p] of state.pending) {
    if (now - p.issuedAt < state.config.commandTimeoutMs) continue;
    state.pending.delete(id);
    const w = state.workers.get(p.workerId);
    if (w && p.model !== null) {
      if (w.moves.get(p.model)?.id === id) w.moves.delete(p.model);
      if (w.consume.get(p.model)?.id === id) w.consume.delete(p.model);
      indexModel(state, w, p.model);
      state.backoff.set(pairKey(p.workerId, p.model), now + state.config.failureBackoffMs);
    }
  }
  for (const [id, st] of state.starting) {
    if (now - st.requestedAt < state.config.workerStartTimeoutMs) continue;
    state.starting.delete(id);
    state.startBackoffUntil = now + state.config.failureBackoffMs;
    out.push({ type: 'stop-worker', workerId: id, reason: 'did not report within workerStartTimeoutMs' });
  }
  for (const [key, until] of state.backoff) if (until <= now) state.backoff.delete(key);
  for (const [key, r] of state.reclaims) {
    const q = state.queues.get(r.forModel);
    const [workerId, victim] = key.split('\n');
    const w = state.workers.get(workerId);
    if (!q || q.waiting === 0 || !w || residencyOf(w, victim) !== 'gpu' || !state.unserved.has(r.forModel)) state.reclaims.delete(key);
  }
}

/** GPU -> host after gpuIdleMs, host -> disk after hostIdleMs, keeping keep-warm replicas. */
function demoteIdle(state: PolicyState, now: number, out: Action[]): void {
  for (const w of state.workers.values()) {
    if (!w.state.healthy) continue;
    for (const m of modelsOn(w)) {
      const s = state.models.get(m);
      const rep = w.state.models[m];
      if (!s || !rep || w.moves.has(m) || rep.activeJobs > 0) continue;
      if ((state.queues.get(m)?.waiting ?? 0) > 0) continue;
      const idle = now - lastUsed(w, m);
      const r = residencyOf(w, m);
      if (r === 'gpu' && idle >= s.gpuIdleMs && replicasOf(state, m).size > s.keepWarm) {
        if (isConsuming(w, m)) send(state, w, { kind: 'stop_consume', model: m }, now, out);
        send(state, w, { kind: 'evict', model: m }, now, out);
      } else if (r === 'host' && idle >= s.hostIdleMs) {
        send(state, w, { kind: 'drop', model: m }, now, out);
      }
    }
  }
}

/** Scale to zero: drain a worker with nothing active or in flight for workerIdleMs, above minWorkers. */
function stopIdleWorkers(state: PolicyState, now: number, out: Action[]): void {
  let live = 0;
  for (const w of state.workers.values()) if (!w.draining) live++;
  for (const w of state.workers.values()) {
    if (live <= state.config.minWorkers) return;
    if (w.draining || w.moves.size > 0) continue;
    let idleSince = w.state.startedAt;
    let busy = false;
    for (const m of modelsOn(w)) {
      const rep = w.state.models[m];
      const s = state.models.get(m);
      if (rep && rep.activeJobs > 0) busy = true;
      if ((state.queues.get(m)?.waiting ?? 0) > 0 && isReplica(residencyOf(w, m))) busy = true;
      if (s && s.keepWarm > 0 && isReplica(residencyOf(w, m)) && replicasOf(state, m).size <= s.keepWarm) busy = true;
      idleSince = Math.max(idleSince, lastUsed(w, m));
    }
    if (busy || now - idleSince < state.config.workerIdleMs) continue;
    send(state, w, { kind: 'drain' }, now, out);
    live--;
  }
}
