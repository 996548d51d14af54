// The one job schema (gateway, SDK and worker) and the per-request stream events, validated with zod on both sides.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { COLD_REASONS, PATHS } from './vocab.ts';
import { MODEL_ID_RE } from './config.ts';

// ---- OpenAI-compatible request bodies (the subset we serve; unknown keys are ignored as OpenAI clients send many) ----

const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const common = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop,
  seed: z.number().int().nullish(),
  n: z.literal(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  user: z.string().max(256).nullish(),
};

const textPart = z.object({ type: z.literal('text'), text: z.string() });
export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPart).min(1)]).transform((c) => (typeof c === 'string' ? c : c.map((p) => p.text).join(''))),
  name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const chatRequestSchema = z.object({
  ...common,
  messages: z.array(chatMessageSchema).min(1).max(1024),
  max_completion_tokens: z.number().int().positive().nullish(),
});
export type ChatRequest = z.input<typeof chatRequestSchema>;

export const completionRequestSchema = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1).transform((a) => a[0])]),
  echo: z.literal(false).nullish(),
  best_of: z.literal(1).nullish(),
  logprobs: z.null().optional(),
  suffix: z.null().optional(),
});
export type CompletionRequest = z.input<typeof completionRequestSchema>;

// ---- Job data (BullMQ job, id = requestId) ----

export const samplingSchema = z.object({
  maxTokens: z.number().int().positive(),
  temperature: z.number().min(0).max(2),
  topP: z.number().gt(0).max(1),
  stop: z.array(z.string().min(1)).max(4),
  seed: z.number().int().optional(),
});
export type Sampling = z.infer<typeof samplingSchema>;

export const JOB_SCHEMA_VERSION = 1;
export const jobDataSchema = z.object({
  v: z.literal(JOB_SCHEMA_VERSION),
  requestId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  model: z.string().regex(MODEL_ID_RE),
  kind: z.enum(['chat', 'completion']),
  input: z.discriminatedUnion('type', [
    z.object({ type: z.literal('chat'), messages: z.array(z.object({ role: z.enum(['system', 'developer', 'user', 'assistant']), content: z.string() })).min(1) }),
    z.object({ type: z.literal('text'), prompt: z.string() }),
  ]),
  sampling: samplingSchema,
  /** Epoch ms at gateway receipt or SDK enqueue: TTFT and the path are measured from here. */
  arrivalMs: z.number().nonnegative(),
  source: z.enum(['gateway', 'sdk']),
  /** W3C traceparent of the request span, for the worker's child spans. */
  traceparent: z.string().max(128).optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

export function newRequestId(): string {
  return randomUUID().replaceAll('-', '');
}

/** Normalises a validated OpenAI body into job sampling parameters (clamped to the model's max_tokens). */
export function samplingFrom(body: z.output<typeof chatRequestSchema> | z.output<typeof completionRequestSchema>, kind: 'chat' | 'completion', maxTokensCap: number): Sampling {
  const asked = ('max_completion_tokens' in body ? body.max_completion_tokens : undefined) ?? body.max_tokens ?? (kind === 'completion' ? 16 : maxTokensCap);
  const stopList = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    maxTokens: Math.min(asked, maxTokensCap),
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    stop: stopList,
    ...(body.seed != null ? { seed: body.seed } : {}),
  };
}

// ---- Stream events (worker -> gateway/SDK, one Redis stream per request) ----

/** Milliseconds of each stage; absent stages are 0. ttftMs runs from arrivalMs to the first token's write. */
export const timingsSchema = z.object({
  queueMs: z.number().nonnegative(),
  loadMs: z.number().nonnegative(),
  swapMs: z.number().nonnegative(),
  prefillMs: z.number().nonnegative(),
  ttftMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
});
export type Timings = z.infer<typeof timingsSchema>;
export const ZERO_TIMINGS: Timings = { queueMs: 0, loadMs: 0, swapMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, totalMs: 0 };

const pathInfo = {
  path: z.enum(PATHS),
  coldReason: z.enum(COLD_REASONS).optional(),
};

/** `attempt` names one processing of the job; a stalled job re-run by another worker writes a new attempt. */
export const streamEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), attempt: z.string(), stage: z.enum(['queued', 'loading', 'swapping', 'prefill']), doneBytes: z.number().optional(), totalBytes: z.number().optional(), workerId: z.string().optional() }),
  z.object({ type: z.literal('token'), attempt: z.string(), index: z.number().int().nonnegative(), id: z.number().int(), text: z.string(), ...pathInfo, timings: timingsSchema.optional() }),
  z.object({ type: z.literal('done'), attempt: z.string(), finishReason: z.enum(['stop', 'length', 'cancelled']), promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative(), ...pathInfo, timings: timingsSchema, workerId: z.string() }),
  z.object({ type: z.literal('error'), attempt: z.string(), code: z.string(), message: z.string(), retryable: z.boolean() }),
]);
export type StreamEvent = z.infer<typeof streamEventSchema>;
export type TokenEvent = Extract<StreamEvent, { type: 'token' }>;
export type DoneEvent = Extract<StreamEvent, { type: 'done' }>;
