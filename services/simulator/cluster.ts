// The simulated cluster every policy runs on: per-model FIFO queues (BullMQ's role), workers that hold GPUs and run
// tier moves and engine passes for the times of a calibration, and the record of every request's path and TTFT.
// Workers take jobs the way swapserve's do (a consuming replica with a free slot takes the oldest waiting job);
// the path of a request is decided by the worker's own rule (services/worker/residency.ts `classifyPath`).
import type { CommandBody, CommandResult, ModelOnWorker, WorkerState } from '../../contracts/cluster.ts';
import type { Residency, ServePath } from '../../contracts/vocab.ts';
import { classifyPath, type GpuArrival, type MoveSpan } from '../worker/residency.ts';
import type { Calibration, ModelShape } from '../fleet/calibration.ts';
import type { EventQueue } from './events.ts';
import type { SimRequest } from './trace.ts';

/** Latency of one hop through Redis (a command reaching a worker, a report or count reaching the scheduler), ms. */
export const HOP_MS = 1;
/** Prompt tokens one engine step feeds (native/ts/engine.ts `prefillChunk` default). */
export const PREFILL_CHUNK = 512;
/** Time to free a model's GPU memory (evict/drop), ms. */
const RELEASE_MS = 5;
/** Rate a fresh worker pins its host pool at (bytes/s; ≈ 2 s for 54 GB, services/shared/cluster.ts `hostReady`). */
const HOST_PIN_BYTES_PER_S = 27e9;

/** What the cluster tells the policy under test. */
export interface Controller {
  onQueue(model: string): void;
  onWorker(w: SimWorker): void;
  onResult(w: SimWorker, r: CommandResult): void;
  onWorkerGone(w: SimWorker): void;
  onTick(): void;
}

/**
 * One answered request. `takenAt`: when its worker took it (the engine's generation start); `doneAt`: its last token
 * (NaN until then). With `at + ttftMs` they give the windows a real worker's Server-Timing reports.
 */
export interface Served {
  id: number; model: string; at: number; path: ServePath; coldReason?: string; ttftMs: number; workerId: string;
  takenAt: number; doneAt: number; outputTokens: number;
}

/** `landsAt`: while a swap-in or load_to_gpu runs, when its last layer lands (jobs taken meanwhile prefill behind it). */
interface Slot extends ModelOnWorker { arrival: GpuArrival | null; load: MoveSpan | null; concurrency: number; landsAt: number }

/** A running request: prompt tokens still to prefill, output tokens still to decode, context so far. */
interface Job { req: SimRequest; shape: ModelShape; prefillLeft: number; left: number; ctx: number; takenAt: number }

interface Exec { kind: 'prefill' | 'decode'; start: number; end: number; roundMs: number; rounds: number; version: number }

export interface ClusterSettings {
  cal: Calibration;
  shapes: Map<string, ModelShape>;
  /** Most jobs per replica, per model (continuous batching), before the KV cap. */
  concurrency: Map<string, number>;
  /** GPU bytes per worker GPU for weights and KV cache (calibration: memory x memoryUtilization - activation reserve). */
  weightsBytesPerGpu: number;
  /** Context (tokens) a sequence is assumed to hold when sizing a replica's batch from its free KV memory. */
  batchContextTokens: number;
  /** Pinned host bytes per worker GPU. */
  hostBytesPerGpu: number;
  /** Files a node read stay in its page cache (in the host RAM its pinned copies leave free): re-reads go at page-cache speed. */
  pageCache: boolean;
}

export class SimWorker {
  readonly slots = new Map<string, Slot>();
  seq = 0;
  draining = false;
  gone = false;
  readyAt = Infinity;
  releasedAt = Infinity;
  private cmds: { id: string; body: CommandBody }[] = [];
  private moving = false;
  private prefillQ: Job[] = [];
  private decoding: Job[] = [];
  private exec: Exec | null = null;
  private version = 0;
  /** The prompts (and tokens of each) fed by the step in flight. */
  private chunk: [Job, number][] = [];
  /** Model files in this node's page cache, least recently read first (bytes count against the host budget). */
  readonly pageCache: string[] = [];

