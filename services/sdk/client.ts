// SDK client: validates with the gateway's schemas, enqueues with the same job schema, follows the request's stream.
// Every parameter the HTTP API honours is honoured here (n, logprobs, tools, response_format, ...): the job is built by
// the same buildJob and the result's choices by the gateway's own response code (openai-format.ts).
import { nowMs } from '../../contracts/clock.ts';
import { RequestError } from '../../contracts/errors.ts';
import { follow } from '../client/delivery.ts';
import {
  buildJob, chatRequestSchema, completionRequestSchema, zodToError,
  type ChatBody, type ChatRequest, type CompletionBody, type CompletionRequest, type RequestBody,
} from '../../contracts/job.ts';
import type { Timings, TokenLogprob } from '../../contracts/stream.ts';
import { ChoiceCollector, choicesOf, outputShape, type ChatChoice, type TextChoice } from '../gateway/openai-format.ts';
import { Producer } from '../client/producer.ts';
import { connect, type RedisClient } from '../client/queues.ts';
import { DEFAULT_PREFIX, keys } from '../../contracts/queues.ts';
import { BlockingPool } from '../client/stream.ts';
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';
import { bullmqTelemetry } from '../telemetry/bullmq.ts';
import { requestSpan, type RequestSpan } from '../telemetry/request-span.ts';

export interface ClientOptions {
  /** @defaultValue env REDIS_URL, else redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** Queue prefix; must match the workers'. @defaultValue "{swapserve}" */
  prefix?: string;
  /** Known models and their limits; when given, unknown models are refused at once (404-equivalent) and `model` may name one of a model's aliases (the config's, as at the gateway). */
  models?: { id: string; aliases?: string[]; maxTokens?: number; maxQueued?: number }[];
  /** No first token within this long: `timeout` error (ms). @defaultValue 300000 */
  timeoutMs?: number;
  /** Times a request lost with its worker is put back in its queue before it fails with worker_lost (match the workers' maxStalledCount). @defaultValue 2 */
  maxRequeues?: number;
}

const DEFAULTS = { prefix: DEFAULT_PREFIX, timeoutMs: 300_000, maxRequeues: 2 };

export interface Completion {
  requestId: string;
  /** Choice 0's text as generated (a tool call's text included; `choices` has it parsed). */
  text: string;
  /** Choice 0's outcome as the worker reported it (`choices[i].finish_reason` is OpenAI's, `tool_calls` included). */
  finishReason: 'stop' | 'length' | 'cancelled';
  /**
   * Every choice in OpenAI's non-streamed shape, as POST /v1/chat/completions (ChatChoice: message with content and
   * parsed tool_calls, logprobs.content) or /v1/completions (TextChoice: text, logprobs) answers them: n of them.
   */
  choices: ChatChoice[] | TextChoice[];
  usage: { promptTokens: number; completionTokens: number };
  path: ServePath;
  coldReason?: ColdReason;
  timings: Timings;
  workerId: string;
}

export interface TokenChunk {
  /** Which of the request's n choices (0 when n is 1). */
  choice: number;
  /** Token index within its choice. */
  index: number;
  id: number;
  text: string;
  path: ServePath;
  coldReason?: ColdReason;
  /** With logprobs: this token's log probability and the top alternatives, most likely first. */
  logprob?: number;
  topLogprobs?: TokenLogprob[];
}

export interface CompletionStream extends AsyncIterable<TokenChunk> {
  requestId: string;
  /** Resolves after the last token with the whole completion; rejects with a RequestError. */
  result: Promise<Completion>;
  /** Stops the request (removes a waiting job, stops an active generation). */
  cancel(): Promise<void>;
}

export class Client {
  private readonly opts: Required<Omit<ClientOptions, 'models'>> & Pick<ClientOptions, 'models'>;
  private readonly redis: RedisClient;
  private readonly producer: Producer;
  private readonly pool: BlockingPool;
  private readonly k: ReturnType<typeof keys>;
  private closed = false;

