// The worker's tier state: one move at a time through the native runtime, LRU room-making, GPU arrival history.
import { nowMs } from '../shared/clock.ts';
import type { ModelEntry } from '../shared/config.ts';
import type { MoveKind, Residency } from '../shared/vocab.ts';
import type { ModelBackend, MoveOutcome } from './backend.ts';
import type { GpuArrival, MoveSpan } from './residency.ts';
import { tracedMove } from '../telemetry/traces.ts';

export class TierError extends Error {
  override name = 'TierError';
  constructor(readonly code: 'in_use' | 'out_of_memory' | 'not_found' | 'io' | 'internal', message: string) {
    super(message);
  }
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
}

export type Progress = (stage: 'loading' | 'swapping', doneBytes: number, totalBytes: number) => void;

export class TierManager {
  private readonly slots = new Map<string, Slot>();
  /** Moves run one at a time: budgets are checked and changed by one actor. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly backend: ModelBackend, private readonly onChange: () => void) {}

  add(entry: ModelEntry): void {
    if (this.slots.has(entry.id)) return;
    const slot: Slot = { entry, bytes: 0, registered: Promise.resolve(), activeJobs: 0, lastUsedAt: null, arrival: null, moving: null, lastLoad: null };
    slot.registered = this.backend.register(entry).then((r) => {
      slot.bytes = r.bytes;
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
  async ensureOnGpu(id: string, progress?: Progress): Promise<{ readyMs: number; arrival: GpuArrival }> {
    const s = this.slot(id);
    await s.registered;
    if (s.arrival && this.backend.residency(id) === 'gpu') return { readyMs: nowMs(), arrival: s.arrival };
    return this.serial(async () => {
      if (s.arrival && this.backend.residency(id) === 'gpu') return { readyMs: nowMs(), arrival: s.arrival };
      if (this.backend.residency(id) === 'disk') {
        await this.makeRoom('host', s);
        s.lastLoad = await this.timed(s, 'load', 'loading', progress);
      }
      await this.makeRoom('gpu', s);
      const swap = await this.timed(s, 'swap_in', 'swapping-in', progress);
      s.arrival = { atMs: swap.endMs, load: s.lastLoad, swap };
      this.onChange();
      return { readyMs: swap.endMs, arrival: s.arrival };
    });
  }

  /** Executes a scheduler command's move. */
  async command(kind: MoveKind, id: string): Promise<MoveOutcome> {
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
      const stage: Residency = kind === 'load' ? 'loading' : kind === 'evict' || kind === 'drop' ? 'evicting' : 'swapping-in';
      const t0 = nowMs();
      s.moving = stage;
      this.onChange();
      try {
        const r = await tracedMove(kind, id, () => this.backend.move(kind, id));
        const span = { startMs: t0, endMs: nowMs() };
        if (kind === 'load') s.lastLoad = span;
        if (kind === 'swap_in') s.arrival = { atMs: span.endMs, load: s.lastLoad, swap: span };
        if (kind === 'load_to_gpu') {
          s.lastLoad = span;
          s.arrival = { atMs: span.endMs, load: span, swap: null };
        }
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
    while (this.backend.usage()[tier] + s.bytes > budget) {
      const v = victims.shift();
      if (!v) throw new TierError('out_of_memory', `no idle model to make ${s.bytes} bytes of room in the ${tier} tier`);
      v.moving = 'evicting';
      this.onChange();
      try {
        // The requesting job's trace shows this wait as swapserve.evict_wait; counted in swapserve.evictions.
        await tracedMove(tier === 'gpu' ? 'evict' : 'drop', v.entry.id, () => this.backend.move(tier === 'gpu' ? 'evict' : 'drop', v.entry.id));
      } finally {
        v.moving = null;
        v.arrival = null;
        if (tier === 'host') v.lastLoad = null;
        this.onChange();
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
