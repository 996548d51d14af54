// Enqueueing requests (shared by gateway and SDK): idempotency, queue-full check, one BullMQ job per request.
import { createHash } from 'node:crypto';
import { Queue, type Telemetry } from 'bullmq';
import { jobDataSchema, type JobData } from '../../contracts/job.ts';
import { RequestError } from '../../contracts/errors.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { queueOptions, type RedisClient } from './queues.ts';
import { workerOfInstance } from '../../contracts/cluster.ts';
import type { JobCheck } from './delivery.ts';
import { workerAlive } from './liveness.ts';

export interface SubmitOptions {
  /** Client-supplied key: a repeat within `idempotencyTtlS` attaches to the first request instead of enqueueing. */
  idempotencyKey?: string;
  /** Waiting jobs at or above which the request is refused with queue_full (429). */
  maxQueued: number;
  /** @defaultValue 600 */
  idempotencyTtlS?: number;
  /**
   * Whose key it is (gateway: the API key's id, else the Idempotency-Scope header): keys of different scopes never
   * meet. @defaultValue "anonymous"
   */
  idempotencyScope?: string;
}

export interface Submitted {
  requestId: string;
  /** True when an Idempotency-Key matched an earlier request (nothing new was enqueued). */
  replay: boolean;
}

/** What makes two requests the same (the request as the job carries it, without its id and arrival time), hashed. */
function requestHash(job: JobData): string {
  return createHash('sha256').update(JSON.stringify([job.model, job.kind, job.input, job.sampling])).digest('hex').slice(0, 32);
}

export class Producer {
  private readonly queues = new Map<string, Queue>();
  private readonly k: ReturnType<typeof keys>;

  /** `telemetry`: BullMQ producer spans (telemetry/bullmq.ts `bullmqTelemetry()`), undefined for none. */
  constructor(private readonly redis: RedisClient, private readonly prefix: string, private readonly telemetry?: Telemetry) {
    this.k = keys(prefix);
  }

  queue(model: string): Queue {
    let q = this.queues.get(model);
    if (!q) {
      q = new Queue(queueName(model), queueOptions(this.redis, this.prefix, this.telemetry));
      this.queues.set(model, q);
    }
    return q;
  }

  async submit(data: JobData, opts: SubmitOptions): Promise<Submitted> {
    const job = jobDataSchema.parse(data);
    const idemKey = opts.idempotencyKey ? this.idempotencyKey(job, opts) : null;
    if (idemKey) {
      // The value is "<requestId> <hash of the request>": a repeat with another body is a conflict, never a replay.
      const hash = requestHash(job);
      const ok = await this.redis.set(idemKey, `${job.requestId} ${hash}`, 'EX', opts.idempotencyTtlS ?? 600, 'NX');
      if (ok === null) {
        const prior = await this.redis.get(idemKey);
        if (prior) {
          const [requestId, priorHash] = prior.split(' ');
          if (priorHash !== hash) throw new RequestError('idempotency_conflict', { detail: opts.idempotencyKey, param: 'Idempotency-Key' });
          return { requestId, replay: true };
        }
      }
    }
    const q = this.queue(job.model);
    const waiting = await q.getWaitingCount();
    if (waiting >= opts.maxQueued) {
      if (idemKey) await this.redis.del(idemKey);
      throw new RequestError('queue_full', { detail: job.model, retryAfterS: 1 });
    }
    await q.add('generate', job, { jobId: job.requestId });
    return { requestId: job.requestId, replay: false };
  }

  /** The Redis key of an Idempotency-Key: per scope and model, hashed (any bytes of the key stay out of Redis names). */
  private idempotencyKey(job: JobData, opts: SubmitOptions): string {
    const id = createHash('sha256').update(JSON.stringify([opts.idempotencyScope ?? 'anonymous', job.model, opts.idempotencyKey])).digest('hex');
    return this.k.idempotency(id);
  }

  /**
   * Cancels a request: a waiting job is removed; an active one is stopped by its worker (pub/sub message, plus a
   * flag for a worker that picks it up in between).
   */
  async cancel(model: string, requestId: string, ttlS = 300): Promise<void> {
    await this.redis.set(this.k.cancelled(requestId), '1', 'EX', ttlS);
    try {
      const job = await this.queue(model).getJob(requestId);
      if (job && (await job.isWaiting())) await job.remove();
    } catch {
      // Locked by a worker (active): the published cancel reaches it.
    }
    await this.redis.publish(this.k.cancelChannel, requestId);
  }

  /**
   * What became of a quiet request's job (see FollowOptions.checkJob). A job held (locked) by a worker process that
   * stopped heartbeating (cluster.ts `workerAlive`) is lost; with `requeue` and fewer than `maxRequeues` restarts
   * behind it, it goes back to its queue at once with the lock's own token (BullMQ's `moveToWait`: a worker that
   * took it in between holds another token, so nothing of its is touched), instead of waiting for the lock to
   * expire (worker.lockDurationMs) and BullMQ's stalled check.
   */
  async checkJob(model: string, requestId: string, opts: { requeue: boolean; maxRequeues: number; lostAfterMs?: number }): Promise<JobCheck> {
    const q = this.queue(model);
    const jobKey = q.toKey(requestId);
    const res = await this.redis.multi().hmget(jobKey, 'timestamp', 'finishedOn', 'failedReason', 'pb', 'ats').get(`${jobKey}:lock`).exec();
    const [timestamp, finishedOn, failedReason, pb, ats] = (res?.[0]?.[1] ?? []) as (string | null)[];
    const token = res?.[1]?.[1] as string | null | undefined;
    if (!timestamp || finishedOn || failedReason) return { state: 'gone' };
    if (!token || !pb) return { state: 'running' }; // waiting, or its lock expired (BullMQ's stalled check has it)
    if (await workerAlive(this.redis, this.prefix, pb, opts.lostAfterMs)) return { state: 'running' };
    const worker = workerOfInstance(pb);
    if (!opts.requeue || Number(ats ?? 0) > opts.maxRequeues) return { state: 'lost', worker, requeued: false };
    try {
      const job = await q.getJob(requestId);
      if (!job) return { state: 'gone' };
      await job.moveToWait(token);
    } catch {
      return { state: 'running' }; // another worker took it meanwhile (its lock has another token)
    }
    return { state: 'lost', worker, requeued: true };
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
