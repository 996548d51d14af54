// The one job schema (gateway, SDK and worker): OpenAI request bodies and the BullMQ job data, validated with zod on both sides.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { RequestError } from './errors.ts';
import { MODEL_ID_RE } from './model-id.ts';

// ---- OpenAI-compatible request bodies ----
// Every body object is strict: a key we do not implement is refused (400 `unsupported_parameter`, `param` = the key)
// rather than ignored. Accepted without effect, because they change nothing a client can observe in our answer:
// `user`, `metadata`, `store: false`, `service_tier: 'auto' | 'default'`, `prompt_cache_key`, `safety_identifier`,
// `modalities: ['text']`, an assistant message's `refusal`. `parallel_tool_calls: false` is honoured (at most the
// first call the model writes is returned; a forced tool choice always gives exactly one). Values we do not implement (`store: true`, `echo: true`,
// `best_of > 1`, a `suffix`, non-text content parts, token-id prompts) are refused by `refuseUnsupported`; parameters
// that would cut or contradict grammar-constrained output (`stop`, `ignore_eos`) by `refuseConstrainedConflicts`.
// README "OpenAI parameters" lists both.

const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();
const logitBias = z.record(z.string().regex(/^\d{1,7}$/, 'keys are token ids (decimal strings)'), z.number().min(-100).max(100))
  .refine((r) => Object.keys(r).length <= 1024, 'at most 1024 entries').nullish();
const jsonSchemaFormat = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  description: z.string().max(4096).optional(),
  schema: z.record(z.string(), z.unknown()).optional(),
  strict: z.boolean().nullish(),
}).strict();
export const responseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z.object({ type: z.literal('json_schema'), json_schema: jsonSchemaFormat }).strict(),
]);
const common = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop,
  seed: z.number().int().nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).strict().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: logitBias,
  response_format: responseFormatSchema.nullish(),
  // vLLM's sampling extensions.
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(2).nullish(),
  ignore_eos: z.boolean().nullish(),
  // Accepted, no effect (see above).
  user: z.string().max(256).nullish(),
  metadata: z.record(z.string().max(64), z.string().max(512)).refine((r) => Object.keys(r).length <= 16, 'at most 16 keys').nullish(),
  store: z.boolean().nullish(),
  service_tier: z.string().max(32).nullish(),
  prompt_cache_key: z.string().max(1024).nullish(),
  safety_identifier: z.string().max(256).nullish(),
};

/** A content part: only `text` is served; other types are refused by refuseUnsupported (param names the part). */
const contentPart = z.object({ type: z.string().max(64), text: z.string().optional() }).passthrough();
const content = z.union([z.string(), z.array(contentPart).min(1).max(1024)]);
const toolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(64), arguments: z.string().max(1 << 20) }).strict(),
}).strict();
export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: content.nullish(),
  name: z.string().max(256).optional(),
  tool_calls: z.array(toolCall).max(128).nullish(),
  tool_call_id: z.string().min(1).max(256).optional(),
  refusal: z.string().nullish(),
}).strict();
export type ChatMessage = z.infer<typeof chatMessageSchema>;

const TOOL_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().regex(TOOL_NAME_RE, 'a function name is 1-64 of a-z, A-Z, 0-9, _ and -'),
    description: z.string().max(8192).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }).strict(),
}).strict();
export type Tool = z.infer<typeof toolSchema>;
export const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string().regex(TOOL_NAME_RE) }).strict() }).strict(),
]);
export type ToolChoice = z.infer<typeof toolChoiceSchema>;

export const chatRequestSchema = z.object({
  ...common,
  messages: z.array(chatMessageSchema).min(1).max(1024),
  max_completion_tokens: z.number().int().positive().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  modalities: z.array(z.string().max(16)).max(4).nullish(),
}).strict();
export type ChatRequest = z.input<typeof chatRequestSchema>;

export const completionRequestSchema = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.union([z.string(), z.number(), z.array(z.number())])).min(1)]),
  echo: z.boolean().nullish(),
  best_of: z.number().int().positive().nullish(),
  /** Top alternatives per token (OpenAI allows 5; vLLM, like us, 20). */
  logprobs: z.number().int().min(0).max(20).nullish(),
  suffix: z.string().nullish(),
}).strict();
export type CompletionRequest = z.input<typeof completionRequestSchema>;

const refuse = (param: string, detail: string): never => {
  throw new RequestError('unsupported_parameter', { detail, param });
};
const bad = (param: string, detail: string): never => {
  throw new RequestError('invalid_request', { detail, param });
};

