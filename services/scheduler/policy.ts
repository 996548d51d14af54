// The scheduler's pure policy: decide(state, event, now) -> { state, actions }. No Redis, no timers, no clock.
//
// `decide` updates the state it is given in place and returns it (copying 64 worker views per event would cost
// more than the decision); it touches nothing else, so the same inputs always give the same actions.
// The rules are written out in services/scheduler/design.md.
import type { CommandBody, WorkerState } from '../shared/cluster.ts';
import type { ModelEntry } from '../shared/config.ts';
import {
  choosePlacement, chooseVictims, expectedCost, isConsuming, isReplica, lastUsed, modelBytes, modelsOn, replicasOf, residencyOf,
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
    queues: new Map(),
    pending: new Map(),
    starting: new Map(),
    reclaims: new Map(),
    backoff: new Map(),
  };
}

/** Policy settings for a configured model (services/shared/config.ts), with the cluster defaults it lacks. */
export function modelSettings(
  m: Pick<ModelEntry, 'id' | 'sloTtftMs' | 'keepWarm' | 'gpuIdleMs' | 'hostIdleMs' | 'priority'>,
  extra: { bytes?: number; maxReplicas?: number; concurrency?: number } = {},
): ModelSettings {
  return {
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
      onWorkerState(state, event.state, now, out);
      for (const m of Object.keys(event.state.models)) if (state.models.has(m)) serve(state, m, now, out);
      serveWaiting(state, now, out); // new room or a new worker may unblock any waiting model
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
          if (w.moves.get(p.model)?.id === p.id) w.moves.delete(p.model);
          if (w.consume.get(p.model)?.id === p.id) w.consume.delete(p.model);
        }
        if (!event.result.ok && p.model !== null) state.backoff.set(pairKey(p.workerId, p.model), now + state.config.failureBackoffMs);
        if (p.model !== null && state.models.has(p.model)) serve(state, p.model, now, out);
      }
      break;
    }
    case 'worker-start-failed': {
      state.starting.delete(event.workerId);
      break;
    }
    case 'tick': {
      expire(state, now, out);
      serveWaiting(state, now, out);
      for (const s of state.models.values()) if (s.keepWarm > 0) serve(state, s.id, now, out);
      demoteIdle(state, now, out);
      stopIdleWorkers(state, now, out);
      break;
    }
  }
  return { state, actions: out };
}

function onWorkerState(state: PolicyState, s: WorkerState, now: number, out: Action[]): void {
  let w = state.workers.get(s.workerId);
  if (w && s.seq < w.state.seq && s.startedAt === w.state.startedAt) return; // an older report arriving late
  if (!w) {
    w = { state: s, moves: new Map(), consume: new Map(), touchedAt: new Map(), draining: s.draining };
    state.workers.set(s.workerId, w);
    state.starting.delete(s.workerId);
    for (const m of Object.keys(s.models)) w.touchedAt.set(m, now);
  } else {
    for (const [m, rep] of Object.entries(s.models)) if (w.state.models[m]?.residency !== rep.residency) w.touchedAt.set(m, now);
    w.state = s;
    w.draining = w.draining || s.draining;
  }
  if (s.draining || !s.healthy) {
    for (const key of state.reclaims.keys()) if (key.startsWith(`${s.workerId}\n`)) state.reclaims.delete(key);
  }
  void out;
}

function forgetWorker(state: PolicyState, workerId: string): void {
  state.workers.delete(workerId);
  for (const [id, p] of state.pending) if (p.workerId === workerId) state.pending.delete(id);
  for (const key of state.reclaims.keys()) if (key.startsWith(`${workerId}\n`)) state.reclaims.delete(key);
}