  constructor(readonly c: SimCluster, readonly id: string, readonly gpus: number, readonly startedAt: number) {}

  get budgets(): { gpu: number; host: number } {
    return { gpu: this.gpus * this.c.s.weightsBytesPerGpu, host: this.gpus * this.c.s.hostBytesPerGpu };
  }

  usage(): { gpu: number; host: number } {
    let gpu = 0, host = 0;
    for (const s of this.slots.values()) {
      if (s.residency === 'gpu' || s.residency === 'swapping-in' || s.residency === 'evicting') gpu += s.bytes;
      if (s.residency === 'host' || s.residency === 'loading' || s.hostCopy) host += s.bytes;
    }
    return { gpu, host };
  }

  /** Page-cache bytes (the files read last, as far as the host RAM left beside the pinned copies holds them). */
  cachedBytes(): number {
    let b = 0;
    for (const m of this.pageCache) b += this.c.s.shapes.get(m)!.weightBytes;
    return b;
  }

  private readFiles(model: string): void {
    if (!this.c.s.pageCache) return;
    const i = this.pageCache.indexOf(model);
    if (i >= 0) this.pageCache.splice(i, 1);
    this.pageCache.push(model);
    const room = this.budgets.host - this.usage().host;
    while (this.pageCache.length > 0 && this.cachedBytes() > room) this.pageCache.shift();
  }

  /** Commands queued or running here (a move takes time; the rest land at once). */
  pendingCommands(): number {
    return this.cmds.length + (this.moving ? 1 : 0);
  }

  activeJobs(): number {
    return this.prefillQ.length + this.decoding.length;
  }

  slot(model: string): Slot {
    let s = this.slots.get(model);
    if (!s) {
      const shape = this.c.s.shapes.get(model)!;
      // KV room beside the weights on this worker's GPUs (several GPUs: a tensor-parallel group shares it).
      const kvRoom = this.gpus * this.c.s.weightsBytesPerGpu - shape.weightBytes;
      const cap = Math.min(this.c.s.cal.engine.maxBatchCap, Math.floor(kvRoom / (this.c.s.batchContextTokens * shape.kvBytesPerToken)));
      s = { residency: 'disk', bytes: shape.weightBytes, activeJobs: 0, lastUsedAt: null, consuming: false, hostCopy: false, arrival: null, load: null, landsAt: Infinity,
        concurrency: Math.max(1, Math.min(this.c.s.concurrency.get(model) ?? 1, cap)) };
      this.slots.set(model, s);
    }
    return s;
  }

  /** The report a real worker would publish (services/shared/cluster.ts WorkerState). */
  report(): WorkerState {
    const models: Record<string, ModelOnWorker> = {};
    for (const [m, s] of this.slots) {
      if (s.residency === 'disk' && s.activeJobs === 0 && !s.consuming) continue;
      models[m] = { residency: s.residency, bytes: s.bytes, activeJobs: s.activeJobs, lastUsedAt: s.lastUsedAt, consuming: s.consuming, hostCopy: s.hostCopy };
    }
    const now = this.c.q.now;
    return {
      workerId: this.id, pid: 1, host: 'sim', backend: 'cuda', device: this.c.s.cal.gpu, startedAt: this.startedAt, heartbeatAt: now, seq: ++this.seq,
      budgets: this.budgets, usage: this.usage(), maxJobs: 1024, models, draining: this.draining, healthy: true, epoch: 1,
      hostReady: now >= this.readyAt + (this.budgets.host / HOST_PIN_BYTES_PER_S) * 1000,
    };
  }

  /** Queues a command; commands run one at a time, in order (as on a real worker). */
  send(id: string, body: CommandBody): void {
    this.c.q.after(HOP_MS, () => {
      this.cmds.push({ id, body });
      this.next();
    });
  }

