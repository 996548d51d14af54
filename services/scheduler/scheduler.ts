// The scheduler process: wins the leader lease, then feeds worker reports, command results, queue demand and
// ticks into the pure policy one at a time and applies its actions. A standby waits for the lease.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { clusterKeys, ClusterDataError, parseClusterEvent, parseWorkerState, type ClusterKeys } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../client/queues.ts';
import { DEFAULT_PREFIX } from '../../contracts/queues.ts';
import { recordSchedulerActionFailure, recordSchedulerDecision } from '../telemetry/metrics.ts';
import { applyActions, RedisEffects, type Effects } from './effects.ts';
import { LeaderLease } from './lease.ts';
import { decide, initialState, type PolicyConfig, type PolicyEvent, type PolicyState } from './policy.ts';
import type { WorkerProvider } from './provider.ts';
import { readQueues, waitForQueueEvents } from './queue-watch.ts';
import type { Action, ModelSettings } from './state.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { redisReason } from '../health/server.ts';

export interface SchedulerOptions {
  redisUrl: string;
  /** Models and their settings. */
  models: ModelSettings[];
  /** Cluster-wide policy settings (see POLICY_DEFAULTS). */
  policy?: Partial<PolicyConfig>;
  provider: WorkerProvider;
  /** Key prefix (config `prefix`). @defaultValue "{swapserve}" */
  prefix?: string;
  /** This scheduler's id in the lease. @defaultValue "sched-<uuid>" */
  id?: string;
  /** Lease time (ms). @defaultValue 5000 */
  leaseMs?: number;
  /** Policy tick period (ms): idle demotion, scale-in, timeouts, retries. @defaultValue 1000 */
  tickMs?: number;
  /** Longest wait for a BullMQ queue event before looking again (ms). @defaultValue 500 */
  pollMs?: number;
  /**
   * Every model's counts are re-read this often even without queue events (ms): a backstop, since every job
   * state change is also a BullMQ event that wakes the scheduler for its model. @defaultValue 2000
   */
  fullPollMs?: number;
  /** Replaces the Redis effects (tests). */
  effects?: Effects;
  /** Log sink for lease changes and failures. @defaultValue `logger.info` */
  log?: (msg: string) => void;
  /** Structured logger; decisions go to it at debug. @defaultValue pino for service "scheduler" (env LOG_LEVEL) */
  logger?: Logger;
  /** Wall clock (ms since epoch) passed to the policy. @defaultValue Date.now */
  clock?: () => number;
}

type Role = 'standby' | 'leader' | 'closed';

/** One scheduler: a standby until it holds the lease, then the only one issuing commands. */
export class Scheduler {
  readonly id: string;
  private readonly o: Required<Omit<SchedulerOptions, 'effects' | 'policy' | 'logger'>> & Pick<SchedulerOptions, 'effects' | 'policy'>;
  private readonly logger: Logger;
  private readonly keys: ClusterKeys;
  private redis: RedisClient | null = null;
  private lease: LeaderLease | null = null;
  private roleValue: Role = 'standby';
  private state: PolicyState | null = null;
  private effects: Effects | null = null;
  private readonly blocking = new Set<RedisClient>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private loop: Promise<void> | null = null;
  private readonly wakers = new Set<() => void>();
  private raising: Promise<void> | null = null;
  /** Decision times (ms), for the status line and the benchmark's cross-check. */
  readonly decisions = { count: 0, totalMs: 0, maxMs: 0 };

  constructor(options: SchedulerOptions) {
    const logger = options.logger ?? createLogger({ service: 'scheduler' });
    this.logger = logger;
    this.o = {
      prefix: DEFAULT_PREFIX, id: `sched-${randomUUID()}`, leaseMs: 5000, tickMs: 1000, pollMs: 500, fullPollMs: 2000,
      log: (m) => logger.info(m), clock: Date.now, ...options,
    };
    this.id = this.o.id;
    this.keys = clusterKeys(this.o.prefix);
  }

