// Enqueueing requests (shared by gateway and SDK): idempotency, queue-full check, one BullMQ job per request.
import { Queue, type Telemetry } from 'bullmq';
import { jobDataSchema, type JobData } from '../../contracts/job.ts';
import { SwapserveError } from '../../contracts/errors.ts';
import { keys, queueName } from '../../contracts/queues.ts';
import { queueOptions, type RedisClient } from './queues.ts';

export interface SubmitOptions {
  /** Client-supplied key: a repeat within `idempotencyTtlS` attaches to the first request instead of enqueueing. */
  idempotencyKey?: string;
  /** Waiting jobs at or above which the request is refused with queue_full (429). */
  maxQueued: number;
  /** @defaultValue 600 */
  idempotencyTtlS?: number;
}

export interface Submitted {
  requestId: string;
  /** True when an Idempotency-Key matched an earlier request (nothing new was enqueued). */
  replay: boolean;
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
    if (opts.idempotencyKey) {
      const idemKey = this.k.idempotency(`${job.model}:${opts.idempotencyKey}`);
      const ok = await this.redis.set(idemKey, job.requestId, 'EX', opts.idempotencyTtlS ?? 600, 'NX');
      if (ok === null) {
        const prior = await this.redis.get(idemKey);
        if (prior) return { requestId: prior, replay: true };
      }
    }
    const q = this.queue(job.model);
    const waiting = await q.getWaitingCount();
    if (waiting >= opts.maxQueued) {
      if (opts.idempotencyKey) await this.redis.del(this.k.idempotency(`${job.model}:${opts.idempotencyKey}`));
      throw new SwapserveError('queue_full', { detail: job.model, retryAfterS: 1 });
    }
    await q.add('generate', job, { jobId: job.requestId });
    return { requestId: job.requestId, replay: false };
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

  /** False once the request's job is gone or failed (BullMQ's own failure leaves no stream event). */
  async jobAlive(model: string, requestId: string): Promise<boolean> {
    const job = await this.queue(model).getJob(requestId);
    if (!job) return false;
    return !(await job.isFailed());
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