  /**
   * Starts the next queued command, in order, as a real worker's command loop does (services/worker/control.ts): it
   * waits for a tier move to be under way, not to finish, so `swap_in` then `consume` takes the model's jobs while
   * its weights land (execute-while-loading); a second move, or a drain, waits for the running move to end.
   */
  next(): void {
    if (this.gone || this.now < this.readyAt) return;
    const head = this.cmds[0];
    if (!head) return;
    const isMove = head.body.kind !== 'consume' && head.body.kind !== 'stop_consume';
    if (this.moving && isMove) return;
    const cmd = this.cmds.shift()!;
    const { body } = cmd;
    const t0 = this.now;
    const done = (ok: boolean, code?: 'in_use' | 'out_of_memory' | 'not_found'): void => {
      if (isMove) this.moving = false;
      const result: CommandResult = { commandId: cmd.id, workerId: this.id, kind: body.kind, ok, durationMs: this.now - t0, finishedAt: this.now,
        ...('model' in body ? { model: body.model } : {}), ...(code ? { error: { code, message: code } } : {}) };
      this.c.changed(this);
      this.c.result(this, result);
      this.next();
    };
    if (body.kind === 'drain' || body.kind === 'shutdown') {
      this.draining = true;
      for (const s of this.slots.values()) s.consuming = false;
      done(true);
      this.maybeExit();
      return;
    }
    const s = this.slot(body.model);
    if (body.kind === 'consume' || body.kind === 'stop_consume') {
      s.consuming = body.kind === 'consume';
      if (body.kind === 'consume') s.concurrency = Math.min(s.concurrency, body.concurrency);
      done(true);
      if (s.consuming) this.c.dispatch(body.model);
      return;
    }
    const cal = this.c.s.cal;
    const u = this.usage();
    const move = (from: Residency[], during: Residency, ms: number, after: () => void): void => {
      if (!from.includes(s.residency)) return done(false, 'not_found');
      this.moving = true;
      this.c.moves[body.kind as 'load']++;
      s.residency = during;
      this.c.changed(this);
      this.c.q.after(ms, () => {
        after();
        done(true);
      });
      this.next(); // the move is under way: the commands behind it that are not moves start now
    };
    const diskMs = (s.bytes / (this.pageCache.includes(body.model) ? cal.pageCacheBytesPerS : cal.diskBytesPerS)) * 1000;
    switch (body.kind) {
      case 'load':
        if (u.host + s.bytes > this.budgets.host) return done(false, 'out_of_memory');
        return move(['disk'], 'loading', diskMs, () => {
          s.residency = 'host';
          s.hostCopy = true;
          s.load = { startMs: t0, endMs: this.now };
          this.readFiles(body.model);
        });
      case 'swap_in': {
        if (u.gpu + s.bytes > this.budgets.gpu) return done(false, 'out_of_memory');
        const ms = (s.bytes / (cal.swapBytesPerS * this.gpus)) * 1000; // a host link per GPU
        if (s.residency === 'host') this.landing(s, { atMs: t0 + ms, load: s.load, swap: { startMs: t0, endMs: t0 + ms } });
        return move(['host'], 'swapping-in', ms, () => {
          s.residency = 'gpu';
          s.landsAt = Infinity;
        });
      }
      case 'load_to_gpu':
        if (u.gpu + s.bytes > this.budgets.gpu) return done(false, 'out_of_memory');
        if (s.residency === 'disk') this.landing(s, { atMs: t0 + diskMs, load: { startMs: t0, endMs: t0 + diskMs }, swap: null });
        return move(['disk'], 'swapping-in', diskMs, () => {
          s.residency = 'gpu';
          s.landsAt = Infinity;
          s.hostCopy = false;
          s.load = { startMs: t0, endMs: this.now };
          this.readFiles(body.model);
        });
      case 'evict':
      case 'drop':
        if (s.activeJobs > 0) return done(false, 'in_use');
        return move(body.kind === 'evict' ? ['gpu'] : ['gpu', 'host'], 'evicting', RELEASE_MS, () => {
          s.residency = body.kind === 'evict' && s.hostCopy ? 'host' : 'disk';
          if (s.residency === 'disk') s.hostCopy = false;
        });
    }
  }

