// The worker's tier state: one move at a time through the native runtime, LRU room-making, GPU arrival history.
import { nowMs } from '../../contracts/clock.ts';
import { SwapserveError, type CommandErrorCode } from '../../contracts/errors.ts';
import type { ModelEntry } from '../config/config.ts';
import type { MoveKind, Residency } from '../../contracts/vocab.ts';
import type { ModelBackend, MoveOutcome } from './backend.ts';
import type { GpuArrival, MoveSpan } from './residency.ts';
import { tracedMove } from '../telemetry/traces.ts';
import { choosePrefixGroups, observeArrival, PREFIX_DEFAULTS, prefixesToReclaim, requestProbability, type ArrivalRate, type PrefixOptions } from './partial-residency.ts';

/** `invalid`: the model's files were rejected at registration (every job and move of it fails with this). */
export class TierError extends SwapserveError<Extract<CommandErrorCode, 'in_use' | 'out_of_memory' | 'not_found' | 'io' | 'invalid' | 'internal'>> {
  override name = 'TierError';
}

interface Slot {
  entry: ModelEntry;
  bytes: number;
  registered: Promise<void>;
  activeJobs: number;
  lastUsedAt: number | null;
  /** Set while the model is on the GPU tier: when and how it got there. */
  arrival: GpuArrival | null;
  /** The move under way, as a transitional residency. */
  moving: Residency | null;
  /** The latest disk read of the weights (load or load_to_gpu); requests that arrived before its end waited for it. */
  lastLoad: MoveSpan | null;
  /** A move towards the GPU (swap_in, load_to_gpu) under way: resolves when its weights have all landed. */
  toGpu: Promise<GpuReady> | null;
  /** Decayed count of its job arrivals (partial residency: the chance of a request soon). */
  rate: ArrivalRate | null;
}

/** A model usable on the GPU: since when, and how it got there. */
export interface GpuReady {
  readyMs: number;
  arrival: GpuArrival;
}

export type Progress = (stage: 'loading' | 'swapping', doneBytes: number, totalBytes: number) => void;