/** A body the request schemas refuse, as the 400 both the gateway and the SDK answer (param in OpenAI's spelling). */
export function zodToError(error: z.ZodError): RequestError {
  const issue = error.issues[0];
  // OpenAI's spelling of a parameter path: messages[0].content.
  const path = issue.path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
  // A key the strict schemas do not know: a parameter we do not implement (refused, never ignored).
  if (issue.code === 'unrecognized_keys') {
    const param = [path, issue.keys[0]].filter(Boolean).join('.');
    return new RequestError('unsupported_parameter', { detail: `\`${param}\``, param });
  }
  const param = path || undefined;
  return new RequestError('invalid_request', { detail: `${param ?? 'body'}: ${issue.message}`, param });
}

/**
 * Values a strict schema lets through but that we do not implement or that contradict each other: throws a 400
 * RequestError naming the parameter (`unsupported_parameter` for what we do not serve, `invalid_request` for a
 * request that is wrong whoever serves it).
 */
export function refuseUnsupported(req: RequestBody): void {
  const b = req.body;
  if (b.store === true) refuse('store', '`store: true` (stored completions are not kept)');
  if (b.service_tier != null && b.service_tier !== 'auto' && b.service_tier !== 'default') refuse('service_tier', `\`service_tier: ${b.service_tier}\``);
  if (b.stream_options && !b.stream) bad('stream_options', 'stream_options is only allowed with stream: true');
  if (req.kind === 'completion') {
    const c = req.body;
    if (c.echo) refuse('echo', '`echo: true`');
    if (c.best_of != null && c.best_of !== (c.n ?? 1)) refuse('best_of', '`best_of` other than n');
    if (c.suffix) refuse('suffix', 'a `suffix` (fill-in-the-middle)');
    if (Array.isArray(c.prompt)) {
      if (c.prompt.some((p) => typeof p !== 'string')) refuse('prompt', 'token-id prompts (send text)');
      if (c.prompt.length !== 1) refuse('prompt', 'more than one prompt per request (send one request per prompt)');
    }
    return;
  }
  const c = req.body;
  if (c.modalities && c.modalities.some((m) => m !== 'text')) refuse('modalities', `modalities other than text (${c.modalities.join(', ')})`);
  if (c.top_logprobs != null && !c.logprobs) bad('top_logprobs', 'top_logprobs needs logprobs: true');
  c.messages.forEach((m, i) => {
    if (Array.isArray(m.content)) {
      m.content.forEach((p, j) => {
        if (p.type !== 'text') refuse(`messages[${i}].content[${j}].type`, `content parts of type \`${p.type}\` (only text)`);
        if (typeof p.text !== 'string') bad(`messages[${i}].content[${j}].text`, 'a text part needs a string `text`');
      });
    }
    if (m.content == null && !(m.role === 'assistant' && m.tool_calls?.length)) bad(`messages[${i}].content`, `a ${m.role} message needs content`);
    if (m.tool_calls?.length && m.role !== 'assistant') bad(`messages[${i}].tool_calls`, 'only assistant messages carry tool_calls');
    if (m.role === 'tool' && !m.tool_call_id) bad(`messages[${i}].tool_call_id`, 'a tool message needs the tool_call_id it answers');
    if (m.tool_call_id !== undefined && m.role !== 'tool') bad(`messages[${i}].tool_call_id`, 'only tool messages carry tool_call_id');
  });
  const names = new Set<string>();
  c.tools?.forEach((t, i) => {
    if (names.has(t.function.name)) bad(`tools[${i}].function.name`, `two tools are named ${t.function.name}`);
    names.add(t.function.name);
  });
  const choice = c.tool_choice;
  if (choice != null && choice !== 'none' && !c.tools?.length) bad('tool_choice', 'tool_choice needs tools');
  if (typeof choice === 'object' && choice && !names.has(choice.function.name)) bad('tool_choice', `no tool is named ${choice.function.name}`);
  const forced = choice === 'required' || typeof choice === 'object';
  if (forced && c.response_format && c.response_format.type !== 'text') refuse('response_format', 'a response_format together with a forced tool_choice');
}

/**
 * Parameters that would cut or contradict grammar-constrained output (response_format json_object / json_schema, a
 * forced tool_choice): such output is one JSON document that the grammar ends when it is complete, and the API
 * promises it parses (and validates). Throws a 400 naming the parameter; gateway, SDK (buildJob) and worker (on the
 * job read back) call it alike. README "OpenAI parameters" states the rule.
 * - `stop`: a stop string may occur inside the document (`}`, a newline, a word of a string value) and would cut it
 *   mid-JSON. Stop strings apply to free text only; constrained output has none, so they are refused, not ignored.
 * - `ignore_eos`: the document ends when it is complete; sampling on to max_tokens is impossible.
 * Others keep the output valid and are served: logit_bias (the grammar's mask comes first: a forbidden id stays
 * forbidden at +100, a needed one is still sampled at -100 where nothing else fits), n and seed (a grammar state per
 * choice), penalties and top-k/top-p/min-p (over the allowed ids), and max_tokens (the worker refuses one below the
 * shortest document, naming max_tokens; at or above it the budget-aware masks close the document in time).
 */