function onQueue(state: PolicyState, e: Extract<PolicyEvent, { type: 'queue' }>, now: number): void {
  const q: QueueView | undefined = state.queues.get(e.model);
  if (!q) {
    state.queues.set(e.model, { waiting: e.waiting, active: e.active, oldestWaitingAt: e.oldestWaitingAt, added: e.added, rate: 0, seenAt: now });
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
}

function send(state: PolicyState, w: WorkerView, command: CommandBody, now: number, out: Action[]): void {
  const id = `${state.idPrefix}-${++state.nextId}`;
  const model = 'model' in command ? command.model : null;
  const p = { id, workerId: w.state.workerId, kind: command.kind, model, issuedAt: now };
  state.pending.set(id, p);
  if (model !== null) {
    if (command.kind === 'consume' || command.kind === 'stop_consume') w.consume.set(model, { id, want: command.kind === 'consume' });
    else w.moves.set(model, p);
  }
  if (command.kind === 'drain' || command.kind === 'shutdown') w.draining = true;
  out.push({ type: 'send', workerId: w.state.workerId, id, command });
}

function serveWaiting(state: PolicyState, now: number, out: Action[]): void {
  for (const [m, q] of state.queues) if (q.waiting > 0 && state.models.has(m)) serve(state, m, now, out);
}

/** Makes sure a model's waiting jobs have somewhere to run, and enough replicas for its SLO. */
function serve(state: PolicyState, model: string, now: number, out: Action[]): void {
  const s = state.models.get(model);
  if (!s) return;
  const q = state.queues.get(model);
  const waiting = q?.waiting ?? 0;
  const replicas = replicasOf(state, model);
  for (const w of replicas) {
    if (!isConsuming(w, model) && !state.reclaims.has(pairKey(w.state.workerId, model))) {
      send(state, w, { kind: 'consume', model, concurrency: s.concurrency }, now, out);
    }
  }
  const inFlight = replicas.some((w) => residencyOf(w, model) === 'swapping-in');
  const overSlo = waiting > 0 && q?.oldestWaitingAt != null && now - q.oldestWaitingAt > s.sloMs;
  const want =
    (replicas.length === 0 && waiting > 0) ||
    replicas.length < s.keepWarm ||
    (overSlo && !inFlight && replicas.length < s.maxReplicas);
  if (!want) return;
  const placement = choosePlacement(state, model, now, new Set(replicas));
  if (placement) {
    const w = placement.worker;
    for (const v of placement.gpuVictims) {
      if (v.consuming) send(state, w, { kind: 'stop_consume', model: v.model }, now, out);
      send(state, w, { kind: 'evict', model: v.model }, now, out);
      state.reclaims.delete(pairKey(w.state.workerId, v.model));
    }
    for (const v of placement.hostVictims) send(state, w, { kind: 'drop', model: v.model }, now, out);
    send(state, w, { kind: placement.move, model }, now, out);
    send(state, w, { kind: 'consume', model, concurrency: s.concurrency }, now, out);
    return;
  }
  if (waiting === 0) return;
  // No worker has room: start one if allowed (scale from zero, or out), else reclaim a busy GPU past the bound.
  const forThis = [...state.starting.values()].some((st) => st.model === model);
  if (!forThis && state.workers.size + state.starting.size < state.config.maxWorkers) {
    const workerId = `w-${state.idPrefix}-${++state.nextId}`;
    state.starting.set(workerId, { requestedAt: now, model });
    out.push({ type: 'start-worker', workerId, model });
    return;
  }
  if (replicas.length === 0 && q?.oldestWaitingAt != null && now - q.oldestWaitingAt >= state.config.starvationMs) {
    reclaimFor(state, model, now, out);
  }
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
    if (w.draining || !w.state.healthy || need > w.state.budgets.gpu) continue;
    const r = residencyOf(w, model);
    if (r !== 'disk' && r !== 'host') continue;
    for (const m of modelsOn(w)) {
      if (m === model || w.moves.has(m) || residencyOf(w, m) !== 'gpu' || !isConsuming(w, m)) continue;
      const bytes = modelBytes(state, w, m);
      const keep = state.models.get(m)?.keepWarm ?? 0;
      if (replicasOf(state, m).length <= keep) continue;
      // Only worth it if freeing this model (plus idle ones) makes room.
      const others = chooseVictims(state, w, 'gpu', need - bytes - freeGpu(state, w), model, (x) => replicasOf(state, x).length);
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
      state.backoff.set(pairKey(p.workerId, p.model), now + state.config.failureBackoffMs);
    }
  }
  for (const [id, st] of state.starting) {
    if (now - st.requestedAt < state.config.workerStartTimeoutMs) continue;
    state.starting.delete(id);
    out.push({ type: 'stop-worker', workerId: id, reason: 'did not report within workerStartTimeoutMs' });
  }
  for (const [key, until] of state.backoff) if (until <= now) state.backoff.delete(key);
  for (const [key, r] of state.reclaims) {
    const q = state.queues.get(r.forModel);
    const [workerId, victim] = key.split('\n');
    const w = state.workers.get(workerId);
    if (!q || q.waiting === 0 || !w || residencyOf(w, victim) !== 'gpu') state.reclaims.delete(key);
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
      if (r === 'gpu' && idle >= s.gpuIdleMs && replicasOf(state, m).length > s.keepWarm) {
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
      if (s && s.keepWarm > 0 && isReplica(residencyOf(w, m)) && replicasOf(state, m).length <= s.keepWarm) busy = true;
      idleSince = Math.max(idleSince, lastUsed(w, m));
    }
    if (busy || now - idleSince < state.config.workerIdleMs) continue;
    send(state, w, { kind: 'drain' }, now, out);
    live--;
  }
}
