// Per-request token streams: the worker appends events (XADD + EXPIRE), gateway/SDK read them (XREAD BLOCK)
// and deliver exactly one attempt's tokens to the client (see services/worker/design.md, exactly-one-outcome).
import { STREAM_EVENT_FIELD, streamEventSchema, type StreamEvent } from '../../contracts/stream.ts';
import { RequestError } from '../../contracts/errors.ts';
import { connect, type RedisClient } from './queues.ts';

/** Appends one event; the stream's TTL restarts with each write so an abandoned stream expires. */
export async function appendEvent(redis: RedisClient, key: string, ev: StreamEvent, ttlS: number): Promise<void> {
  await redis.multi().xadd(key, '*', STREAM_EVENT_FIELD, JSON.stringify(ev)).expire(key, ttlS).exec();
}

/** A pool of connections for blocking reads (one XREAD BLOCK per waiting request, reused across requests). */
export class BlockingPool {
  private readonly idle: RedisClient[] = [];
  private readonly all = new Set<RedisClient>();
  private closed = false;
  constructor(private readonly url: string, private readonly maxIdle = 128) {}

  acquire(): RedisClient {
    if (this.closed) throw new RequestError('draining');
    const c = this.idle.pop() ?? connect(this.url, { blocking: true, name: 'swapserve-stream' });
    this.all.add(c);
    return c;
  }

  /** Returns a connection; `broken` (e.g. interrupted mid-command) closes it instead. */
  release(c: RedisClient, broken = false): void {
    if (this.closed || broken || this.idle.length >= this.maxIdle) {
      this.all.delete(c);
      c.disconnect();
      return;
    }
    this.idle.push(c);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.all) c.disconnect();
    this.all.clear();
    this.idle.length = 0;
  }
}

export type RawRead = { kind: 'event'; event: StreamEvent } | { kind: 'idle' };

/**
 * Reads a request's stream from the start (so a retried client, or an Idempotency-Key replay, sees everything).
 * Yields 'idle' each `blockMs` without data, so callers can send keep-alives and check deadlines.
 * An aborted signal ends the iteration at the next wake-up; the connection is then closed, not reused.
 */
export async function* readStream(pool: BlockingPool, key: string, opts: { blockMs: number; signal?: AbortSignal }): AsyncGenerator<RawRead> {
  const conn = pool.acquire();
  let broken = false;
  let lastId = '0-0';
  const onAbort = () => {
    broken = true;
    conn.disconnect();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    while (!opts.signal?.aborted) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = (await conn.xread('COUNT', 256, 'BLOCK', opts.blockMs, 'STREAMS', key, lastId)) as [string, [string, string[]][]][] | null;
      } catch (e) {
        if (opts.signal?.aborted) return;
        broken = true;
        throw e;
      }
      if (!res || res.length === 0) {
        yield { kind: 'idle' };
        continue;
      }
      for (const [id, fields] of res[0][1]) {
        lastId = id;
        const raw = fields[1];
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw);
        } catch {
          continue;
        }
        const r = streamEventSchema.safeParse(parsed);
        if (r.success) yield { kind: 'event', event: r.data };
      }
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    pool.release(conn, broken || !!opts.signal?.aborted);
  }
}

/** The worker id of an attempt id (`<workerId>.<attemptsStarted>.<random hex>`; worker ids may hold dots). */
export function workerOfAttempt(attempt: string): string {
  return attempt.split('.').slice(0, -2).join('.');
}

/**
 * Follows one attempt of a request: the first attempt seen is delivered; a later attempt replaces it only if no
 * token was delivered yet (transparent retry), otherwise the delivery ends with a retryable `worker_lost` error
 * so the client never sees a token twice. Events of abandoned attempts are ignored. `buffered` (a non-streaming
 * request: its tokens reach the client only with the outcome) lets a later attempt always replace the current one;
 * the caller drops what it held of the old one (see `current`).
 */
export class AttemptFilter {
  private cur: string | null = null;
  private readonly abandoned = new Set<string>();
  tokensDelivered = 0;
  /** Per choice: the index of the next token to deliver. */
  private readonly nextIndex = new Map<number, number>();

  constructor(private readonly buffered = false) {}

  /** The attempt being followed (null before the first event, or after `abandon`). */
  get current(): string | null {
    return this.cur;
  }

  /** Returns the event to deliver, a worker_lost error to end with, or null to skip. */
  accept(ev: StreamEvent): StreamEvent | null {
    if (this.abandoned.has(ev.attempt)) return null;
    if (this.cur === null) this.cur = ev.attempt;
    if (ev.attempt !== this.cur) {
      if (this.tokensDelivered > 0 && !this.buffered) {
        const err = new RequestError('worker_lost', { detail: this.tokensDelivered });
        return { type: 'error', attempt: this.cur, code: err.code, message: err.message, retryable: true };
      }
      this.abandoned.add(this.cur);
      this.cur = ev.attempt;
      this.tokensDelivered = 0;
      this.nextIndex.clear();
    }
    if (ev.type === 'token') {
      // Indexes count per choice (n > 1 interleaves the choices' tokens).
      const choice = ev.choice ?? 0;
      const next = this.nextIndex.get(choice) ?? 0;
      if (ev.index < next) return null;
      this.nextIndex.set(choice, ev.index + 1);
      this.tokensDelivered += ev.index + 1 - next;
    }
    return ev;
  }

  /**
   * The worker running the current attempt was lost and its job requeued (only done while nothing reached the
   * client): its later events, if it was not dead after all, are ignored, and the next attempt is followed.
   */
  abandon(workerId: string): void {
    if (this.cur === null || workerOfAttempt(this.cur) !== workerId) return;
    this.abandoned.add(this.cur);
    this.cur = null;
    this.tokensDelivered = 0;
    this.nextIndex.clear();
  }
}