export function refuseConstrainedConflicts(s: Sampling): void {
  const c = s.constraint;
  if (!c) return;
  const what = c.type === 'json_schema' && c.from === 'tools'
    ? 'a forced tool_choice (required or a named function: the output is the call\'s JSON)'
    : 'response_format json_object / json_schema';
  if (s.stop.length) refuse('stop', `\`stop\` together with ${what} (a stop string would cut the JSON mid-document; the output ends when the document is complete: remove stop)`);
  if (s.ignoreEos) refuse('ignore_eos', `\`ignore_eos\` together with ${what} (the output ends when the document is complete)`);
}

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
    z.object({
      type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()), strict: z.boolean().optional(),
      /** The request parameter the schema came from (a 400 for it names this param). @defaultValue 'response_format' */
      from: z.enum(['response_format', 'tools']).optional(),
    }),
  ]).optional(),
  /**
   * The max_tokens the client set itself (before the model's cap): prompt + it beyond the context is a 400 naming
   * both numbers (as vLLM does); absent, maxTokens is a default and shrinks to what the context leaves.
   */
  maxTokensAsked: z.number().int().positive().optional(),
});
export type Sampling = z.infer<typeof samplingSchema>;

/** A chat message as the worker renders it through the model's template (content flattened to text). */
export const jobMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.string(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  tool_call_id: z.string().optional(),
});
export type JobMessage = z.infer<typeof jobMessageSchema>;