  get role(): Role {
    return this.roleValue;
  }

  private isClosed(): boolean {
    return this.roleValue === 'closed';
  }

  /** The epoch of the current term (0 before the first). */
  get epoch(): number {
    return this.lease?.epoch ?? 0;
  }

  private drainingFlag = false;

  /** Readiness fails from now on; close() then releases the lease. */
  beginDrain(): void {
    this.drainingFlag = true;
  }

  /** Readiness: null when started and Redis answers (leader and standby alike); else why not. */
  async ready(): Promise<string | null> {
    if (this.drainingFlag || this.roleValue === 'closed') return 'draining';
    if (!this.redis) return 'not started';
    return redisReason(this.redis);
  }

  /** Starts competing for the lease; resolves once connected. */
  async start(): Promise<void> {
    if (this.loop) return;
    this.redis = connect(this.o.redisUrl, { name: this.id });
    this.lease = new LeaderLease(this.redis, this.id, { prefix: this.o.prefix, leaseMs: this.o.leaseMs });
    this.effects = this.o.effects ?? new RedisEffects(this.redis, this.o.provider, { prefix: this.o.prefix });
    await this.redis.ping();
    this.loop = this.run();
  }

  /** Idempotent: stops deciding, releases the lease if held, closes connections. */
  async close(): Promise<void> {
    if (this.roleValue === 'closed') return;
    const wasLeader = this.roleValue === 'leader';
    this.roleValue = 'closed';
    for (const wake of [...this.wakers]) wake();
    for (const c of this.blocking) c.disconnect();
    const steps: Promise<unknown>[] = [];
    if (wasLeader && this.lease) steps.push(this.lease.release());
    await Promise.allSettled(steps);
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([this.o.provider.close(), this.redis?.quit()]);
  }

  /** A timer that close() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.timers.delete(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.timers.add(t);
      this.wakers.add(done);
    });
  }

  private async run(): Promise<void> {
    const lease = this.lease!;
    const retryMs = Math.max(50, Math.floor(this.o.leaseMs / 5));
    while (this.roleValue !== 'closed') {
      let epoch = 0;
      try {
        epoch = await lease.tryAcquire(() => performance.now());
      } catch (e) {
        this.o.log(`scheduler ${this.id}: lease attempt failed: ${(e as Error).message}`);
      }
      if (epoch > 0 && !this.isClosed()) {
        this.o.log(`scheduler ${this.id}: leader, epoch ${epoch}`);
        await this.lead(epoch).catch((e: unknown) => this.o.log(`scheduler ${this.id}: leader term ended: ${(e as Error).message}`));
        if (this.isClosed()) break;
        this.roleValue = 'standby';
        lease.stepDown();
        this.o.log(`scheduler ${this.id}: standby`);
      }
      await this.sleep(retryMs);
    }
  }

  /** Feeds one event to the policy and applies its actions, if (and only if) we still hold the lease. */
  private handle(event: PolicyEvent): void {
    const state = this.state;
    if (!state || this.roleValue !== 'leader' || !this.lease?.isLeader(performance.now())) return;
    if (event.type === 'worker-state' && event.state.epoch > this.lease.epoch && !this.raising) {
      // A worker has seen a higher epoch than ours: Redis lost its data. Move past it, or every command is stale.
      const lease = this.lease;
      const want = event.state.epoch + 1;
      this.raising = lease.raiseEpoch(want)
        .then((e) => this.o.log(`scheduler ${this.id}: worker ${event.state.workerId} had epoch ${event.state.epoch}; now epoch ${e}`))
        .catch((e: unknown) => this.o.log(`scheduler ${this.id}: raising the epoch failed: ${(e as Error).message}`))
        .finally(() => (this.raising = null));
    }
    const t0 = performance.now();
    let actions: Action[];
    try {
      ({ actions } = decide(state, event, this.o.clock()));
    } catch (e) {
      // A policy bug must not take the leader down: log it with the event, skip the event, keep deciding.
      this.o.log(`scheduler ${this.id}: policy failed on ${event.type} event: ${(e as Error).stack ?? String(e)}`);
      return;
    }
    const dt = performance.now() - t0;
    recordSchedulerDecision(event.type, dt / 1000, actions);
    this.decisions.count++;
    this.decisions.totalMs += dt;
    if (dt > this.decisions.maxMs) this.decisions.maxMs = dt;
    if (actions.length > 0) {
      if (this.logger.isLevelEnabled('debug')) this.logger.debug({ event: event.type, actions, decideMs: dt }, 'decision');
      this.apply(actions);
    }
  }

