// The worker process's core: tier state through the native backend, one BullMQ consumer per served model,
// state heartbeats and scheduler commands, cancellation by pub/sub. See design.md in this folder.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker as BullWorker, type Job } from 'bullmq';
import { nowMs } from '../../contracts/clock.ts';
import { mayServe, type Config } from '../config/config.ts';
import { workerInstance, type ModelOnWorker, type WorkerCommand, type WorkerState } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../client/queues.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { redisReason } from '../health/server.ts';
import type { ModelBackend } from './backend.ts';
import { Admission } from './admission.ts';
import { Control } from './control.ts';
import { runJob, type RunnerContext } from './job-runner.ts';
import { TierManager } from './tiers.ts';
import { bullmqTelemetry } from '../telemetry/bullmq.ts';
import { linkPeakFromEnv, registerResidencySource, residencySamples, setLinkPeak } from '../telemetry/metrics.ts';

export interface SwapWorkerOptions {
  config: Config;
  backend: ModelBackend;
  /** @defaultValue `<host>-<pid>-<random>` */
  workerId?: string;
  /**
   * Consume every configured model's queue from the start and make models resident on demand (no scheduler
   * needed). @defaultValue config.worker.selfLoad
   */
  consumeAll?: boolean;
  /** The process logger (failed generations, loads and moves). @defaultValue pino for service "worker" at config `log.level` */
  log?: Logger;
}

export class SwapWorker {
  readonly workerId: string;
  readonly startedMs = nowMs();
  private readonly cfg: Config;
  private readonly backend: ModelBackend;
  private readonly tiers: TierManager;
  private readonly redis: RedisClient;
  private readonly sub: RedisClient;
  /** Shared by the BullMQ consumers (each duplicates it for its blocking fetch). */
  private readonly bull: RedisClient;
  private readonly control: Control;
  private readonly consumers = new Map<string, BullWorker>();
  private readonly active = new Map<string, AbortController>();
  private readonly ctx: RunnerContext;
  private readonly consumeAll: boolean;
  /** Which consumer may take its next job (worker cap, model caps, engine capacity). */
  private readonly admission: Admission;
  private readonly log: Logger;
  private draining = false;
  private healthy = true;
  private closing: Promise<void> | null = null;
  private unregisterMetrics: (() => void) | null = null;
  /** Resolves when a drain/shutdown command asks the process to exit (with its exit code). */
  readonly exitRequested: Promise<number>;
  private requestExit!: (code: number) => void;