export const JOB_SCHEMA_VERSION = 1;
export const jobDataSchema = z.object({
  v: z.literal(JOB_SCHEMA_VERSION),
  requestId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  model: z.string().regex(MODEL_ID_RE),
  kind: z.enum(['chat', 'completion']),
  input: z.discriminatedUnion('type', [
    z.object({
      type: z.literal('chat'), messages: z.array(jobMessageSchema).min(1),
      /** Tools rendered into the prompt by the model's template (absent with tool_choice none). */
      tools: z.array(toolSchema).optional(),
    }),
    z.object({ type: z.literal('text'), prompt: z.string() }),
  ]),
  sampling: samplingSchema,
  /** Epoch ms at gateway receipt or SDK enqueue: TTFT and the path are measured from here. */
  arrivalMs: z.number().nonnegative(),
  source: z.enum(['gateway', 'sdk']),
  /** W3C traceparent of the request span, for the worker's child spans. */
  traceparent: z.string().max(128).optional(),
  /** The client's own `x-request-id`, for the worker's log lines (the job's id stays requestId). */
  clientRequestId: z.string().max(128).optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

export function newRequestId(): string {
  return randomUUID().replaceAll('-', '');
}

/** The JSON schema of one call object `{"name": ..., "arguments": {...}}` to one of `tools`. */
export function toolCallSchema(tools: Tool[]): Record<string, unknown> {
  const one = (t: Tool) => ({
    type: 'object',
    properties: { name: { type: 'string', enum: [t.function.name] }, arguments: t.function.parameters ?? { type: 'object' } },
    required: ['name', 'arguments'],
    additionalProperties: false,
  });
  return tools.length === 1 ? one(tools[0]) : { anyOf: tools.map(one) };
}

/** How a chat request uses its tools: none (not rendered), auto (parsed from the output) or forced (constrained). */
export function toolMode(body: ChatBody): { mode: 'none' | 'auto' | 'forced'; tools: Tool[] } {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? (tools.length ? 'auto' : 'none');
  if (!tools.length || choice === 'none') return { mode: 'none', tools: [] };
  if (choice === 'auto') return { mode: 'auto', tools };
  if (choice === 'required') return { mode: 'forced', tools };
  return { mode: 'forced', tools: tools.filter((t) => t.function.name === choice.function.name) };
}

/**
 * Normalises a validated OpenAI body into job sampling parameters. Without max_tokens a chat gets the model's
 * `maxTokens` (the worker shrinks it to what the context leaves); an explicit max_tokens above it is a 400 naming
 * the parameter (OpenAI refuses one above a model's output limit too), never a silent clamp.
 */
export function samplingFrom(body: ChatBody | CompletionBody, kind: 'chat' | 'completion', maxTokensCap: number): Sampling {
  const fromCompletionTokens = 'max_completion_tokens' in body && body.max_completion_tokens != null;
  const explicit = fromCompletionTokens ? (body as ChatBody).max_completion_tokens : body.max_tokens;
  if (explicit != null && explicit > maxTokensCap) throw maxTokensAboveCap(explicit, maxTokensCap, fromCompletionTokens ? 'max_completion_tokens' : 'max_tokens');
  const asked = explicit ?? (kind === 'completion' ? 16 : maxTokensCap);
  const stopList = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const s: Sampling = {
    maxTokens: Math.min(asked, maxTokensCap),
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    stop: stopList,
    ...(body.seed != null ? { seed: body.seed } : {}),
  };
  if (explicit != null) s.maxTokensAsked = explicit;
  if (body.top_k != null && body.top_k > 0) s.topK = body.top_k;
  if (body.min_p != null && body.min_p > 0) s.minP = body.min_p;
  if (body.presence_penalty) s.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty) s.frequencyPenalty = body.frequency_penalty;
  if (body.repetition_penalty != null && body.repetition_penalty !== 1) s.repetitionPenalty = body.repetition_penalty;
  if (body.logit_bias && Object.keys(body.logit_bias).length) s.logitBias = body.logit_bias;
  if (body.n != null && body.n > 1) s.n = body.n;
  if (body.ignore_eos) s.ignoreEos = true;
  if (kind === 'chat') {
    const c = body as ChatBody;
    if (c.logprobs) s.logprobs = c.top_logprobs ?? 0;
  } else {
    const c = body as CompletionBody;
    if (c.logprobs != null) s.logprobs = c.logprobs;
  }
  const rf = body.response_format;
  if (rf?.type === 'json_object') s.constraint = { type: 'json_object' };
  else if (rf?.type === 'json_schema') {
    s.constraint = rf.json_schema.schema
      ? { type: 'json_schema', schema: rf.json_schema.schema, ...(rf.json_schema.strict != null ? { strict: rf.json_schema.strict } : {}) }
      : { type: 'json_object' };
  }
  if (kind === 'chat') {
    const t = toolMode(body as ChatBody);
    if (t.mode === 'forced') s.constraint = { type: 'json_schema', schema: toolCallSchema(t.tools), strict: true, from: 'tools' };
  }
  return s;
}

export type ChatBody = z.output<typeof chatRequestSchema>;
export type CompletionBody = z.output<typeof completionRequestSchema>;
/** A validated request body with its kind (the discriminant the job's `input` is built from). */
export type RequestBody = { kind: 'chat'; body: ChatBody } | { kind: 'completion'; body: CompletionBody };

const textOf = (c: ChatMessage['content']): string => (c == null ? '' : typeof c === 'string' ? c : c.map((p) => p.text ?? '').join(''));

/** A chat message as the job carries it. */
export function jobMessage(m: ChatMessage): JobMessage {
  return {
    role: m.role, content: textOf(m.content),
    ...(m.name !== undefined ? { name: m.name } : {}),
    ...(m.tool_calls?.length ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id !== undefined ? { tool_call_id: m.tool_call_id } : {}),
  };
}

/** An explicit max_tokens above the model's configured `maxTokens`: 400 naming the parameter (gateway, SDK, worker). */
export function maxTokensAboveCap(asked: number, cap: number, param = 'max_tokens'): RequestError {
  return new RequestError('invalid_request', { detail: `${param} is ${asked}, but this model serves at most ${cap} tokens per completion (its maxTokens)`, param });
}

/**
 * The one place a job object is made (gateway and SDK): schema version, a fresh request id, the input and the
 * sampling parameters (max_tokens at most `maxTokensCap`, else a 400). `model` is the registered id the request resolved to.
 * Throws a 400 RequestError for what the request may not ask (refuseUnsupported, refuseConstrainedConflicts), for the
 * gateway and the SDK alike.
 */
export function buildJob(req: RequestBody, opts: { model: string; maxTokensCap: number; arrivalMs: number; source: JobData['source']; clientRequestId?: string }): JobData {
  refuseUnsupported(req);
  let input: JobData['input'];
  if (req.kind === 'chat') {
    const { tools } = toolMode(req.body);
    input = { type: 'chat', messages: req.body.messages.map(jobMessage), ...(tools.length ? { tools: req.body.tools! } : {}) };
  } else {
    input = { type: 'text', prompt: typeof req.body.prompt === 'string' ? req.body.prompt : String(req.body.prompt[0]) };
  }
  const sampling = samplingFrom(req.body, req.kind, opts.maxTokensCap);
  refuseConstrainedConflicts(sampling);
  return {
    v: JOB_SCHEMA_VERSION,
    requestId: newRequestId(),
    model: opts.model,
    kind: req.kind,
    input,
    sampling,
    arrivalMs: opts.arrivalMs,
    source: opts.source,
    ...(opts.clientRequestId ? { clientRequestId: opts.clientRequestId } : {}),
  };
}
