// Which BullMQ consumer of this worker may take its next job now: the worker's cap (config worker.concurrency), the
// model's cap (the scheduler's `consume` concurrency), and what the model's engine can admit (its KV blocks and
// batch slots, from Engine.stats() where the engine has it). Waiting consumers are served fewest-held first, so
// several resident models share the cap fairly. See design.md, "Admission".

import type { EngineStats } from '../../native/ts/engine-types.ts';

export type { EngineStats };

/** A model's capacity on this worker, as the backend knows it now. */
export interface ModelCapacity {
  /** The engine's stats; null while the model has no engine yet, or its engine has no stats (no paged KV cache). */
  stats: EngineStats | null;
  /** Sequences the model's engine batches (without stats, the number of jobs the model may hold). */
  maxBatch: number;
  /** Mean prompt + max_tokens of the model's recent sequences (tokens; 0 = none yet). */
  meanSeqTokens: number;
}

interface Waiter { model: string; seq: number; closing: () => boolean; resolve: (granted: boolean) => void }

/** How often blocked consumers look at the engines again (engine stats change without a job ending). @defaultValue 10 ms */
const POLL_MS = 10;

export class Admission {
  /** Jobs held (taken and not yet ended) per model. */
  private readonly held = new Map<string, number>();
  /** Slots granted to a waiting consumer whose (non-blocking) fetch has not returned yet. */
  private readonly reserved = new Map<string, number>();
  private readonly modelCaps = new Map<string, number>();
  private waiters: Waiter[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;

  /**
   * `cap`: jobs this worker holds at most, over all models. `capacity(model)`: the backend's view of the model's
   * engine (null: the backend reports none; then the caps alone decide).
   */
  constructor(readonly cap: number, private readonly capacity: (model: string) => ModelCapacity | null) {}

  /** The model's own cap (its `consume` command's concurrency); never above the worker's. */
  setModelCap(model: string, n: number): void {
    this.modelCaps.set(model, Math.max(1, Math.min(n, this.cap)));
    this.pump();
  }

  heldBy(model: string): number {
    return (this.held.get(model) ?? 0) + (this.reserved.get(model) ?? 0);
  }

  total(): number {
    let n = 0;
    for (const v of this.held.values()) n += v;
    for (const v of this.reserved.values()) n += v;
    return n;
  }

  /** Whether `model` may take one more job now (a pure reading of the caps and the engine's stats). */
  room(model: string): boolean {
    if (this.total() >= this.cap) return false;
    const h = this.heldBy(model);
    if (h >= (this.modelCaps.get(model) ?? this.cap)) return false;
    const c = this.capacity(model);
    if (!c) return true;
    const s = c.stats;
    // No engine yet, or one without stats: hold at most one batch's worth of jobs.
    if (!s) return h < c.maxBatch;
    // Jobs held here that the engine has not seen yet (waiting on a move, or just taken).
    const pre = Math.max(0, h - s.active - s.waiting);
    const queued = s.waiting + pre;
    if (s.active === 0 && queued === 0) return true; // an idle engine always takes one (a long request must not starve)
    // Sequences the free blocks hold at the recent mean length, and the batch's free slots; the engine's own
    // queue and the jobs on their way to it use them up first.
    const perSeq = Math.max(s.blockTokens, c.meanSeqTokens || s.blockTokens);
    const byBlocks = Math.floor((s.blocksFree * s.blockTokens) / perSeq);
    const slots = Math.min(s.maxBatch - s.active, byBlocks);
    return queued < slots;
  }

  /**
   * Waits for room: resolves true once `model` may take a job — the slot is then reserved until settle() says
   * whether the fetch (which must not block on an empty queue) brought one — or false once `closing()` holds.
   * Waiters are served fewest-held first, then in order of arrival. A consumer that finds room at once (room()) fetches
   * without a reservation and calls took(): a blocking fetch on an empty queue must not keep other models out, so
   * consumers that find room at the same moment can overshoot the worker's cap by one job each; a model's cap is
   * exact (a consumer fetches one job at a time).
   */
  acquire(model: string, closing: () => boolean): Promise<boolean> {
    return new Promise((resolve) => {
      this.waiters.push({ model, seq: this.seq++, closing, resolve });
      this.pump();
    });
  }

  /** A granted wait's fetch returned: the reservation becomes a held job, or goes. */
  settle(model: string, gotJob: boolean): void {
    const r = this.reserved.get(model) ?? 0;
    if (r <= 1) this.reserved.delete(model);
    else this.reserved.set(model, r - 1);
    if (gotJob) this.took(model);
    else this.pump();
  }

  /** A fetch brought a job: it is held until release(). */
  took(model: string): void {
    this.held.set(model, this.heldBy(model) + 1);
  }

  release(model: string): void {
    const h = this.held.get(model) ?? 0;
    if (h <= 1) this.held.delete(model);
    else this.held.set(model, h - 1);
    this.pump();
  }

  /** Something changed (a job ended, an engine admitted a sequence, a model's cap): serve the waiters again. */
  pump(): void {
    if (this.waiters.length === 0) return;
    const order = [...this.waiters].sort((a, b) => this.heldBy(a.model) - this.heldBy(b.model) || a.seq - b.seq);
    const served = new Set<Waiter>();
    for (const w of order) {
      if (w.closing()) {
        served.add(w);
        w.resolve(false);
      } else if (this.room(w.model)) {
        served.add(w);
        this.reserved.set(w.model, (this.reserved.get(w.model) ?? 0) + 1);
        w.resolve(true);
      }
    }
    if (served.size) this.waiters = this.waiters.filter((w) => !served.has(w));
    if (this.waiters.length && !this.timer) {
      this.timer = setTimeout(() => { this.timer = null; this.pump(); }, POLL_MS);
    }
  }

  /** Ends every wait (false) and the poll timer. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiters) w.resolve(false);
    this.waiters = [];
  }
}