export class TierManager {
  private readonly slots = new Map<string, Slot>();
  /** Moves run one at a time: budgets are checked and changed by one actor. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly backend: ModelBackend,
    private readonly onChange: () => void,
    /** Where a rejected registration is logged (the worker's logger); a line on stderr without one. */
    private readonly logRejected: (model: string, reason: string) => void = (model, reason) => {
      process.stderr.write(`swapserve worker: model ${model} rejected: ${reason}\n`);
    },
    /**
     * Partial residency (services/worker/partial-residency.ts): evicted models keep a prefix of their layer groups
     * on the GPU out of free memory, where the backend supports it; null: off. @defaultValue null
     */
    private readonly partial: Partial<PrefixOptions> | null = null,
  ) {}

  add(entry: ModelEntry): void {
    if (this.slots.has(entry.id)) return;
    const slot: Slot = { entry, bytes: 0, registered: Promise.resolve(), activeJobs: 0, lastUsedAt: null, arrival: null, moving: null, lastLoad: null, toGpu: null, rate: null };
    slot.registered = this.backend.register(entry).then((r) => {
      slot.bytes = r.bytes;
    }, (e: unknown) => {
      // A rejected file fails this model only (its jobs end with model_load_failed); said once, here.
      const reason = e instanceof Error ? e.message : String(e);
      this.logRejected(entry.id, reason.split('\n')[0]);
      throw new TierError('invalid', `model ${entry.id} could not be opened: ${reason}`);
    });
    slot.registered.catch(() => {});
    this.slots.set(entry.id, slot);
  }

  has(id: string): boolean {
    return this.slots.has(id);
  }

  ids(): string[] {
    return [...this.slots.keys()];
  }

  residency(id: string): Residency {
    const s = this.slots.get(id);
    if (!s) return 'disk';
    return s.moving ?? this.backend.residency(id);
  }

  info(id: string): { bytes: number; activeJobs: number; lastUsedAt: number | null } {
    const s = this.slot(id);
    return { bytes: s.bytes, activeJobs: s.activeJobs, lastUsedAt: s.lastUsedAt };
  }

  /** Marks a job started/finished on a model (a model with active jobs is never moved off the GPU). */
  use(id: string, delta: 1 | -1, nowMs: number): void {
    const s = this.slot(id);
    s.activeJobs += delta;
    s.lastUsedAt = nowMs;
    if (delta === 1) s.rate = observeArrival(s.rate, nowMs, this.prefixOptions());
    this.onChange();
  }

  /** How the model got onto the GPU (null if it is not there). */
  arrival(id: string): GpuArrival | null {
    return this.slot(id).arrival;
  }

  /**
   * Makes the model GPU-resident (disk -> host -> GPU as needed), making room by evicting idle models LRU-first.
   * Resolves with when it was ready; callers classify their path from the arrival history.
   */
  async ensureOnGpu(id: string, progress?: Progress): Promise<GpuReady> {
    return (await this.startOnGpu(id, progress)).ready;
  }

  /**
   * Execute-while-loading: resolves as soon as the model is on the GPU **or a move to the GPU is under way** (its
   * arena exists, so an engine can be created and prefill waits per layer); `ready` resolves when every group has
   * landed (reject: the move failed). Makes the model resident (disk -> host -> GPU as needed, evicting idle models
   * LRU-first) when nothing is moving it there.
   */
  async startOnGpu(id: string, progress?: Progress): Promise<{ ready: Promise<GpuReady> }> {
    const s = this.slot(id);
    await s.registered;
    if (s.toGpu) return { ready: s.toGpu };
    if (s.arrival && this.backend.residency(id) === 'gpu') return { ready: Promise.resolve({ readyMs: nowMs(), arrival: s.arrival }) };
    let started!: (r: { ready: Promise<GpuReady> }) => void;
    const startedP = new Promise<{ ready: Promise<GpuReady> }>((r) => { started = r; });
    const all = this.serial(async () => {
      if (s.arrival && this.backend.residency(id) === 'gpu') return { readyMs: nowMs(), arrival: s.arrival };
      if (s.toGpu) return s.toGpu; // cannot happen inside the chain (moves are serial); kept for safety
      if (this.backend.residency(id) === 'disk') {
        await this.makeRoom('host', s);
        s.lastLoad = await this.timed(s, 'load', 'loading', progress);
      }
      await this.makeRoom('gpu', s);
      const ready = this.towardsGpu(s, 'swap_in', progress);
      started({ ready });
      return ready;
    });
    all.catch(() => {});
    // Settled without starting a move (already there, or failed before): the outcome is the whole answer.
    all.then((r) => started({ ready: Promise.resolve(r) }), (e: unknown) => {
      const ready = Promise.reject(e);
      ready.catch(() => {});
      started({ ready });
    });
    return startedP;
  }

  /**
   * Issues a move towards the GPU and records it as under way (`toGpu`) until it ends; the returned promise resolves
   * once the weights have all landed, with the arrival recorded.
   */
  private towardsGpu(s: Slot, kind: 'swap_in' | 'load_to_gpu', progress?: Progress): Promise<GpuReady> {
    const startMs = nowMs();
    s.moving = 'swapping-in';
    this.onChange();
    const stage = kind === 'swap_in' ? 'swapping' : 'loading';
    // The backend issues the move synchronously (residency is swapping-in from here): an engine may lease it now.
    const move = tracedMove(kind, s.entry.id, () => this.moveReclaiming(s, kind, progress ? (d, t) => progress(stage, d, t) : undefined));
    const ready = move.then(() => {
      const span = { startMs, endMs: nowMs() };
      if (kind === 'swap_in') {
        s.arrival = { atMs: span.endMs, load: s.lastLoad, swap: span };
      } else {
        s.lastLoad = span;
        s.arrival = { atMs: span.endMs, load: span, swap: null };
      }
      return { readyMs: span.endMs, arrival: s.arrival };
    }).finally(() => {
      s.moving = null;
      s.toGpu = null;
      this.onChange();
    });
    ready.catch(() => {});
    s.toGpu = ready;
    return ready;
  }

  /**
   * Executes a scheduler command's move. `onStarted` is called once the move has been issued (or has ended without
   * one): a move towards the GPU is then under way, and a job of the model may start (execute-while-loading).
   */
  async command(kind: MoveKind, id: string, onStarted?: () => void): Promise<MoveOutcome> {
    const s = this.slot(id);
    await s.registered;
    return this.serial(async () => {
      // Idempotent: a move whose target state already holds (e.g. the worker made the model resident itself for
      // a job meanwhile) succeeds without moving anything, so the scheduler does not back off for nothing.
      const r0 = this.backend.residency(id);
      const done = kind === 'load' ? r0 === 'host' || r0 === 'gpu'
        : kind === 'swap_in' || kind === 'load_to_gpu' ? r0 === 'gpu'
          : kind === 'evict' ? r0 !== 'gpu'
            : r0 === 'disk';
      if (done) return { bytes: 0, wallMs: 0 };
      if ((kind === 'evict' || kind === 'drop') && s.activeJobs > 0) throw new TierError('in_use', `model ${id} has ${s.activeJobs} active jobs`);
      if (kind === 'swap_in' || kind === 'load_to_gpu') {
        const t0 = nowMs();
        // The scheduler counts parked models' prefixes as free room: they go back now if this move needs it.
        await this.reclaimPrefixes(this.backend.usage().gpu + this.gpuNeed(s, kind) - this.backend.budgets.gpu, s);
        const ready = this.towardsGpu(s, kind);
        onStarted?.();
        await ready;
        return { bytes: s.bytes, wallMs: nowMs() - t0 };
      }
      const stage: Residency = kind === 'load' ? 'loading' : 'evicting';
      const t0 = nowMs();
      s.moving = stage;
      this.onChange();
      try {
        // Evicted with nothing else waiting for the room: the model may keep a prefix out of the memory it leaves idle.
        const keep = kind === 'evict' ? this.prefixOnEvict(s, this.backend.budgets.gpu - (this.backend.usage().gpu - s.bytes)) : 0;
        const r = await tracedMove(kind, id, () => (keep > 0 && this.backend.prefixes ? this.backend.prefixes.evictKeeping(id, keep) : this.backend.move(kind, id)));
        const span = { startMs: t0, endMs: nowMs() };
        if (kind === 'load') s.lastLoad = span;
        if (kind === 'evict' || kind === 'drop') s.arrival = null;
        if (kind === 'drop') s.lastLoad = null;
        return r;
      } finally {
        s.moving = null;
        this.onChange();
      }
    });
  }

  private async timed(s: Slot, kind: 'load' | 'swap_in', moving: Residency, progress?: Progress): Promise<MoveSpan> {
    const startMs = nowMs();
    s.moving = moving;
    this.onChange();
    try {
      const stage = kind === 'load' ? 'loading' : 'swapping';
      // A span of the job's trace (bytes, GB/s) and the move metrics.
      await tracedMove(kind, s.entry.id, () => this.backend.move(kind, s.entry.id, progress ? (d, t) => progress(stage, d, t) : undefined));
    } finally {
      s.moving = null;
    }
    return { startMs, endMs: nowMs() };
  }

  /** Frees room for `s` in a tier: evicts (GPU) or drops (host) idle models, least recently used first. */
  private async makeRoom(tier: 'host' | 'gpu', s: Slot): Promise<void> {
    const budget = this.backend.budgets[tier];
    if (s.bytes > budget) throw new TierError('out_of_memory', `model ${s.entry.id} (${s.bytes} bytes) exceeds the ${tier} budget (${budget} bytes)`);
    const inTier = (o: Slot) => {
      const r = this.backend.residency(o.entry.id);
      return tier === 'gpu' ? r === 'gpu' : r === 'host' || r === 'gpu';
    };
    const victims = [...this.slots.values()]
      .filter((o) => o !== s && inTier(o) && o.activeJobs === 0 && !o.entry.keepWarm)
      .sort((a, b) => (a.lastUsedAt ?? 0) - (b.lastUsedAt ?? 0));
    // On the GPU, s's own resident prefix is already counted in the usage; other models' prefixes go back before
    // any model is evicted (least likely first).
    const need = tier === 'gpu' ? this.gpuNeed(s, 'swap_in') : s.bytes;
    if (tier === 'gpu') await this.reclaimPrefixes(this.backend.usage().gpu + need - budget, s);
    while (this.backend.usage()[tier] + need > budget) {
      const v = victims.shift();
      if (!v) throw new TierError('out_of_memory', `no idle model to make ${s.bytes} bytes of room in the ${tier} tier`);
      v.moving = 'evicting';
      this.onChange();
      try {
        // The last victim needed may keep a prefix out of what is left once s's room is counted.
        const keep = tier === 'gpu' ? this.prefixOnEvict(v, budget - (this.backend.usage().gpu - v.bytes) - need) : 0;
        // The requesting job's trace shows this wait as swapserve.evict_wait; counted in swapserve.evictions.
        await tracedMove(tier === 'gpu' ? 'evict' : 'drop', v.entry.id, () => (keep > 0 && this.backend.prefixes
          ? this.backend.prefixes.evictKeeping(v.entry.id, keep)
          : this.backend.move(tier === 'gpu' ? 'evict' : 'drop', v.entry.id)));
      } finally {
        v.moving = null;
        v.arrival = null;
        if (tier === 'host') v.lastLoad = null;
        this.onChange();
      }
    }
  }

  private prefixOptions(): PrefixOptions {
    return { ...PREFIX_DEFAULTS, ...this.partial };
  }

  /** GPU pool bytes a move of `s` towards the GPU reserves (a swap_in grows its resident prefix; load_to_gpu does not). */
  private gpuNeed(s: Slot, kind: 'swap_in' | 'load_to_gpu'): number {
    const own = kind === 'swap_in' ? this.backend.prefixes?.prefix(s.entry.id).bytes ?? 0 : 0;
    return s.bytes - own;
  }

  /** How many leading groups `v`, being evicted, keeps on the GPU given `freeBytes` left idle after its eviction. */
  private prefixOnEvict(v: Slot, freeBytes: number): number {
    const pb = this.backend.prefixes;
    if (!this.partial || !pb || freeBytes <= 0 || !pb.hasHostCopy(v.entry.id)) return 0;
    const probability = requestProbability(v.rate, nowMs(), this.prefixOptions());
    return choosePrefixGroups({ groupEnds: pb.groupEnds(v.entry.id), freeBytes, probability }, this.prefixOptions());
  }

  /** Reclaims other models' prefixes, least likely first, until `needBytes` more are free (or none is left). */
  private async reclaimPrefixes(needBytes: number, except: Slot): Promise<number> {
    const pb = this.backend.prefixes;
    if (!pb || needBytes <= 0) return 0;
    const now = nowMs();
    const parked = [...this.slots.values()].filter((o) => o !== except).map((o) => ({
      id: o.entry.id, bytes: pb.prefix(o.entry.id).bytes, lastUsedAt: o.lastUsedAt,
      probability: requestProbability(o.rate, now, this.prefixOptions()),
    }));
    let freed = 0;
    for (const id of prefixesToReclaim(parked, needBytes)) freed += (await pb.reclaim(id)).bytes;
    return freed;
  }

  /**
   * A move towards the GPU. Prefixes never make it fail: where its reservation is refused (over budget, or no
   * contiguous range because a prefix splits the free memory), other models' prefixes go back one at a time, least
   * likely first, and the move is issued again after each. A refused reservation changed nothing (the runtime checks
   * it before anything starts), so each retry is the same move.
   */
  private async moveReclaiming(s: Slot, kind: 'swap_in' | 'load_to_gpu', onProgress?: (d: number, t: number) => void): Promise<MoveOutcome> {
    for (;;) {
      try {
        return await this.backend.move(kind, s.entry.id, onProgress);
      } catch (e) {
        const code = (e as { code?: unknown } | null)?.code;
        if ((code !== 'oom' && code !== 'budget') || (await this.reclaimPrefixes(1, s)) === 0) throw e;
      }
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => {});
    return p;
  }

  private slot(id: string): Slot {
    const s = this.slots.get(id);
    if (!s) throw new TierError('not_found', `model ${id} is not configured on this worker`);
    return s;
  }
}