  constructor(opts: SwapWorkerOptions) {
    this.cfg = opts.config;
    this.backend = opts.backend;
    this.workerId = opts.workerId ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${process.pid}-${randomBytes(2).toString('hex')}`;
    this.consumeAll = opts.consumeAll ?? this.cfg.worker.selfLoad;
    this.log = (opts.log ?? createLogger({ service: 'worker', level: this.cfg.log.level })).child({ workerId: this.workerId });
    const url = this.cfg.redisUrl ?? 'redis://127.0.0.1:6379';
    this.redis = connect(url, { name: `swapserve-worker-${this.workerId}` });
    this.sub = connect(url, { blocking: true, name: 'swapserve-worker-sub' });
    this.bull = connect(url, { blocking: true, name: 'swapserve-worker-bull' });
    this.tiers = new TierManager(this.backend, () => this.control?.changed(),
      (model, reason) => this.log.error({ model, code: 'model_load_failed' }, `model ${model} rejected: ${reason}`),
      this.cfg.worker.partialResidency ? {} : null);
    this.admission = new Admission(this.cfg.worker.concurrency, (m) => this.backend.capacity?.(m) ?? null);
    this.control = new Control(
      { workerId: this.workerId, state: () => this.state(), execute: (c, started) => this.execute(c, started) },
      this.redis, connect(url, { blocking: true, name: 'swapserve-worker-cmd' }), this.cfg.prefix, this.cfg.worker.heartbeatMs,
    );
    this.ctx = {
      workerId: this.workerId, startedMs: this.startedMs, backend: this.backend, tiers: this.tiers, redis: this.redis,
      prefix: this.cfg.prefix, streamTtlS: this.cfg.streams.ttlS, active: this.active, log: this.log,
      onUnhealthy: () => this.checkHealth(),
    };
    this.exitRequested = new Promise((r) => { this.requestExit = r; });
  }

  async start(): Promise<void> {
    for (const m of this.cfg.models) this.tiers.add(m);
    // Residency per model and tier, read at each /metrics collection; the link peak for the bandwidth panel.
    this.unregisterMetrics = registerResidencySource(() => residencySamples(this.workerId, this.state().models));
    const peak = linkPeakFromEnv(this.backend.kind);
    if (peak !== null) setLinkPeak(this.workerId, peak);
    const channel = keys(this.cfg.prefix).cancelChannel;
    this.sub.on('message', (_ch: string, requestId: string) => this.active.get(requestId)?.abort());
    await this.sub.subscribe(channel);
    // A fresh process pins its host pool in the background: report when it exists (the scheduler places by it).
    this.backend.whenHostReady?.().then(() => this.control.changed(), () => {});
    await this.control.start();
    // Self-load takes only the models the config's placement lets this worker's group serve.
    if (this.consumeAll) {
      for (const m of this.cfg.models) if (mayServe(this.cfg, m.id, this.cfg.worker.group)) this.consume(m.id, this.cfg.worker.concurrency);
    }
  }

  /**
   * Starts taking jobs from a model's queue: at most `concurrency` at once (the scheduler's per-model cap, within
   * worker.concurrency), and only while the model's engine can admit them (admission.ts): each fetch from the
   * queue first waits for a slot, and a job's slot is given back when it ends.
   */
  consume(modelId: string, concurrency: number): void {
    if (this.draining || this.consumers.has(modelId)) return;
    this.admission.setModelCap(modelId, concurrency);
    const w = new BullWorker(queueName(modelId), (job, token, signal) => runJob(this.ctx, job, signal, token), {
      connection: this.bull,
      prefix: this.cfg.prefix,
      // Recorded on each job it takes (processedBy): a follower tells this process's jobs from a restarted one's.
      name: workerInstance({ workerId: this.workerId, pid: process.pid, startedAt: this.startedMs }),
      // BullMQ's own limit is the model's cap; the admission gate below is what holds a fetch back.
      concurrency: Math.min(concurrency, this.cfg.worker.concurrency),
      autorun: false,
      lockDuration: this.cfg.worker.lockDurationMs,
      stalledInterval: this.cfg.worker.stalledIntervalMs,
      maxStalledCount: this.cfg.worker.maxStalledCount,
      removeOnComplete: { count: 0 },
      removeOnFail: { age: 3600, count: 1000 },
      // Consumer spans continuing the gateway's trace (undefined while tracing is off).
      telemetry: bullmqTelemetry(),
    });
    this.gate(w, modelId);
    w.on('error', () => {}); // connection errors are retried by ioredis; a job's outcome is on its stream
    this.consumers.set(modelId, w);
    void w.run().catch((err: unknown) => this.log.error({ model: modelId, err }, 'consumer stopped'));
    this.control.changed();
  }

  /**
   * Puts the admission gate in front of a BullMQ consumer's fetch. BullMQ (6.x) fetches in its main loop's inner loop
   * through `_getNextJob`, one fetch after another, and starts the fetched jobs (`processJob`) only once that inner
   * loop ends; on a job's completion it may also fetch the next one in the same call (`fetchNext`). The gate wraps
   * the fetch and turns `fetchNext` off, so every job is taken through it. A fetch without room waits for it, unless
   * jobs fetched earlier have not started yet: then it returns no job at once, which ends the inner loop so that they
   * start (waiting there would hold them back forever); after a wait it fetches without blocking. Each job's slot is given
   * back once its processing has ended.
   */
  private gate(w: BullWorker, model: string): void {
    type Internals = {
      _getNextJob(token: string, opts?: { block?: boolean }): Promise<Job | undefined>;
      processJob(job: Job, token: string, fetchNext?: () => boolean): Promise<unknown>;
    };
    const bw = w as unknown as Internals;
    const fetchJob = bw._getNextJob.bind(w);
    const processJob = bw.processJob.bind(w);
    const closing = () => this.draining || w.closing !== undefined || this.consumers.get(model) !== w;
    let unstarted = 0;
    bw._getNextJob = async (token, opts) => {
      if (this.admission.room(model)) {
        const job = await fetchJob(token, opts);
        if (job) {
          unstarted++;
          this.admission.took(model);
        }
        return job;
      }
      if (unstarted > 0) return undefined;
      if (!(await this.admission.acquire(model, closing))) return undefined;
      // A slot reserved after a wait: fetch without blocking, so an empty queue gives it back at once.
      let job: Job | undefined;
      try {
        job = await fetchJob(token, { ...opts, block: false });
      } finally {
        this.admission.settle(model, job !== undefined);
      }
      if (job) unstarted++;
      return job;
    };
    bw.processJob = (job, token) => {
      unstarted--;
      return processJob(job, token, () => false).finally(() => this.admission.release(model));
    };
  }

  async stopConsuming(modelId: string): Promise<void> {
    const w = this.consumers.get(modelId);
    if (!w) return;
    this.consumers.delete(modelId);
    this.admission.pump(); // its waiting fetch sees the consumer gone
    this.control.changed();
    await w.close();
  }

  /** Runs a scheduler command; a failed one (a load, a move) is logged here, once, with its cause. */
  private async execute(cmd: WorkerCommand, started: () => void = () => {}): Promise<void> {
    try {
      await this.run(cmd, started);
    } catch (err) {
      this.log.error({ command: cmd.kind, model: 'model' in cmd ? cmd.model : undefined, err }, `${cmd.kind} failed`);
      throw err;
    }
  }

  private async run(cmd: WorkerCommand, started: () => void): Promise<void> {
    switch (cmd.kind) {
      case 'consume':
        if (this.draining) throw Object.assign(new Error('worker is draining'), { code: 'draining' });
        if (!this.tiers.has(cmd.model)) throw Object.assign(new Error(`model ${cmd.model} is not configured here`), { code: 'not_found' });
        this.consume(cmd.model, cmd.concurrency);
        return;
      case 'stop_consume':
        await this.stopConsuming(cmd.model);
        return;
      case 'drain':
        this.draining = true;
        void this.close().then(() => this.requestExit(0));
        return;
      case 'shutdown':
        this.requestExit(0);
        return;
      default:
        try {
          await this.tiers.command(cmd.kind, cmd.model, started);
        } finally {
          this.checkHealth();
        }
    }
  }

  /**
   * After a failure: a sticky device error (backend.healthy() false) marks this worker unhealthy — published at
   * once, so the scheduler stops placing work here — and drains it: no new jobs, the accepted ones put back in their
   * queues (job-runner putBack) or finished, memory released, then the process exits 1 for its supervisor to restart.
   */
  checkHealth(): void {
    if (!this.healthy || this.backend.healthy()) return;
    this.healthy = false;
    this.draining = true;
    process.stderr.write(`swapserve worker ${this.workerId}: ERROR a sticky device error made the ${this.backend.kind} backend unusable; draining, then exiting 1\n`);
    this.control.changed();
    void this.close().then(() => this.requestExit(1), () => this.requestExit(1));
    // A device lost for real (a sticky CUDA error) may leave a native release waiting on it: exit 1 regardless once
    // the shutdown timeout has passed (the lifecycle then bounds the rest of the drain by the same timeout).
    setTimeout(() => this.requestExit(1), this.cfg.shutdown.timeoutMs).unref();
  }

  /** Readiness fails from now on (new work is refused); close() drains. */
  beginDrain(): void {
    this.draining = true;
    this.control.changed();
  }

  /** Liveness: false after an unrecoverable device error (the supervisor restarts the process). */
  live(): boolean {
    return this.healthy;
  }

  /** Readiness: null when this worker takes jobs; else why not. */
  async ready(): Promise<string | null> {
    if (this.draining) return 'draining';
    if (!this.healthy) return 'unhealthy';
    return redisReason(this.redis);
  }

  state(): Omit<WorkerState, 'heartbeatAt' | 'seq' | 'epoch'> {
    const models: Record<string, ModelOnWorker> = {};
    let host = 0;
    let gpu = 0;
    try {
      ({ host, gpu } = this.backend.usage());
    } catch {
      // closed backend: report zero usage
    }
    for (const id of this.tiers.ids()) {
      const i = this.tiers.info(id);
      const residency = this.tiers.residency(id);
      let prefix = 0;
      try {
        if (residency === 'host') prefix = this.backend.prefixes?.prefix(id).bytes ?? 0;
      } catch {
        // not registered yet, or a closed backend: no prefix
      }
      const codec = this.backend.hostCodec?.(id);
      models[id] = {
        residency, bytes: i.bytes, activeJobs: i.activeJobs, lastUsedAt: i.lastUsedAt, consuming: this.consumers.has(id),
        ...(prefix > 0 ? { gpuPrefixBytes: prefix } : {}), ...(codec && codec.state !== 'none' ? { hostCodec: codec } : {}),
      };
    }
    return {
      workerId: this.workerId, pid: process.pid, host: hostname().slice(0, 255), backend: this.backend.kind, device: this.backend.device,
      startedAt: this.startedMs, budgets: this.backend.budgets, usage: { host, gpu }, maxJobs: this.cfg.worker.concurrency,
      models, draining: this.draining, healthy: this.healthy,
      ...(this.backend.hostReady ? { hostReady: this.backend.hostReady() } : {}),
      ...(this.cfg.worker.group !== undefined ? { group: this.cfg.worker.group } : {}),
    };
  }

  /** Stops taking jobs, lets active ones finish, releases memory, then Redis (idempotent). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      this.unregisterMetrics?.();
      this.admission.pump(); // waiting fetches see the drain and end
      await Promise.allSettled([...this.consumers.values()].map((w) => w.close()));
      this.admission.close();
      this.consumers.clear();
      await Promise.allSettled([this.control.stop()]);
      await Promise.allSettled([this.backend.close()]);
      this.sub.disconnect();
      this.bull.disconnect();
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    return this.closing;
  }
}
