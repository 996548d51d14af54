// The one job schema (gateway, SDK and worker): OpenAI request bodies and the BullMQ job data, validated with zod on both sides.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { MODEL_ID_RE } from './model-id.ts';

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
  // ---- issue 12 (OpenAI parity). All optional: absent = off, so older jobs parse unchanged. ----
  /** Keep only the k most likely tokens (0 or absent = off). */
  topK: z.number().int().nonnegative().optional(),
  /** Drop tokens whose probability is below minP × the top token's (0 or absent = off). */
  minP: z.number().min(0).max(1).optional(),
  /** OpenAI semantics: subtract once per token id already generated (presence) / per occurrence (frequency). */
  presencePenalty: z.number().min(-2).max(2).optional(),
  frequencyPenalty: z.number().min(-2).max(2).optional(),
  /** transformers/vLLM semantics over prompt + output ids: logit / p if positive else logit × p (1 = off). */
  repetitionPenalty: z.number().gt(0).max(2).optional(),
  /** Token id (decimal string, as OpenAI sends it) → bias added to its logit, in [-100, 100]. */
  logitBias: z.record(z.string().regex(/^\d{1,7}$/), z.number().min(-100).max(100)).optional(),
  /** Return the chosen token's logprob and this many top alternatives (0..20); absent = no logprobs. */
  logprobs: z.number().int().min(0).max(20).optional(),
  /** Independent choices sharing one prefill (1..16); absent = 1. */
  n: z.number().int().min(1).max(16).optional(),
  /** vLLM's `ignore_eos` extension: keep sampling past EOS until maxTokens (load benchmarks replaying trace lengths). */
  ignoreEos: z.boolean().optional(),
  /** Constrained decoding: every sampled token keeps the output a prefix of a text the grammar accepts. */
  constraint: z.discriminatedUnion('type', [
    z.object({ type: z.literal('json_object') }),
    z.object({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()), strict: z.boolean().optional() }),
  ]).optional(),
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
export function samplingFrom(body: ChatBody | CompletionBody, kind: 'chat' | 'completion', maxTokensCap: number): Sampling {
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

export type ChatBody = z.output<typeof chatRequestSchema>;
export type CompletionBody = z.output<typeof completionRequestSchema>;
/** A validated request body with its kind (the discriminant the job's `input` is built from). */
export type RequestBody = { kind: 'chat'; body: ChatBody } | { kind: 'completion'; body: CompletionBody };

/**
 * The one place a job object is made (gateway and SDK): schema version, a fresh request id, the input and the
 * sampling parameters (max_tokens clamped to `maxTokensCap`). `model` is the registered id the request resolved to.
 */
export function buildJob(req: RequestBody, opts: { model: string; maxTokensCap: number; arrivalMs: number; source: JobData['source'] }): JobData {
  return {
    v: JOB_SCHEMA_VERSION,
    requestId: newRequestId(),
    model: opts.model,
    kind: req.kind,
    input: req.kind === 'chat'
      ? { type: 'chat', messages: req.body.messages.map((m) => ({ role: m.role, content: m.content })) }
      : { type: 'text', prompt: req.body.prompt },
    sampling: samplingFrom(req.body, req.kind, opts.maxTokensCap),
    arrivalMs: opts.arrivalMs,
    source: opts.source,
  };
}