  get now(): number {
    return this.c.q.now;
  }

  /** A move to the GPU starts: its arrival is known now (a simulated copy ends when planned). */
  private landing(s: Slot, arrival: GpuArrival): void {
    s.arrival = arrival;
    s.landsAt = arrival.atMs;
  }

  /** Whether this worker takes another job of `model` now. */
  canTake(model: string): boolean {
    const s = this.slots.get(model);
    return !!s && !this.draining && s.consuming && (s.residency === 'gpu' || s.residency === 'swapping-in') && s.activeJobs < s.concurrency;
  }

  take(req: SimRequest): void {
    const s = this.slots.get(req.model)!;
    s.activeJobs++;
    s.lastUsedAt = this.now;
    const p = classifyPath(req.at, this.now, s.arrival!, this.startedAt);
    this.c.paths.set(req.id, { path: p.path, ...(p.coldReason ? { coldReason: p.coldReason } : {}), workerId: this.id });
    this.prefillQ.push({ req, shape: this.c.s.shapes.get(req.model)!, prefillLeft: Math.max(1, req.promptTokens), left: req.outputTokens - 1, ctx: req.promptTokens, takenAt: this.now });
    this.c.changed(this);
    this.kick();
  }

  /**
   * Time (ms) of one step: per model on this worker (its own engine, run one after another), one forward pass over
   * its running sequences' next tokens plus the prompt tokens fed this step — a decode step when none is fed, else
   * priced as a prefill of all those tokens (compute-bound).
   */
  private stepMs(feed: Map<ModelShape, number> = new Map()): number {
    const byModel = new Map<ModelShape, { n: number; ctx: number }>();
    for (const j of this.decoding) {
      const b = byModel.get(j.shape) ?? { n: 0, ctx: 0 };
      b.n++;
      b.ctx += j.ctx;
      byModel.set(j.shape, b);
    }
    for (const shape of feed.keys()) if (!byModel.has(shape)) byModel.set(shape, { n: 0, ctx: 0 });
    let ms = 0;
    for (const [shape, b] of byModel) {
      const fed = feed.get(shape) ?? 0;
      const s = fed > 0 ? this.c.s.cal.prefillS(shape, fed + b.n) : this.c.s.cal.decodeStepS(shape, b.n, b.ctx / b.n);
      ms += (s * 1000) / this.gpus; // ideal tensor parallelism
    }
    return ms;
  }

  /**
   * Runs the engine as swapserve's does (native/ts/engine.ts): while prompts wait, each step advances every running
   * sequence by one token and feeds waiting prompts up to PREFILL_CHUNK tokens (oldest first); with no prompt waiting,
   * decode steps run back to back until the first sequence ends (one event for the whole run).
   */
  private kick(): void {
    if (this.exec) {
      // A decode run ends at its next step boundary so a new prompt joins the next step (continuous batching).
      const e = this.exec;
      if (e.kind === 'decode' && this.prefillQ.length > 0) {
        const done = Math.min(e.rounds, Math.floor((this.now - e.start) / e.roundMs) + 1);
        if (done < e.rounds) this.schedule({ ...e, rounds: done, end: e.start + done * e.roundMs });
      }
      return;
    }
    if (this.prefillQ.length > 0) {
      let budget = PREFILL_CHUNK;
      const feed = new Map<ModelShape, number>();
      this.chunk = [];
      for (const j of this.prefillQ) {
        const take = Math.min(j.prefillLeft, budget);
        this.chunk.push([j, take]);
        feed.set(j.shape, (feed.get(j.shape) ?? 0) + take);
        budget -= take;
        if (budget === 0) break;
      }
      const ms = this.stepMs(feed);
      // A prompt of a model still landing is prefilled layer by layer behind the copy: the step ends no sooner than
      // one layer's share of it after the last layer lands.
      let end = this.now + ms;
      for (const [j] of this.chunk) {
        const landsAt = this.slots.get(j.req.model)!.landsAt;
        if (Number.isFinite(landsAt)) end = Math.max(end, landsAt + ms / Math.max(1, j.shape.layers));
      }
      this.schedule({ kind: 'prefill', start: this.now, end, roundMs: end - this.now, rounds: 1, version: 0 });
      return;
    }
    if (this.decoding.length === 0) return;
    let rounds = Infinity;
    for (const j of this.decoding) rounds = Math.min(rounds, j.left);
    const roundMs = this.stepMs();
    this.schedule({ kind: 'decode', start: this.now, end: this.now + rounds * roundMs, roundMs, rounds, version: 0 });
  }