  private apply(actions: Action[]): void {
    void applyActions(actions, this.effects!, this.lease!.epoch, this.o.clock(), (a, e) => {
      this.o.log(`scheduler ${this.id}: ${a.type} ${a.workerId} failed: ${(e as Error).message}`);
      recordSchedulerActionFailure(a);
      if (a.type === 'start-worker') this.handle({ type: 'worker-start-failed', workerId: a.workerId, message: (e as Error).message });
    });
  }

  /** One leader term: rebuild state from Redis, then run the loops until the lease is lost or we close. */
  private async lead(epoch: number): Promise<void> {
    const redis = this.redis!;
    const lease = this.lease!;
    this.roleValue = 'leader';
    this.state = initialState(this.o.models, this.o.policy, `e${epoch}`);
    const models = this.o.models.map((m) => m.id);
    let lost = false;
    const ended = new Promise<void>((resolve) => {
      const renew = async (): Promise<void> => {
        while (this.roleValue === 'leader' && !lost) {
          await this.sleep(Math.max(20, Math.floor(this.o.leaseMs / 3)));
          if (this.roleValue !== 'leader') break;
          const ok = await lease.renew(() => performance.now()).catch(() => false);
          if (!ok && !lease.isLeader(performance.now())) lost = true;
        }
        resolve();
      };
      void renew();
    });

    // Start reading events from the last one now, then load the states (an update in between is read twice: harmless).
    const last = (await redis.xrevrange(this.keys.events(), '+', '-', 'COUNT', 1)) as [string, string[]][];
    let eventsCursor = last[0]?.[0] ?? '0-0';
    await this.loadWorkers();
    await this.pollQueues(models);
    const [sec, usec] = await redis.time();
    const queueCursor = new Map(models.map((m) => [m, `${Number(sec) * 1000 + Math.floor(Number(usec) / 1000)}-0`]));

    const active = (): boolean => this.roleValue === 'leader' && !lost;
    const eventsLoop = async (): Promise<void> => {
      const conn = connect(this.o.redisUrl, { blocking: true, name: `${this.id}:events` });
      this.blocking.add(conn);
      try {
        while (active()) {
          const res = (await conn.xread('COUNT', 500, 'BLOCK', this.o.tickMs, 'STREAMS', this.keys.events(), eventsCursor)) as
            [string, [string, string[]][]][] | null;
          for (const [, entries] of res ?? []) {
            for (const [id, fields] of entries) {
              eventsCursor = id;
              let ev;
              try {
                ev = parseClusterEvent(fields);
              } catch (e) {
                this.o.log(`scheduler ${this.id}: skipped event ${id}: ${(e as Error).message}`);
                continue;
              }
              this.handle(ev.type === 'state' ? { type: 'worker-state', state: ev.state } : { type: 'result', result: ev.result });
            }
          }
        }
      } finally {
        this.blocking.delete(conn);
        conn.disconnect();
      }
    };
    const queueLoop = async (): Promise<void> => {
      if (models.length === 0) return;
      const conn = connect(this.o.redisUrl, { blocking: true, name: `${this.id}:queues` });
      this.blocking.add(conn);
      try {
        let lastFull = performance.now();
        while (active()) {
          const touched = await waitForQueueEvents(conn, models, queueCursor, this.o.pollMs, this.o.prefix);
          if (!active()) break;
          if (performance.now() - lastFull >= this.o.fullPollMs) {
            lastFull = performance.now();
            await this.pollQueues(models);
          } else if (touched.length > 0) {
            await this.pollQueues(touched);
          }
        }
      } finally {
        this.blocking.delete(conn);
        conn.disconnect();
      }
    };
    const tickLoop = async (): Promise<void> => {
      while (active()) {
        await this.sleep(this.o.tickMs);
        if (!active()) break;
        await this.pruneWorkers();
        this.handle({ type: 'tick' });
      }
    };
    const guard = (p: Promise<void>, name: string): Promise<void> => p.catch((e: unknown) => {
      if (active()) this.o.log(`scheduler ${this.id}: ${name} loop failed: ${(e as Error).message}`);
      lost = true; // a broken loop ends the term; the standby loop re-acquires if the lease is still ours
    });
    this.handle({ type: 'tick' });
    await Promise.race([ended, Promise.all([guard(eventsLoop(), 'events'), guard(queueLoop(), 'queue'), guard(tickLoop(), 'tick')])]);
    lost = true;
    if (this.roleValue === 'leader') await lease.release().catch(() => undefined);
    this.state = null;
    for (const c of this.blocking) c.disconnect();
    await ended;
  }