  constructor(options: ClientOptions = {}) {
    this.opts = { ...DEFAULTS, redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', ...options };
    this.redis = connect(this.opts.redisUrl, { name: 'swapserve-sdk' });
    this.producer = new Producer(this.redis, this.opts.prefix, bullmqTelemetry());
    this.pool = new BlockingPool(this.opts.redisUrl);
    this.k = keys(this.opts.prefix);
  }

  /** Chat or text completion, awaited whole. The request is a chat one if it has `messages`. */
  async complete(request: ChatRequest | CompletionRequest): Promise<Completion> {
    // Nothing reaches the caller before the outcome: a retry after a worker loss may replace a lost attempt.
    const s = await this.start(request, true);
    for await (const _ of s) {
      // drain: the result collects the text
    }
    return s.result;
  }

  /** Starts a request and returns its token iterator (with `result` and `cancel`). */
  async stream(request: ChatRequest | CompletionRequest): Promise<CompletionStream> {
    return this.start(request, false);
  }

  private async start(request: ChatRequest | CompletionRequest, buffered: boolean): Promise<CompletionStream> {
    if (this.closed) throw new RequestError('draining');
    const req = this.validate(request);
    const model = this.opts.models?.find((m) => m.id === req.body.model) ?? this.opts.models?.find((m) => m.aliases?.includes(req.body.model));
    if (this.opts.models && !model) throw new RequestError('model_not_found', { detail: req.body.model, param: 'model' });
    const arrivalMs = nowMs();
    const data = buildJob(req, { model: model?.id ?? req.body.model, // Without the models' config the worker applies the model's maxTokens (and refuses above it).
    maxTokensCap: model?.maxTokens ?? Number.MAX_SAFE_INTEGER, arrivalMs, source: 'sdk' });
    // The request's span (when the host process traces): the enqueue runs inside it, the worker's spans join it.
    const span = requestSpan({ operation: req.kind === 'chat' ? 'chat' : 'text_completion', model: data.model, maxTokens: data.sampling.maxTokens, startMs: arrivalMs, recordMetrics: false });
    const { requestId } = await span.enqueue(() => this.producer.submit(data, { maxQueued: model?.maxQueued ?? 1_000_000 }));
    const collector = new ChoiceCollector(outputShape(req, data.sampling.n ?? 1, data.sampling.logprobs ?? null));
    return this.follow(data.model, requestId, span, buffered, collector);
  }

  private follow(model: string, requestId: string, span: RequestSpan, buffered: boolean, collector: ChoiceCollector): CompletionStream {
    const ac = new AbortController();
    let resolve!: (c: Completion) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<Completion>((res, rej) => { resolve = res; reject = rej; });
    result.catch(() => {}); // the caller may only iterate; the iterator rethrows
    const self = this;
    let text = '';
    let cancelled = false;
    async function* iterate(): AsyncGenerator<TokenChunk> {
      try {
        for await (const ev of span.follow(follow(self.pool, self.k.stream(requestId), {
          blockMs: 1000, firstTokenTimeoutMs: self.opts.timeoutMs, signal: ac.signal, buffered,
          checkJob: (requeue) => self.producer.checkJob(model, requestId, { requeue, maxRequeues: self.opts.maxRequeues }),
        }))) {
          if (ev.type === 'token') {
            const choice = ev.choice ?? 0;
            if (choice === 0) text += ev.text;
            collector.add(ev);
            yield {
              choice, index: ev.index, id: ev.id, text: ev.text, path: ev.path, ...(ev.coldReason ? { coldReason: ev.coldReason } : {}),
              ...(ev.logprob !== undefined ? { logprob: ev.logprob, topLogprobs: ev.topLogprobs ?? [] } : {}),
            };
          } else if (ev.type === 'done') {
            resolve({
              requestId, text, finishReason: ev.finishReason, choices: choicesOf(collector, ev), usage: { promptTokens: ev.promptTokens, completionTokens: ev.completionTokens },
              path: ev.path, ...(ev.coldReason ? { coldReason: ev.coldReason } : {}), timings: ev.timings, workerId: ev.workerId,
            });
            return;
          } else if (ev.type === 'error') {
            throw ev.error;
          }
        }
        // The stream ended without an outcome: only cancel() does that; the iterator ends quietly then.
        const err = new RequestError('cancelled');
        reject(err);
        if (!cancelled) throw err;
      } catch (e) {
        // The client retries a lost stream itself: stop the re-run attempt instead of computing it for no one.
        if (e instanceof RequestError && e.code === 'worker_lost') self.producer.cancel(model, requestId).catch(() => {});
        reject(e);
        throw e;
      } finally {
        if (!ac.signal.aborted) ac.abort();
      }
    }
    const gen = iterate();
    return {
      requestId,
      result,
      [Symbol.asyncIterator]: () => gen,
      cancel: async () => {
        cancelled = true;
        ac.abort();
        await this.producer.cancel(model, requestId);
        reject(new RequestError('cancelled'));
      },
    };
  }

  private validate(request: ChatRequest | CompletionRequest): RequestBody {
    const isChat = typeof request === 'object' && request !== null && 'messages' in request;
    const r = isChat ? chatRequestSchema.safeParse(request) : completionRequestSchema.safeParse(request);
    if (!r.success) throw zodToError(r.error);
    return isChat ? { kind: 'chat', body: r.data as ChatBody } : { kind: 'completion', body: r.data as CompletionBody };
  }

  /** Idempotent: closes queues and connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.producer.close(), this.pool.close()]);
    this.redis.disconnect();
  }
}
