// Following a request to its one outcome: reads its stream, filters attempts, enforces the first-token deadline.
import { RequestError, isErrorCode } from '../../contracts/errors.ts';
import type { DoneEvent, StreamEvent, TokenEvent } from '../../contracts/stream.ts';
import { AttemptFilter, readStream, type BlockingPool } from './stream.ts';

export type Delivered =
  | { type: 'idle' }
  | Extract<StreamEvent, { type: 'progress' }>
  | TokenEvent
  | DoneEvent
  | { type: 'error'; error: RequestError };

/** What a check of a quiet request's job found (Producer.checkJob). */
export type JobCheck =
  /** Waiting, or held by a worker that still heartbeats. */
  | { state: 'running' }
  /** Removed, or failed by BullMQ itself (a worker died more than maxStalledCount times): no outcome will come. */
  | { state: 'gone' }
  /** Held by a worker process that stopped heartbeating; `requeued`: the job was put back for another worker. */
  | { state: 'lost'; worker: string; requeued: boolean };

export interface FollowOptions {
  /** Wake-up period without events (ms): yields 'idle' for keep-alives. */
  blockMs: number;
  /** No token (or end) within this long of the start: ends with a `timeout` error (ms). */
  firstTokenTimeoutMs: number;
  /** No event at all for this long after the first token: ends with a `timeout` error (ms). @defaultValue firstTokenTimeoutMs */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Checks the request's job while its stream is quiet, at most every `checkEveryMs`; `requeue` is true while
   * nothing has reached the client, so a job held by a lost worker may be put back (a transparent retry). A lost
   * worker with tokens delivered (or past the requeue limit) ends the delivery with a retryable `worker_lost` error
   * at once; a job `gone` with no outcome ends it one wake-up later (so an outcome written just before the job left
   * still arrives).
   */
  checkJob?: (requeue: boolean) => Promise<JobCheck>;
  /** @defaultValue 500 */
  checkEveryMs?: number;
  /**
   * Hold tokens until the outcome and yield them with it (a non-streaming request): a retry after a worker loss
   * then replaces what the lost attempt had produced, since none of it reached the client. @defaultValue false
   */
  buffered?: boolean;
}

/** Yields the request's deliverable events; always ends with exactly one done or error (unless aborted). */
export async function* follow(pool: BlockingPool, streamKey: string, opts: FollowOptions): AsyncGenerator<Delivered> {
  const buffered = opts.buffered ?? false;
  const filter = new AttemptFilter(buffered);
  const checkEvery = opts.checkEveryMs ?? 500;
  const start = Date.now();
  let lastEventAt = start;
  let lastIdle = start;
  let sawToken = false;
  let lastCheck = start;
  let suspect = false;
  /** Tokens of the current attempt held back (buffered mode). */
  let held: TokenEvent[] = [];
  // Wake at least every checkEvery (to check the job in time), but yield 'idle' only every blockMs.
  for await (const r of readStream(pool, streamKey, { blockMs: Math.min(opts.blockMs, checkEvery), signal: opts.signal })) {
    const now = Date.now();
    if (r.kind === 'idle') {
      if (suspect) {
        yield { type: 'error', error: new RequestError('worker_lost', { message: 'The job failed after its worker was lost repeatedly; retry the request' }) };
        return;
      }
      if (opts.checkJob && now - lastEventAt >= checkEvery && now - lastCheck >= checkEvery) {
        lastCheck = now;
        const c = await opts.checkJob(filter.tokensDelivered === 0 || buffered).catch((): JobCheck => ({ state: 'running' }));
        if (c.state === 'gone') suspect = true;
        else if (c.state === 'lost' && c.requeued) {
          filter.abandon(c.worker);
          held = [];
        } else if (c.state === 'lost') {
          yield { type: 'error', error: new RequestError('worker_lost', { detail: filter.tokensDelivered }) };
          return;
        }
      }
      const limit = sawToken ? (opts.idleTimeoutMs ?? opts.firstTokenTimeoutMs) : opts.firstTokenTimeoutMs;
      const since = sawToken ? lastEventAt : start;
      if (now - since >= limit) {
        yield { type: 'error', error: new RequestError('timeout', { detail: limit }) };
        return;
      }
      if (now - lastIdle >= opts.blockMs) {
        lastIdle = now;
        yield { type: 'idle' };
      }
      continue;
    }
    lastEventAt = now;
    suspect = false;
    const before = filter.current;
    const ev = filter.accept(r.event);
    if (before !== null && filter.current !== before) held = []; // a retry replaced the attempt (buffered)
    if (!ev) continue;
    if (ev.type === 'error') {
      const code = isErrorCode(ev.code) ? ev.code : 'generation_failed';
      yield { type: 'error', error: new RequestError(code, { message: ev.message, ...(ev.param ? { param: ev.param } : {}) }) };
      return;
    }
    if (ev.type === 'token') {
      sawToken = true;
      if (buffered) {
        held.push(ev);
        continue;
      }
    }
    if (ev.type === 'done') yield* held;
    yield ev;
    if (ev.type === 'done') return;
  }
}

/** Server-Timing header value from stream timings (ms). */
export function serverTiming(t: { queueMs: number; loadMs: number; swapMs: number; prefillMs: number; ttftMs: number }): string {
  const f = (n: number) => n.toFixed(2);
  return `queue;dur=${f(t.queueMs)}, load;dur=${f(t.loadMs)}, swap;dur=${f(t.swapMs)}, prefill;dur=${f(t.prefillMs)}, ttft;dur=${f(t.ttftMs)}`;
}
