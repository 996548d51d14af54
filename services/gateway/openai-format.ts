// OpenAI response shapes (chat/completions, streamed chunks, usage), plus the swapserve figures on final ones.
import type { DoneEvent, Timings } from '../../contracts/stream.ts';
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';

export type Kind = 'chat' | 'completion';

export interface SwapserveFigures {
  path: ServePath;
  cold_reason: ColdReason | null;
  timings: { queue_ms: number; load_ms: number; swap_ms: number; prefill_ms: number; ttft_ms: number; decode_ms: number; total_ms: number };
}

export function figures(ev: { path: ServePath; coldReason?: ColdReason; timings: Timings }): SwapserveFigures {
  const t = ev.timings;
  return {
    path: ev.path,
    cold_reason: ev.coldReason ?? null,
    timings: { queue_ms: t.queueMs, load_ms: t.loadMs, swap_ms: t.swapMs, prefill_ms: t.prefillMs, ttft_ms: t.ttftMs, decode_ms: t.decodeMs, total_ms: t.totalMs },
  };
}

export const responseId = (kind: Kind, requestId: string) => `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;

const usage = (d: DoneEvent) => ({ prompt_tokens: d.promptTokens, completion_tokens: d.completionTokens, total_tokens: d.promptTokens + d.completionTokens });
const finish = (d: DoneEvent) => (d.finishReason === 'cancelled' ? 'stop' : d.finishReason);

export function fullBody(kind: Kind, requestId: string, model: string, created: number, text: string, done: DoneEvent) {
  const base = { id: responseId(kind, requestId), created, model, system_fingerprint: null, usage: usage(done), swapserve: figures(done) };
  if (kind === 'chat') {
    return { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish(done) }] };
  }
  return { ...base, object: 'text_completion', choices: [{ index: 0, text, logprobs: null, finish_reason: finish(done) }] };
}

/** One streamed chunk; `text` null with `first` gives the chat role chunk. */
export function chunk(kind: Kind, requestId: string, model: string, created: number, piece: { text?: string; role?: true; done?: DoneEvent; includeUsage?: boolean }) {
  const id = responseId(kind, requestId);
  const finishReason = piece.done ? finish(piece.done) : null;
  const extra = piece.done ? { swapserve: figures(piece.done) } : {};
  const usageField = piece.includeUsage ? { usage: null } : {};
  if (kind === 'chat') {
    const delta = piece.role ? { role: 'assistant', content: '' } : piece.done ? {} : { content: piece.text ?? '' };
    return { id, object: 'chat.completion.chunk', created, model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...usageField, ...extra };
  }
  return { id, object: 'text_completion', created, model, choices: [{ index: 0, text: piece.text ?? '', logprobs: null, finish_reason: finishReason }], ...usageField, ...extra };
}

/** The usage-only chunk sent last when stream_options.include_usage is set. */
export function usageChunk(kind: Kind, requestId: string, model: string, created: number, done: DoneEvent) {
  return {
    id: responseId(kind, requestId), object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created, model,
    choices: [], usage: usage(done), swapserve: figures(done),
  };
}
