// One job, start to outcome: validate, make the model resident, classify the path, generate, stream events.
// Every processed job writes exactly one terminal event (done or error) for its attempt; it never throws back to
// BullMQ (no automatic retry could avoid duplicate tokens) except for data that cannot name its stream.
import { randomBytes } from 'node:crypto';
import { nowMs } from '../shared/clock.ts';
import { UnrecoverableError, type Job } from 'bullmq';
import { SwapserveError, isErrorCode } from '../shared/errors.ts';
import { jobDataSchema, type StreamEvent, type Timings } from '../shared/job.ts';
import { keys, type RedisClient } from '../shared/queues.ts';
import { appendEvent } from '../shared/stream.ts';
import { jobTrace } from '../telemetry/traces.ts';
import type { ModelBackend } from './backend.ts';
import { classifyPath } from './residency.ts';
import { TierError, type TierManager } from './tiers.ts';

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
}

function toSwapserveError(e: unknown): SwapserveError {
  if (e instanceof SwapserveError) return e;
  if (e instanceof TierError) return new SwapserveError(e.code === 'out_of_memory' || e.code === 'io' ? 'model_load_failed' : 'generation_failed', { message: e.message });
  const code = (e as { code?: unknown })?.code;
  if (isErrorCode(code)) return new SwapserveError(code, { message: (e as Error).message });
  return new SwapserveError('generation_failed');
}

export async function runJob(ctx: RunnerContext, job: Job, signal?: AbortSignal): Promise<{ completionTokens: number }> {
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
  // Spans under BullMQ's consumer span (queue wait now; moves, prefill, decode as they happen) and the TTFT metrics.
  const jt = jobTrace({ operation: data.kind === 'chat' ? 'chat' : 'text_completion', model: data.model, jobId: job.id, worker: ctx.workerId, enqueuedMs: data.arrivalMs, recordMetrics: data.source !== 'gateway' });
  const key = k.stream(data.requestId);
  const emit = (ev: StreamEvent) => appendEvent(ctx.redis, key, ev, ctx.streamTtlS);
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  ctx.active.set(data.requestId, ac);
  let used = false;
  try {
    if (await ctx.redis.exists(k.cancelled(data.requestId))) {
      await emit({ type: 'error', attempt, code: 'cancelled', message: 'The request was cancelled', retryable: false });
      return { completionTokens: 0 };
    }
    if (!ctx.tiers.has(data.model)) throw new SwapserveError('model_not_found', { detail: data.model });
    ctx.tiers.use(data.model, 1, nowMs());
    used = true;
    let lastProgress = 0;
    const every = ctx.progressEveryMs ?? 250;
    const { readyMs, arrival } = await ctx.tiers.ensureOnGpu(data.model, (stage, doneBytes, totalBytes) => {
      const now = nowMs();
      if (now - lastProgress < every) return;
      lastProgress = now;
      emit({ type: 'progress', attempt, stage, doneBytes, totalBytes, workerId: ctx.workerId }).catch(() => {});
    });
    const path = classifyPath(data.arrivalMs, readyMs, arrival, ctx.startedMs);
    jt.waitedFor(arrival, ctx.tiers.info(data.model).bytes); // moves this request waited for that ran outside its trace
    const pathInfo = { path: path.path, ...(path.coldReason ? { coldReason: path.coldReason } : {}) };
    jt.setPath(path.path, path.coldReason);
    const genStart = nowMs();
    let index = 0;
    let firstAt = 0;
    // Warm: the whole wait was the queue, from arrival to this worker picking the job up.
    const queueMs = path.path === 'warm' ? Math.max(0, pickedMs - data.arrivalMs) : path.queueMs;
    let timings: Timings = { queueMs, loadMs: path.loadMs, swapMs: path.swapMs, prefillMs: 0, ttftMs: 0, decodeMs: 0, totalMs: 0 };
    for await (const ev of ctx.backend.generate(data.model, data, ac.signal)) {
      if (ev.type === 'token') {
        if (index === 0) {
          firstAt = nowMs();
          jt.prefillDone(genStart, firstAt);
          timings = { ...timings, prefillMs: firstAt - genStart, ttftMs: Math.max(0, firstAt - data.arrivalMs) };
          await emit({ type: 'token', attempt, index, id: ev.id, text: ev.text, ...pathInfo, timings });
        } else {
          await emit({ type: 'token', attempt, index, id: ev.id, text: ev.text, ...pathInfo });
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
        });
        return { completionTokens: ev.completionTokens };
      }
    }
    // The engine stopped without a done event: only cancellation does that.
    jt.end({ outcome: 'cancelled', outputTokens: index });
    await emit({ type: 'error', attempt, code: 'cancelled', message: 'The request was cancelled', retryable: false });
    return { completionTokens: index };
  } catch (e) {
    const err = ac.signal.aborted ? new SwapserveError('cancelled') : toSwapserveError(e);
    jt.end({ outcome: err.code === 'cancelled' ? 'cancelled' : 'failed', errorType: err.code });
    await emit({ type: 'error', attempt, code: err.code, message: err.toBody().error.message, retryable: err.retryable }).catch(() => {});
    return { completionTokens: 0 };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    ctx.active.delete(data.requestId);
    if (used) ctx.tiers.use(data.model, -1, nowMs());
  }
}