  private schedule(e: Exec): void {
    const version = ++this.version;
    this.exec = { ...e, version };
    this.c.q.at(e.end, () => {
      if (this.version !== version) return;
      this.exec = null;
      // Running sequences advance e.rounds tokens (a mixed step: one).
      const still: Job[] = [];
      for (const j of this.decoding) {
        j.left -= e.rounds;
        j.ctx += e.rounds;
        if (j.left <= 0) this.finish(j);
        else still.push(j);
      }
      this.decoding = still;
      if (e.kind === 'prefill') {
        for (const [j, take] of this.chunk) {
          j.prefillLeft -= take;
          if (j.prefillLeft > 0) continue;
          this.prefillQ.splice(this.prefillQ.indexOf(j), 1);
          this.c.firstToken(j.req, this.now, j.takenAt);
          if (j.left > 0) this.decoding.push(j);
          else this.finish(j);
        }
        this.chunk = [];
      }
      this.kick();
    });
  }

  private finish(j: Job): void {
    const s = this.slots.get(j.req.model)!;
    s.activeJobs--;
    s.lastUsedAt = this.now;
    this.c.finished(j.req, this.now);
    this.c.changed(this);
    this.c.dispatch(j.req.model);
    this.maybeExit();
  }

  private maybeExit(): void {
    if (!this.draining || this.gone || this.activeJobs() > 0) return;
    this.gone = true;
    this.releasedAt = this.now;
    this.c.q.after(HOP_MS, () => this.c.gone(this));
  }
}

/** Per-model queue: BullMQ's waiting list and counters. */
interface ModelQueue { waiting: SimRequest[]; head: number; active: number; added: number }

export class SimCluster {
  readonly workers = new Map<string, SimWorker>();
  /** Every worker ever started, for GPU-hours and the GPUs-in-use timeline. */
  readonly history: SimWorker[] = [];
  readonly queues = new Map<string, ModelQueue>();
  readonly paths = new Map<number, { path: ServePath; coldReason?: string; workerId: string }>();
  readonly served: Served[] = [];
  /** Requests past their first token, not yet finished (their Served rows get `doneAt`). */
  private running = new Map<number, Served>();
  /** Peak pinned host bytes in use over all workers. */
  peakHostBytes = 0;
  /** Moves run (by kind) and workers started. */
  readonly moves = { load: 0, swap_in: 0, load_to_gpu: 0, evict: 0, drop: 0, workerStarts: 0 };
  controller!: Controller;
  private countsDue = new Set<string>();
  private reportDue = new Set<SimWorker>();

  constructor(readonly q: EventQueue, readonly s: ClusterSettings) {
    for (const m of s.shapes.keys()) this.queues.set(m, { waiting: [], head: 0, active: 0, added: 0 });
  }