  private async loadWorkers(): Promise<void> {
    const redis = this.redis!;
    const ids = await redis.zrange(this.keys.workers(), '0', '-1');
    if (ids.length === 0) return;
    const raws = await redis.mget(...ids.map((id) => this.keys.workerState(id)));
    ids.forEach((id, k) => {
      const raw = raws[k];
      if (raw === null) return;
      try {
        this.handle({ type: 'worker-state', state: parseWorkerState(raw) });
      } catch (e) {
        if (!(e instanceof ClusterDataError)) throw e;
        this.o.log(`scheduler ${this.id}: worker ${id}: ${e.message}`);
      }
    });
  }

  /** Workers whose state key expired (missed heartbeats) are gone: forget them in Redis and in the policy. */
  private async pruneWorkers(): Promise<void> {
    const redis = this.redis!;
    const state = this.state;
    if (!state) return;
    const ids = [...new Set([...(await redis.zrange(this.keys.workers(), '0', '-1')), ...state.workers.keys()])];
    if (ids.length === 0) return;
    const p = redis.pipeline();
    for (const id of ids) p.exists(this.keys.workerState(id));
    const res = (await p.exec()) ?? [];
    let gone = false;
    for (let k = 0; k < ids.length; k++) {
      const [err, n] = res[k] ?? [null, 1];
      if (err || Number(n) > 0) continue;
      await redis.zrem(this.keys.workers(), ids[k]);
      if (state.workers.has(ids[k])) {
        this.handle({ type: 'worker-gone', workerId: ids[k] });
        gone = true;
      }
    }
    // Its jobs stay active in BullMQ: re-read the queues it held now, so the policy sees them as orphaned at once.
    if (gone && this.state) await this.pollQueues([...this.state.queues].filter(([, q]) => q.stale).map(([m]) => m));
  }

  private async pollQueues(models: readonly string[]): Promise<void> {
    const snaps = await readQueues(this.redis!, models, this.o.prefix);
    for (const s of snaps) {
      const q = this.state?.queues.get(s.model);
      // Unchanged counts are skipped, except where the policy waits for a snapshot read after a worker let go (`stale`).
      if (q && !q.stale && q.waiting === s.waiting && q.active === s.active && q.added === s.added && q.oldestWaitingAt === s.oldestWaitingAt) continue;
      this.handle({ type: 'queue', ...s });
    }
  }
}
