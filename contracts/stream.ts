// The per-request stream's wire format (worker -> gateway/SDK): event schemas, timings, and the entry's one field.
import { z } from 'zod';
import { COLD_REASONS, PATHS } from './vocab.ts';

/** Each stream entry has one field, `e`, holding one StreamEvent as JSON (XADD key * e <json>). */
export const STREAM_EVENT_FIELD = 'e';

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

const finishReason = z.enum(['stop', 'length', 'cancelled']);
export const tokenLogprobSchema = z.object({ id: z.number().int(), text: z.string(), logprob: z.number() });
export type TokenLogprob = z.infer<typeof tokenLogprobSchema>;

/** `attempt` names one processing of the job; a stalled job re-run by another worker writes a new attempt. */
export const streamEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), attempt: z.string(), stage: z.enum(['queued', 'loading', 'swapping', 'prefill']), doneBytes: z.number().optional(), totalBytes: z.number().optional(), workerId: z.string().optional() }),
  z.object({
    type: z.literal('token'), attempt: z.string(), index: z.number().int().nonnegative(), id: z.number().int(), text: z.string(), ...pathInfo, timings: timingsSchema.optional(),
    /** Which of the request's n choices this token belongs to (absent = 0). `index` counts tokens within the choice. */
    choice: z.number().int().nonnegative().optional(),
    /** Natural-log probability of this token under the sampling distribution's logits (present when sampling.logprobs is set). */
    logprob: z.number().optional(),
    /** The top alternatives, most likely first (sampling.logprobs of them). */
    topLogprobs: z.array(tokenLogprobSchema).optional(),
  }),
  z.object({
    type: z.literal('done'), attempt: z.string(), finishReason: finishReason, promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative(), ...pathInfo, timings: timingsSchema, workerId: z.string(),
    /** With n > 1: each choice's finish reason, by choice index (finishReason is then choice 0's); completionTokens is the sum. */
    finishReasons: z.array(finishReason).optional(),
  }),
  z.object({
    type: z.literal('error'), attempt: z.string(), code: z.string(), message: z.string(), retryable: z.boolean(),
    /** The request parameter at fault (OpenAI error `param`), e.g. max_tokens for context_length_exceeded. */
    param: z.string().max(256).optional(),
  }),
]);
export type StreamEvent = z.infer<typeof streamEventSchema>;
export type TokenEvent = Extract<StreamEvent, { type: 'token' }>;
export type DoneEvent = Extract<StreamEvent, { type: 'done' }>;
