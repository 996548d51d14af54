// Following a request to its one outcome: reads its stream, filters attempts, enforces the first-token deadline.
import { SwapserveError, isErrorCode } from '../../contracts/errors.ts';
import type { DoneEvent, StreamEvent, TokenEvent } from '../../contracts/stream.ts';
import { AttemptFilter, readStream, type BlockingPool } from './stream.ts';

export type Delivered =
  | { type: 'idle' }
  | Extract<StreamEvent, { type: 'progress' }>
  | TokenEvent
  | DoneEvent
  | { type: 'error'; error: SwapserveError };

export interface FollowOptions {
  /** Wake-up period without events (ms): yields 'idle' for keep-alives. */
  blockMs: number;
  /** No token (or end) within this long of the start: ends with a `timeout` error (ms). */
  firstTokenTimeoutMs: number;
  /** No event at all for this long after the first token: ends with a `timeout` error (ms). @defaultValue firstTokenTimeoutMs */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Asks whether the job still exists and is not failed; called while the stream is quiet, at most every
   * `jobCheckMs`. A job that BullMQ itself failed (a worker died more than maxStalledCount times) writes no
   * stream event, so this is how its client hears of it: one quiet period after a bad answer, the delivery ends
   * with a retryable worker_lost error (the period lets an outcome written just before the job left arrive).
   */
  jobAlive?: () => Promise<boolean>;
  /** @defaultValue 2000 */
  jobCheckMs?: number;
}

/** Yields the request's deliverable events; always ends with exactly one done or error (unless aborted). */
export async function* follow(pool: BlockingPool, streamKey: string, opts: FollowOptions): AsyncGenerator<Delivered> {
  const filter = new AttemptFilter();
  const start = Date.now();
  let lastEventAt = start;
  let sawToken = false;
  let lastCheck = start;
  let suspect = false;
  for await (const r of readStream(pool, streamKey, { blockMs: opts.blockMs, signal: opts.signal })) {
    const now = Date.now();
    if (r.kind === 'idle' && opts.jobAlive) {
      if (suspect) {
        yield { type: 'error', error: new SwapserveError('worker_lost', { message: 'The job failed after its worker was lost repeatedly; retry the request' }) };
        return;
      }
      if (now - lastCheck >= (opts.jobCheckMs ?? 2000)) {
        lastCheck = now;
        suspect = !(await opts.jobAlive().catch(() => true));
      }
    }
    if (r.kind === 'idle') {
      const limit = sawToken ? (opts.idleTimeoutMs ?? opts.firstTokenTimeoutMs) : opts.firstTokenTimeoutMs;
      const since = sawToken ? lastEventAt : start;
      if (now - since >= limit) {
        yield { type: 'error', error: new SwapserveError('timeout', { detail: limit }) };
        return;
      }
      yield { type: 'idle' };
      continue;
    }
    lastEventAt = now;
    suspect = false;
    const ev = filter.accept(r.event);
    if (!ev) continue;
    if (ev.type === 'error') {
      const code = isErrorCode(ev.code) ? ev.code : 'generation_failed';
      yield { type: 'error', error: new SwapserveError(code, { message: ev.message }) };
      return;
    }
    if (ev.type === 'token') sawToken = true;
    yield ev;
    if (ev.type === 'done') return;
  }
}

/** Server-Timing header value from stream timings (ms). */
export function serverTiming(t: { queueMs: number; loadMs: number; swapMs: number; prefillMs: number; ttftMs: number }): string {
  const f = (n: number) => n.toFixed(2);
  return `queue;dur=${f(t.queueMs)}, load;dur=${f(t.loadMs)}, swap;dur=${f(t.swapMs)}, prefill;dur=${f(t.prefillMs)}, ttft;dur=${f(t.ttftMs)}`;
}
