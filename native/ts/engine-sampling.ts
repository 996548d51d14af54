// The sampler's per-step arrays (native/ts/engine-native.ts NativeBatch) built from the batch's sequences, and the
// logprobs read back from them: pure functions over a sequence's sampling state, used by the engine's loop.
import type { NativeBatch } from './engine-native.ts';
import type { TokenConstraint, TopLogprob } from './engine-types.ts';

export const MAX_TOP_LOGPROBS = 20; // kMaxTopLogprobs in native/src/engine/backend.h

/** The optional fields of a NativeBatch that the sampler reads or writes. */
export type SamplingExtras = Partial<Omit<NativeBatch, 'seqs' | 'counts' | 'positions' | 'tokens' | 'temperature' | 'topP' | 'topK' | 'rng'>>;

/** What of a sequence the sampling arrays read. */
export interface SamplingRow {
  prompt: Int32Array;
  /** Tokens in the KV cache (= next position). */
  pos: number;
  maxTokens: number;
  completion: number;
  minP: number;
  presence: number;
  frequency: number;
  repetition: number;
  bias: { ids: Int32Array; vals: Float32Array } | null;
  /** With a penalty: id → times generated, prompt ids (0) included when repetitionPenalty is on. */
  hist: Map<number, number> | null;
  numLogprobs: number; // -1 = none
  constraint: TokenConstraint | null;
}

/**
 * The step's optional sampling arrays (native/ts/engine-native.ts NativeBatch): only those some sequence of the
 * batch uses, so a plain batch is exactly what it was. Masks are computed only for rows whose sample is kept.
 */
export function samplingExtras(batch: { seq: SamplingRow; tokens: Int32Array }[], forks: number[], V: number, tokenizerVocab: number): SamplingExtras {
  const B = batch.length;
  const x: SamplingExtras = {};
  if (forks.length) x.forks = Int32Array.from(forks);
  const limit = Math.min(tokenizerVocab, V);
  if (limit < V) x.vocabLimit = limit; // issue 11: padded embedding rows are never sampled
  const seqs = batch.map((b) => b.seq);
  if (seqs.some((s) => s.minP > 0)) x.minP = Float32Array.from(seqs, (s) => s.minP);
  if (seqs.some((s) => s.hist)) {
    x.presencePenalty = Float32Array.from(seqs, (s) => s.presence);
    x.frequencyPenalty = Float32Array.from(seqs, (s) => s.frequency);
    x.repetitionPenalty = Float32Array.from(seqs, (s) => s.repetition);
    const off = new Int32Array(B + 1);
    seqs.forEach((s, b) => { off[b + 1] = off[b] + (s.hist?.size ?? 0); });
    const ids = new Int32Array(off[B]), counts = new Int32Array(off[B]);
    seqs.forEach((s, b) => { let i = off[b]; for (const [id, c] of s.hist ?? []) { ids[i] = id; counts[i++] = c; } });
    Object.assign(x, { histOff: off, histIds: ids, histCounts: counts });
  }
  if (seqs.some((s) => s.bias)) {
    const off = new Int32Array(B + 1);
    seqs.forEach((s, b) => { off[b + 1] = off[b] + (s.bias?.ids.length ?? 0); });
    const ids = new Int32Array(off[B]), vals = new Float32Array(off[B]);
    seqs.forEach((s, b) => { if (s.bias) { ids.set(s.bias.ids, off[b]); vals.set(s.bias.vals, off[b]); } });
    Object.assign(x, { biasOff: off, biasIds: ids, biasVals: vals });
  }
  const sampled = batch.map((b) => b.seq.pos + b.tokens.length >= b.seq.prompt.length);
  if (seqs.some((s, b) => s.constraint && sampled[b])) {
    const words = Math.ceil(V / 32);
    const maskOff = new Int32Array(B).fill(-1);
    let m = 0;
    seqs.forEach((s, b) => { if (s.constraint && sampled[b]) maskOff[b] = words * m++; });
    const mask = new Uint32Array(words * m);
    seqs.forEach((s, b) => { if (maskOff[b] >= 0) s.constraint!.fillMask(mask, maskOff[b], s.maxTokens - s.completion); });
    Object.assign(x, { maskOff, mask });
  }
  if (seqs.some((s) => s.numLogprobs >= 0)) {
    x.numLogprobs = Int32Array.from(seqs, (s) => s.numLogprobs);
    x.logprob = new Float32Array(B);
    x.topIds = new Int32Array(B * MAX_TOP_LOGPROBS);
    x.topLogprobs = new Float32Array(B * MAX_TOP_LOGPROBS);
  }
  return x;
}

/** Row b's logprob and top alternatives from the step's arrays (null where it asked for none). */
export function logprobsOf(x: SamplingExtras, b: number, tokenText: (id: number) => string): { logprob: number; top: TopLogprob[] } | null {
  const k = x.numLogprobs![b];
  if (k < 0) return null;
  const top: TopLogprob[] = [];
  for (let j = 0; j < k; j++) {
    const id = x.topIds![b * MAX_TOP_LOGPROBS + j];
    if (id < 0) break;
    top.push({ id, text: tokenText(id), logprob: x.topLogprobs![b * MAX_TOP_LOGPROBS + j] });
  }
  return { logprob: x.logprob![b], top };
}
