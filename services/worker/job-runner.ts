// One job, start to outcome: validate, make the model resident, classify the path, generate, stream events.
// Every processed job writes exactly one terminal event (done or error) for its attempt; it never throws back to
// BullMQ (no automatic retry could avoid duplicate tokens) except for data that cannot name its stream.
import { randomBytes } from 'node:crypto';
import { nowMs } from '../../contracts/clock.ts';
import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { RequestError, isErrorCode } from '../../contracts/errors.ts';
import { jobDataSchema } from '../../contracts/job.ts';
import type { StreamEvent, Timings } from '../../contracts/stream.ts';
import { keys } from '../../contracts/queues.ts';
import type { RedisClient } from '../client/queues.ts';
import { appendEvent } from '../client/stream.ts';
import type { Logger } from '../config/log.ts';
import { jobTrace } from '../telemetry/traces.ts';
import type { ModelBackend } from './backend.ts';
import { classifyPath, type PathDecision } from './residency.ts';
import type { ColdReason } from '../../contracts/vocab.ts';
import { TierError, type GpuReady, type TierManager } from './tiers.ts';

export interface RunnerContext {
  workerId: string;
  startedMs: number;
  backend: ModelBackend;
  tiers: TierManager;
  /** Non-blocking connection for stream writes. */
  redis: RedisClient;
  prefix: string;
  streamTtlS: number;
  /** Active requests by id, so a published cancel can abort them. */
  active: Map<string, AbortController>;
  /** Progress events at most this often (ms). @defaultValue 250 */
  progressEveryMs?: number;
  /** Called when a job found the backend unhealthy (a sticky device error): the worker drains and exits non-zero. */
  onUnhealthy?: () => void;
  /** Where a failed generation is logged, once, with its cause. @defaultValue none */
  log?: Logger;
}

/**
 * Puts a job this (unhealthy) worker accepted back in its queue for another worker, instead of failing it: its
 * lock's token moves it to wait, and BullMQ's WaitingError tells the consumer the job was not finished here. A
 * client that had tokens of this attempt gets a retryable worker_lost (the reader's rule); others a transparent retry.
 */
async function putBack(ctx: RunnerContext, job: Job, token: string | undefined): Promise<never> {
  ctx.onUnhealthy?.();
  if (token) await job.moveToWait(token);
  throw new WaitingError();
}

/** An error's message and its causes' (a RequestError wraps the engine's, which carries the native message). */
function causeChain(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, i = 0; c instanceof Error && i < 4; c = c.cause, i++) if (parts.at(-1) !== c.message) parts.push(c.message);
  return parts.join(' <- ').slice(0, 1000);
}

/** Tier errors that mean the model could not be brought in (its file, its size, the disk): 503 model_load_failed. */
const LOAD_FAILURES: ReadonlySet<TierError['code']> = new Set(['out_of_memory', 'io', 'invalid']);

function toSwapserveError(e: unknown, model: string): RequestError {
  if (e instanceof RequestError) return e;
  if (e instanceof TierError) return LOAD_FAILURES.has(e.code) ? new RequestError('model_load_failed', { detail: model, cause: e }) : new RequestError('generation_failed', { cause: e });
  const code = (e as { code?: unknown })?.code;
  if (isErrorCode(code)) return new RequestError(code, { message: (e as Error).message });
  return new RequestError('generation_failed');
}

/** The move a job waited for failed: the model could not be brought in (unless it was already a typed error). */
function moveError(model: string, e: unknown): RequestError {
  if (e instanceof RequestError) return e;
  if (e instanceof TierError && !LOAD_FAILURES.has(e.code)) return toSwapserveError(e, model);
  return new RequestError('model_load_failed', { detail: model, cause: e });
}