  /** Starts a worker of `gpus` GPUs: it holds them from now and reports after the calibration's worker start. */
  startWorker(id: string, gpus: number, startMs = this.s.cal.workerStartS * 1000): SimWorker {
    const w = new SimWorker(this, id, gpus, this.q.now);
    if (startMs > 0) this.moves.workerStarts++;
    this.workers.set(id, w);
    this.history.push(w);
    this.q.after(startMs, () => {
      if (w.gone) return;
      w.readyAt = this.q.now;
      this.changed(w);
      w.next();
      // A report once the host pool is pinned (a real worker's next heartbeat says hostReady: true).
      this.q.after((w.budgets.host / HOST_PIN_BYTES_PER_S) * 1000, () => { if (!w.gone) this.changed(w); });
    });
    return w;
  }

  /** Stops a worker now (its GPUs are released; jobs it ran are lost, which the policies never ask for). */
  stopWorker(id: string): void {
    const w = this.workers.get(id);
    if (!w || w.gone) return;
    w.gone = true;
    w.releasedAt = this.q.now;
    this.q.after(HOP_MS, () => this.gone(w));
  }

  gone(w: SimWorker): void {
    this.workers.delete(w.id);
    this.controller.onWorkerGone(w);
  }

  arrive(r: SimRequest): void {
    const q = this.queues.get(r.model)!;
    q.waiting.push(r);
    q.added++;
    this.dispatch(r.model);
    this.countsChanged(r.model);
  }

  /** Hands waiting jobs of `model` to consuming replicas with free slots (fewest active jobs first). */
  dispatch(model: string): void {
    const q = this.queues.get(model)!;
    let took = false;
    while (q.head < q.waiting.length) {
      let best: SimWorker | null = null;
      for (const w of this.workers.values()) {
        if (w.canTake(model) && (!best || w.slots.get(model)!.activeJobs < best.slots.get(model)!.activeJobs)) best = w;
      }
      if (!best) break;
      const r = q.waiting[q.head++];
      q.active++;
      took = true;
      best.take(r);
    }
    if (q.head > 1024 && q.head * 2 > q.waiting.length) {
      q.waiting = q.waiting.slice(q.head);
      q.head = 0;
    }
    if (took) this.countsChanged(model);
  }

  waitingOf(model: string): { waiting: number; active: number; added: number; oldestWaitingAt: number | null } {
    const q = this.queues.get(model)!;
    const waiting = q.waiting.length - q.head;
    return { waiting, active: q.active, added: q.added, oldestWaitingAt: waiting > 0 ? q.waiting[q.head].at : null };
  }

  firstToken(r: SimRequest, now: number, takenAt: number): void {
    const p = this.paths.get(r.id)!;
    const row: Served = { id: r.id, model: r.model, at: r.at, path: p.path, ...(p.coldReason ? { coldReason: p.coldReason } : {}), ttftMs: now - r.at, workerId: p.workerId,
      takenAt, doneAt: NaN, outputTokens: r.outputTokens };
    this.served.push(row);
    this.running.set(r.id, row);
  }

  finished(r: SimRequest, now: number): void {
    const row = this.running.get(r.id);
    if (row) {
      row.doneAt = now;
      this.running.delete(r.id);
    }
    this.queues.get(r.model)!.active--;
    this.countsChanged(r.model);
  }

  private countsChanged(model: string): void {
    // One re-read per hop however many jobs moved (the scheduler re-reads counts on BullMQ's events).
    if (this.countsDue.has(model)) return;
    this.countsDue.add(model);
    this.q.after(HOP_MS, () => {
      this.countsDue.delete(model);
      this.controller.onQueue(model);
    });
  }

  changed(w: SimWorker): void {
    let host = 0;
    for (const x of this.workers.values()) host += x.usage().host + x.cachedBytes();
    this.peakHostBytes = Math.max(this.peakHostBytes, host);
    if (w.now < w.readyAt || this.reportDue.has(w)) return;
    this.reportDue.add(w);
    this.q.after(HOP_MS, () => {
      this.reportDue.delete(w);
      if (!w.gone) this.controller.onWorker(w);
    });
  }

  result(w: SimWorker, r: CommandResult): void {
    this.q.after(HOP_MS, () => this.controller.onResult(w, r));
  }
}
