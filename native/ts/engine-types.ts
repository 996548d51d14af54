// The engine's public request, event, option and stats types (native/ts/engine.ts runs them).
import type { EngineTuning } from './tuning.ts';

export interface GenerateRequest {
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  stop?: string[];
  // ---- OpenAI parity (issue 12); absent = off. native/src/engine/sampler.cc documents the order they apply in. ----
  /** Drop ids whose probability (after temperature) is below minP × the likeliest id's. */
  minP?: number;
  /** OpenAI: logit -= presencePenalty × (generated before) + frequencyPenalty × (times generated). */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** HF/vLLM, over prompt + generated ids: logit / p if positive, else logit × p (1 = off). */
  repetitionPenalty?: number;
  /** Token id (number or decimal string) → bias added to its logit. */
  logitBias?: Record<string, number>;
  /** The chosen id's logprob and this many top alternatives (0..20) on every token event; absent = none. */
  logprobs?: number;
  /** Independent choices (1..16) sharing one prefill; choice i > 0 is seeded from `seed` and i. */
  n?: number;
  /** Constrained decoding: one TokenConstraint per choice (native/ts/grammar builds them from a JSON schema). */
  constraint?: () => TokenConstraint;
  /** vLLM's ignore_eos: keep sampling past EOS until maxTokens (load replays of trace lengths). @defaultValue false */
  ignoreEos?: boolean;
}

/**
 * A per-sequence grammar over token ids: the engine asks for the allowed ids before each sampled token and reports
 * the id chosen. The EOS ids must be allowed exactly when the text so far is complete.
 */
export interface TokenConstraint {
  /**
   * Writes the allowed-id bitmask (bit i%32 of word i/32, ceil(vocab/32) words) at mask[offset..]. `remaining` is
   * the tokens the sequence may still sample, this one included (maxTokens − sampled): a grammar uses it to close
   * its document in time.
   */
  fillMask(mask: Uint32Array, offset: number, remaining: number): void;
  /** Advances past `id`; false if the id was not allowed (the sequence then fails). */
  accept(id: number): boolean;
  /** True when nothing may follow: the sequence ends with 'stop' without waiting for an EOS. */
  isTerminated(): boolean;
}

export interface TopLogprob { id: number; text: string; logprob: number }

export type GenerateEvent =
  | {
      type: 'token'; id: number; text: string; // text may be '' while a UTF-8 character is incomplete
      /** Which of the request's n choices (0 when n is 1). */
      choice: number;
      /** With req.logprobs: the id's logprob (log-softmax of the processed logits) and the top alternatives. */
      logprob?: number;
      topLogprobs?: TopLogprob[];
    }
  | {
      type: 'done';
      /** Choice 0's reason; with n > 1 every choice's is in finishReasons. */
      finishReason: 'stop' | 'length' | 'cancelled';
      finishReasons?: ('stop' | 'length' | 'cancelled')[];
      promptTokens: number;
      /** Tokens sampled, the EOS or stop-completing token included (summed over the choices). */
      completionTokens: number;
      prefillMs: number;
      decodeMs: number;
    };

export interface EngineOptions {
  /** Most sequences computed together in one step (1..256); more wait in FIFO order, as do sequences whose KV blocks are not free. @defaultValue 8 */
  maxBatch?: number;
  /**
   * Bytes of the paged KV cache (blocks of 16 positions), taken from the scratch pool when the engine is made.
   * @defaultValue room for maxBatch sequences of maxContext positions, capped by the scratch pool's free bytes
   * (less an estimate of the CUDA backend's activations)
   */
  kvCacheBytes?: number;
  /**
   * With kvCacheBytes unset: the largest fraction (0..1] of the scratch pool's whole budget the default KV cache
   * takes, so that several engines on one worker (several resident models) each get room. @defaultValue 1
   */
  kvShare?: number;
  /** Longest prompt + completion, tokens; also sizes the KV cache. @defaultValue min(model maxPositions, 4096) */
  maxContext?: number;
  /** Prompt tokens fed per step, over all sequences (bounds how long a new prompt stalls others' decode). @defaultValue 512 */
  prefillChunk?: number;
  /** CPU backend compute threads, 0 = all cores. @defaultValue 0 */
  threads?: number;
  /** CUDA backend tuning (native/ts/tuning.ts documents each knob and its default; the CPU backend ignores it). @defaultValue {} */
  tuning?: Partial<EngineTuning>;
  /** Where the engine's one-line warnings go (an undecodable sampled id). @defaultValue a line on stderr */
  warn?: (message: string) => void;
}

/** The engine's load, for a consumer deciding how many requests to take (the worker's BullMQ consumer). */
export interface EngineStats {
  /** Sequences admitted (holding KV blocks, computed each step). */
  active: number;
  /** Sequences queued for admission (no free maxBatch slot or KV blocks yet). */
  waiting: number;
  /** Positions per KV block. */
  blockTokens: number;
  blocksTotal: number;
  /** Blocks not committed to an admitted sequence (what admission sees). */
  blocksFree: number;
  maxBatch: number;
}