export async function runJob(ctx: RunnerContext, job: Job, signal?: AbortSignal, token?: string): Promise<{ completionTokens: number }> {
  const pickedMs = nowMs();
  const parsed = jobDataSchema.safeParse(job.data);
  const k = keys(ctx.prefix);
  const attempt = `${ctx.workerId}.${job.attemptsStarted}.${randomBytes(3).toString('hex')}`;
  if (!parsed.success) {
    const rid = (job.data as { requestId?: unknown } | null)?.requestId;
    if (typeof rid === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(rid)) {
      await appendEvent(ctx.redis, k.stream(rid), { type: 'error', attempt, code: 'invalid_request', message: 'job data failed validation', retryable: false }, ctx.streamTtlS);
      return { completionTokens: 0 };
    }
    throw new UnrecoverableError('job data failed validation and names no request');
  }
  const data = parsed.data;
  // A sticky device error came first: this worker is draining; the job is another worker's to run.
  if (!ctx.backend.healthy()) return putBack(ctx, job, token);
  // Spans under BullMQ's consumer span (queue wait now; moves, prefill, decode as they happen) and the TTFT metrics.
  const jt = jobTrace({ operation: data.kind === 'chat' ? 'chat' : 'text_completion', model: data.model, jobId: job.id, worker: ctx.workerId, enqueuedMs: data.arrivalMs, recordMetrics: data.source !== 'gateway' });
  const key = k.stream(data.requestId);
  const emit = (ev: StreamEvent) => appendEvent(ctx.redis, key, ev, ctx.streamTtlS);
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  ctx.active.set(data.requestId, ac);
  let used = false;
  /** Set when the move this job started under failed (the generation is aborted; this is its error). */
  let moveFailed: { e: unknown } | null = null;
  let ready: Promise<GpuReady> | null = null;
  try {
    if (await ctx.redis.exists(k.cancelled(data.requestId))) {
      await emit({ type: 'error', attempt, code: 'cancelled', message: 'The request was cancelled', retryable: false });
      return { completionTokens: 0 };
    }
    if (!ctx.tiers.has(data.model)) throw new RequestError('model_not_found', { detail: data.model });
    ctx.tiers.use(data.model, 1, nowMs());
    used = true;
    let lastProgress = 0;
    const every = ctx.progressEveryMs ?? 250;
    // Execute-while-loading: generation starts once the model is on the GPU or a move there is under way (the
    // engine's prefill waits per layer); the path is classified once the move has ended, before the first token.
    ({ ready } = await ctx.tiers.startOnGpu(data.model, (stage, doneBytes, totalBytes) => {
      const now = nowMs();
      if (now - lastProgress < every) return;
      lastProgress = now;
      emit({ type: 'progress', attempt, stage, doneBytes, totalBytes, workerId: ctx.workerId }).catch(() => {});
    }));
    ready.catch((e: unknown) => { moveFailed = { e }; ac.abort(); });
    const genStart = nowMs();
    let decided: { pathInfo: { path: PathDecision['path']; coldReason?: ColdReason }; timings: Timings; readyMs: number } | null = null;
    const decide = async () => {
      if (decided) return decided;
      const { readyMs, arrival } = await (ready as Promise<GpuReady>);
      const path = classifyPath(data.arrivalMs, readyMs, arrival, ctx.startedMs);
      jt.waitedFor(arrival, ctx.tiers.info(data.model).bytes); // moves this request waited for that ran outside its trace
      jt.setPath(path.path, path.coldReason);
      // Warm: the whole wait was the queue, from arrival to this worker picking the job up.
      const queueMs = path.path === 'warm' ? Math.max(0, pickedMs - data.arrivalMs) : path.queueMs;
      decided = {
        pathInfo: { path: path.path, ...(path.coldReason ? { coldReason: path.coldReason } : {}) },
        timings: { queueMs, loadMs: path.loadMs, swapMs: path.swapMs, prefillMs: 0, ttftMs: 0, decodeMs: 0, totalMs: 0 },
        readyMs,
      };
      return decided;
    };
    let index = 0;
    /** Tokens so far of each choice (n > 1): a token event's index counts within its choice. */
    const perChoice: number[] = [];
    let firstAt = 0;
    let timings: Timings | null = null;
    for await (const ev of ctx.backend.generate(data.model, data, ac.signal)) {
      const { pathInfo, timings: base, readyMs } = await decide();
      timings ??= base;
      if (ev.type === 'token') {
        const choice = ev.choice ?? 0;
        const ci = perChoice[choice] ?? 0;
        perChoice[choice] = ci + 1;
        const extra = {
          ...(choice > 0 || (data.sampling.n ?? 1) > 1 ? { choice } : {}),
          ...(ev.logprob !== undefined ? { logprob: ev.logprob, topLogprobs: ev.topLogprobs ?? [] } : {}),
        };
        if (index === 0) {
          firstAt = nowMs();
          // Prefill counts from when the weights had all landed (or generation started, if later): the part of it
          // that ran under the move is hidden in the move's time, so queue + load + swap + prefill never exceed TTFT.
          const prefillFrom = Math.min(firstAt, Math.max(genStart, readyMs));
          jt.prefillDone(prefillFrom, firstAt);
          timings = { ...timings, prefillMs: firstAt - prefillFrom, ttftMs: Math.max(0, firstAt - data.arrivalMs) };
          await emit({ type: 'token', attempt, index: ci, id: ev.id, text: ev.text, ...pathInfo, timings, ...extra });
        } else {
          await emit({ type: 'token', attempt, index: ci, id: ev.id, text: ev.text, ...pathInfo, ...extra });
        }
        index++;
      } else {
        const end = nowMs();
        if (firstAt) jt.decodeDone(firstAt, end, ev.completionTokens);
        jt.end({ outcome: ac.signal.aborted ? 'cancelled' : 'completed', inputTokens: ev.promptTokens, outputTokens: ev.completionTokens }, end);
        timings = { ...timings, decodeMs: firstAt ? end - firstAt : 0, totalMs: end - data.arrivalMs };
        await emit({
          type: 'done', attempt, finishReason: ac.signal.aborted ? 'cancelled' : ev.finishReason,
          promptTokens: ev.promptTokens, completionTokens: ev.completionTokens, ...pathInfo, timings, workerId: ctx.workerId,
          ...(ev.finishReasons ? { finishReasons: ev.finishReasons } : {}),
        });
        return { completionTokens: ev.completionTokens };
      }
    }
    if (moveFailed) throw (moveFailed as { e: unknown }).e;
    // The engine stopped without a done event: only cancellation does that.
    jt.end({ outcome: 'cancelled', outputTokens: index });
    await emit({ type: 'error', attempt, code: 'cancelled', message: 'The request was cancelled', retryable: false });
    return { completionTokens: index };
  } catch (e) {
    // A generation that failed under a move may have failed because of it (the weights never landed): wait for the
    // move's outcome so that the error names the cause.
    if (ready && !moveFailed && (!(e instanceof RequestError) || e.code === 'generation_failed')) {
      await ready.then(() => {}, (me: unknown) => { moveFailed ??= { e: me }; });
    }
    if (!ctx.backend.healthy()) {
      jt.end({ outcome: 'failed', errorType: 'worker_lost' });
      // The one line naming the device error this job met (its cause chain: the native message with the CUDA error).
      const mf = moveFailed as { e: unknown } | null;
      ctx.log?.error({ requestId: data.requestId, model: data.model, cause: causeChain(e), ...(mf ? { moveCause: causeChain(mf.e) } : {}) },
        'the device became unusable under this job: put back in its queue for another worker');
      return putBack(ctx, job, token);
    }
    const failed = moveFailed as { e: unknown } | null;
    const err = failed ? moveError(data.model, failed.e) : ac.signal.aborted ? new RequestError('cancelled') : toSwapserveError(e, data.model);
    jt.end({ outcome: err.code === 'cancelled' ? 'cancelled' : 'failed', errorType: err.code });
    // The one log line of this failure, with the cause the client's error body leaves out (5xx bodies carry none).
    const fields = { requestId: data.requestId, model: data.model, workerId: ctx.workerId, code: err.code, err: failed ? failed.e : e };
    if (err.code === 'cancelled') ctx.log?.info({ requestId: data.requestId, model: data.model }, 'generation cancelled');
    else ctx.log?.error(fields, failed ? 'generation failed: the model could not be moved to the GPU' : 'generation failed');
    await emit({ type: 'error', attempt, code: err.code, message: err.toBody().error.message, retryable: err.retryable, ...(err.param ? { param: err.param } : {}) }).catch(() => {});
    return { completionTokens: 0 };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ctx.active.delete(data.requestId);
    if (used) ctx.tiers.use(data.model, -1, nowMs());
  }
}
