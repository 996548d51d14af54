// The worker process's core: tier state through the native backend, one BullMQ consumer per served model,
// state heartbeats and scheduler commands, cancellation by pub/sub. See design.md in this folder.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Worker as BullWorker } from 'bullmq';
import { nowMs } from '../../contracts/clock.ts';
import { mayServe, type Config } from '../config/config.ts';
import { workerInstance, type ModelOnWorker, type WorkerCommand, type WorkerState } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../client/queues.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { redisReason } from '../health/server.ts';
import type { ModelBackend } from './backend.ts';
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
      (model, reason) => this.log.error({ model, code: 'model_load_failed' }, `model ${model} rejected: ${reason}`));
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

  /** Starts taking jobs from a model's queue. */
  consume(modelId: string, concurrency: number): void {
    if (this.draining || this.consumers.has(modelId)) return;
    const w = new BullWorker(queueName(modelId), (job, token, signal) => runJob(this.ctx, job, signal, token), {
      connection: this.bull,
      prefix: this.cfg.prefix,
      // Recorded on each job it takes (processedBy): a follower tells this process's jobs from a restarted one's.
      name: workerInstance({ workerId: this.workerId, pid: process.pid, startedAt: this.startedMs }),
      concurrency,
      lockDuration: this.cfg.worker.lockDurationMs,
      stalledInterval: this.cfg.worker.stalledIntervalMs,
      maxStalledCount: this.cfg.worker.maxStalledCount,
      removeOnComplete: { count: 0 },
      removeOnFail: { age: 3600, count: 1000 },
      // Consumer spans continuing the gateway's trace (undefined while tracing is off).
      telemetry: bullmqTelemetry(),
    });
    w.on('error', () => {}); // connection errors are retried by ioredis; a job's outcome is on its stream
    this.consumers.set(modelId, w);
    this.control.changed();
  }

  async stopConsuming(modelId: string): Promise<void> {
    const w = this.consumers.get(modelId);
    if (!w) return;
    this.consumers.delete(modelId);
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
      models[id] = { residency: this.tiers.residency(id), bytes: i.bytes, activeJobs: i.activeJobs, lastUsedAt: i.lastUsedAt, consuming: this.consumers.has(id) };
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
      await Promise.allSettled([...this.consumers.values()].map((w) => w.close()));
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
