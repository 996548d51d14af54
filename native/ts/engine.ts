// The engine: generation over a resident model, with concurrent requests batched into one forward pass per step.
//
// All sequence bookkeeping (positions, prefill progress, which sequences are active, stop rules, text) lives
// here on the event loop; each step's compute runs on a native thread (NativeEngine.step). See
// native/src/engine/design.md for the threads, the batching loop and who owns what.
import { randomBytes } from 'node:crypto';

import type { ModelSource } from './types.ts';
import { EngineError, fromNative } from './engine-errors.ts';
import { buildModelDesc, isEngineAddon, loadEngineAddon, type EngineAddon, type NativeEngine } from './engine-native.ts';
import type { Runtime } from './runtime.ts';
import { StopMatcher } from './stop-strings.ts';
import { SpmTokenizer, TokenizerError, type Tokenizer, type TokenDecoder } from './tokenizer/index.ts';
import { engineTuningSchema, type EngineTuning } from './tuning.ts';

export { EngineError, isEngineError } from './engine-errors.ts';
export { ENGINE_ERROR_CODES, type EngineErrorCode } from '../../contracts/errors.ts';

export interface GenerateRequest {
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  stop?: string[];
  /** vLLM's ignore_eos: keep sampling past EOS until maxTokens (load replays of trace lengths). @defaultValue false */
  ignoreEos?: boolean;
}

export type GenerateEvent =
  | { type: 'token'; id: number; text: string } // text may be '' while a UTF-8 character is incomplete
  | {
      type: 'done';
      finishReason: 'stop' | 'length' | 'cancelled';
      promptTokens: number;
      /** Tokens sampled, the EOS or stop-completing token included. */
      completionTokens: number;
      prefillMs: number;
      decodeMs: number;
    };

export interface EngineOptions {
  /** Sequences computed together in one step; more wait in FIFO order. @defaultValue 8 */
  maxBatch?: number;
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

const DEFAULTS = { maxBatch: 8, prefillChunk: 512, threads: 0, tuning: {}, warn: (m: string) => { process.stderr.write(`swapserve engine: ${m}\n`); } };
const MAX_STOPS = 16;
const MAX_STOP_CHARS = 256;

type Resolved = Required<Omit<EngineOptions, 'tuning'>> & { tuning: EngineTuning };

/** A queue of events for one consumer; the engine loop pushes, the generate() iterator pulls. */
class Channel<T> {
  private items: T[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  private error: unknown = null;

  push(v: T): void { this.items.push(v); this.wake(); }
  end(): void { this.ended = true; this.wake(); }
  fail(e: unknown): void { this.error = e; this.ended = true; this.wake(); }
  private wake(): void { const w = this.waiter; this.waiter = null; w?.(); }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length) yield this.items.shift() as T;
      if (this.error !== null) throw this.error;
      if (this.ended) return;
      await new Promise<void>((r) => { this.waiter = r; });
    }
  }
}

interface Seq {
  id: number;
  prompt: Int32Array;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  rng: bigint;
  /** Tokens in the KV cache (= next position). */
  pos: number;
  /** The token to feed next once the prompt is in (the last sampled one). */
  last: number;
  completion: number;
  text: TokenDecoder;
  /** SentencePiece: drop the dummy-prefix space of the first text after a BOS-only/BOS-final prompt. */
  stripSpace: boolean;
  stop: StopMatcher;
  ignoreEos: boolean;
  out: Channel<GenerateEvent>;
  cancelled: boolean;
  admittedAt: number;
  firstTokenAt: number;
}

export class Engine {
  private readonly waiting: Seq[] = [];
  private readonly active: Seq[] = [];
  private nextSeqId = 1;
  private loopRunning: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private readonly eos: Set<number>;
  /** Whether an undecodable sampled id was reported yet (once per engine: a padded vocabulary would flood the log). */
  private warnedUndecodable = false;

  private constructor(
    private readonly native: NativeEngine,
    readonly source: ModelSource,
    private readonly tokenizer: Tokenizer,
    readonly options: Resolved,
  ) {
    this.eos = new Set(source.config.eosTokenIds);
  }

  /**
   * An engine over a model the runtime holds (or is swapping in: the first prefill waits per layer). Throws
   * EngineError('native', nativeCode not_resident) when the model is neither on the compute tier
   * nor moving there.
   */
  static async create(runtime: Runtime, modelId: string, source: ModelSource, tokenizer: Tokenizer, opts?: EngineOptions): Promise<Engine> {
    const addon: unknown = runtime.addon;
    if (!isEngineAddon(addon)) throw new EngineError('native', "the runtime's addon has no Engine class: rebuild it with `npm run build:native`");
    return Engine.make(addon, runtime.native, modelId, source, tokenizer, opts, {});
  }

  /**
   * An engine over a host copy of the model's arena, without the weights runtime (CPU backend only): for tests,
   * benchmarks and `swapserve generate`. scratchBudgetBytes bounds its KV caches.
   */
  static async createOnHostArena(arena: Uint8Array, source: ModelSource, tokenizer: Tokenizer, opts?: EngineOptions & { scratchBudgetBytes?: number }): Promise<Engine> {
    if (arena.byteLength !== source.layout.totalBytes) {
      throw new EngineError('invalid_request', `Expected an arena of ${source.layout.totalBytes} bytes but received ${arena.byteLength}`);
    }
    return Engine.make(loadEngineAddon(), arena, source.path, source, tokenizer, opts, {
      scratchBudgetBytes: opts?.scratchBudgetBytes ?? 1 << 30,
      numGroups: source.layout.groups.length,
    });
  }

  private static make(addon: EngineAddon, target: object, modelId: string, source: ModelSource, tokenizer: Tokenizer,
    opts: EngineOptions | undefined, extra: { scratchBudgetBytes?: number; numGroups?: number }): Engine {
    const o: Resolved = {
      ...DEFAULTS,
      maxContext: Math.min(source.config.maxPositions, 4096),
      ...Object.fromEntries(Object.entries(opts ?? {}).filter(([, v]) => v !== undefined)),
    } as Resolved;
    for (const k of ['maxBatch', 'maxContext', 'prefillChunk'] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new EngineError('invalid_request', `Expected a positive integer for ${k} but received ${o[k]}`);
    }
    if (o.maxContext > source.config.maxPositions) {
      throw new EngineError('invalid_request', `Expected maxContext <= the model's ${source.config.maxPositions} positions but received ${o.maxContext}`);
    }
    if (!Number.isInteger(o.threads) || o.threads < 0) throw new EngineError('invalid_request', `Expected an integer >= 0 for threads but received ${o.threads}`);
    const tuning = engineTuningSchema.safeParse(o.tuning);
    if (!tuning.success) throw new EngineError('invalid_request', `Invalid engine tuning: ${tuning.error.issues.map((i) => `${i.path.join('.') || 'tuning'}: ${i.message}`).join('; ')}`);
    o.tuning = tuning.data;
    const desc = buildModelDesc(source);
    const stack = new Error().stack;
    let native: NativeEngine;
    try {
      native = new addon.Engine(target, modelId, desc, { maxBatch: o.maxBatch, maxContext: o.maxContext, threads: o.threads, tuning: o.tuning, ...extra });
    } catch (e) {
      throw fromNative(e, stack);
    }
    return new Engine(native, source, tokenizer, o);
  }

  /** Sequences admitted or waiting. */
  get activeSequences(): number { return this.active.length + this.waiting.length; }

  /** 'cpu' or 'cuda'. */
  get backend(): string { return this.native.backend ?? 'closed'; }

  /**
   * Generates a completion of `req.prompt` (token ids, BOS included where the model wants one). Concurrent
   * calls are batched. Throws EngineError at once for a malformed request or one that does not fit maxContext.
   * Aborting `signal`, or leaving the iteration early, ends the sequence at the next step ('cancelled').
   */
  generate(req: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateEvent> {
    if (this.closing) throw new EngineError('closed', 'the engine was closed');
    this.validate(req);
    const seq: Seq = {
      id: this.nextSeqId++,
      prompt: Int32Array.from(req.prompt),
      maxTokens: req.maxTokens,
      temperature: req.temperature,
      topP: req.topP,
      topK: req.topK,
      rng: req.seed === undefined ? randomBytes(8).readBigUInt64LE() : BigInt.asUintN(64, BigInt(req.seed)),
      pos: 0,
      last: -1,
      completion: 0,
      text: this.tokenizer.decodeStream(),
      stripSpace: this.tokenizer instanceof SpmTokenizer && req.prompt[req.prompt.length - 1] === this.tokenizer.bosId,
      stop: new StopMatcher(req.stop ?? []),
      ignoreEos: req.ignoreEos === true,
      out: new Channel<GenerateEvent>(),
      cancelled: false,
      admittedAt: 0,
      firstTokenAt: 0,
    };
    if (this.nextSeqId > 0x7fffffff) this.nextSeqId = 1;
    const onAbort = () => this.cancel(seq);
    if (signal?.aborted) seq.cancelled = true;
    signal?.addEventListener('abort', onAbort, { once: true });
    this.waiting.push(seq);
    this.kick();
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* seq.out.drain();
        } finally {
          signal?.removeEventListener('abort', onAbort);
          self.cancel(seq); // no-op once finished
        }
      },
    };
  }

  /** Cancels every sequence, waits for the running step, releases KV caches and the weights lease. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        for (const s of [...this.waiting, ...this.active]) s.cancelled = true;
        this.kick();
        try {
          await this.loopRunning;
        } finally {
          this.native.close();
        }
      })();
    }
    return this.closing;
  }

  private validate(req: GenerateRequest): void {
    const bad = (msg: string): never => { throw new EngineError('invalid_request', msg); };
    const V = this.source.config.vocabSize;
    if (typeof req !== 'object' || req === null) bad(`Expected a GenerateRequest object but received ${req === null ? 'null' : typeof req}`);
    if (!Array.isArray(req.prompt) || req.prompt.length === 0) bad('Expected a non-empty array of token ids for prompt');
    for (const t of req.prompt) if (!Number.isInteger(t) || t < 0 || t >= V) bad(`Expected token ids in [0, ${V}) for prompt but received ${t}`);
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) bad(`Expected an integer >= 1 for maxTokens but received ${req.maxTokens}`);
    if (!Number.isFinite(req.temperature) || req.temperature < 0) bad(`Expected a number >= 0 for temperature but received ${req.temperature}`);
    if (!Number.isFinite(req.topP) || req.topP <= 0 || req.topP > 1) bad(`Expected a number in (0, 1] for topP but received ${req.topP}`);
    if (!Number.isInteger(req.topK) || req.topK < 0) bad(`Expected an integer >= 0 for topK but received ${req.topK}`);
    if (req.seed !== undefined && !Number.isSafeInteger(req.seed)) bad(`Expected a safe integer for seed but received ${req.seed}`);
    if (req.stop !== undefined) {
      if (!Array.isArray(req.stop) || req.stop.length > MAX_STOPS) bad(`Expected at most ${MAX_STOPS} stop strings`);
      for (const s of req.stop) if (typeof s !== 'string' || s.length === 0 || s.length > MAX_STOP_CHARS) bad(`Expected stop strings of 1..${MAX_STOP_CHARS} characters`);
    }
    const need = req.prompt.length + req.maxTokens;
    if (need > this.options.maxContext) {
      throw new EngineError('context_length_exceeded',
        `prompt (${req.prompt.length} tokens) + maxTokens (${req.maxTokens}) = ${need} exceeds the context of ${this.options.maxContext} tokens`);
    }
  }

  private cancel(seq: Seq): void {
    seq.cancelled = true;
    const i = this.waiting.indexOf(seq);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      this.finish(seq, 'cancelled');
    }
  }

  private kick(): void {
    if (this.loopRunning || (this.active.length === 0 && this.waiting.length === 0)) return;
    // Start on a microtask: requests made in the same tick (a burst) join the first step together.
    this.loopRunning = Promise.resolve().then(() => this.loop()).finally(() => {
      this.loopRunning = null;
      this.kick(); // a request may have arrived as the loop ended
    });
  }

  /** The batching loop: one native step at a time over every active sequence. */
  private async loop(): Promise<void> {
    while (this.active.length || this.waiting.length) {
      while (this.active.length < this.options.maxBatch && this.waiting.length) {
        const s = this.waiting.shift() as Seq;
        s.admittedAt = performance.now();
        this.active.push(s);
      }
      for (const s of [...this.active]) if (s.cancelled) this.retire(s, 'cancelled');
      if (this.active.length === 0) continue;
      // Decoding sequences feed their last token; prompts feed chunks within the step's prefill budget.
      const batch: { seq: Seq; tokens: Int32Array }[] = [];
      let budget = this.options.prefillChunk;
      for (const s of this.active) {
        if (s.pos >= s.prompt.length) batch.push({ seq: s, tokens: Int32Array.of(s.last) });
        else if (budget > 0) {
          const n = Math.min(budget, s.prompt.length - s.pos);
          budget -= n;
          batch.push({ seq: s, tokens: s.prompt.subarray(s.pos, s.pos + n) });
        }
      }
      const B = batch.length;
      const total = batch.reduce((a, b) => a + b.tokens.length, 0);
      const tokens = new Int32Array(total);
      let off = 0;
      for (const b of batch) { tokens.set(b.tokens, off); off += b.tokens.length; }
      const rng = BigUint64Array.from(batch.map((b) => b.seq.rng));
      let next: Int32Array;
      try {
        next = await this.native.step({
          seqs: Int32Array.from(batch.map((b) => b.seq.id)),
          counts: Int32Array.from(batch.map((b) => b.tokens.length)),
          positions: Int32Array.from(batch.map((b) => b.seq.pos)),
          tokens,
          temperature: Float32Array.from(batch.map((b) => b.seq.temperature)),
          topP: Float32Array.from(batch.map((b) => b.seq.topP)),
          topK: Int32Array.from(batch.map((b) => b.seq.topK)),
          rng,
        });
      } catch (e) {
        const err = fromNative(e);
        // No room for new sequences' KV caches: those fail, the running ones go on (the pass computed nothing,
        // so the next step feeds them the same tokens again).
        const fresh = batch.filter((b) => b.seq.pos === 0);
        const failed = err.nativeCode === 'budget' && fresh.length > 0 && fresh.length < batch.length ? fresh : batch;
        for (const b of failed) this.retire(b.seq, err);
        continue;
      }
      for (let b = 0; b < B; b++) {
        const s = batch[b].seq;
        s.pos += batch[b].tokens.length;
        s.rng = rng[b];
        if (s.pos < s.prompt.length) continue; // more prompt to feed; this sample is discarded
        try {
          this.onToken(s, next[b]);
        } catch (e) {
          // A throw here would escape the engine's loop and end the process: fail this sequence alone, typed.
          this.retire(s, new EngineError('decode_failed', `token ${next[b]}: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        }
      }
    }
  }

  /** A sampled token: emits its text, applies EOS, stop strings and maxTokens. */
  private onToken(s: Seq, id: number): void {
    const now = performance.now();
    if (s.completion === 0) s.firstTokenAt = now;
    s.completion++;
    s.last = id;
    if (this.eos.has(id) && !s.ignoreEos) {
      const rest = s.stop.push(this.textOf(s, s.text.flush())).text + s.stop.flush();
      if (rest) s.out.push({ type: 'token', id, text: rest });
      this.retire(s, 'stop');
      return;
    }
    const piece = s.stop.push(this.textOf(s, this.pieceOf(s, id)));
    if (piece.stopped) {
      s.out.push({ type: 'token', id, text: piece.text });
      this.retire(s, 'stop');
      return;
    }
    if (s.completion >= s.maxTokens) {
      const tail = s.stop.push(this.textOf(s, s.text.flush()));
      const text = piece.text + tail.text + (tail.stopped ? '' : s.stop.flush());
      s.out.push({ type: 'token', id, text });
      this.retire(s, tail.stopped ? 'stop' : 'length');
      return;
    }
    s.out.push({ type: 'token', id, text: piece.text });
  }

  /**
   * The text a sampled id adds. An id the tokenizer cannot decode (past its vocabulary: a model whose embedding rows
   * are padded beyond the tokenizer's) is empty text, reported once, instead of failing the request.
   */
  private pieceOf(s: Seq, id: number): string {
    if (id >= 0 && id < this.tokenizer.vocabSize) {
      try {
        return s.text.push(id);
      } catch (e) {
        if (!(e instanceof TokenizerError)) throw e;
      }
    }
    if (!this.warnedUndecodable) {
      this.warnedUndecodable = true;
      this.options.warn(`${this.source.path}: sampled token id ${id}, which the tokenizer (${this.tokenizer.vocabSize} ids) cannot decode; emitted as empty text (reported once per engine)`);
    }
    return '';
  }

  private textOf(s: Seq, raw: string): string {
    if (!s.stripSpace || raw === '') return raw;
    s.stripSpace = false;
    return raw.startsWith(' ') ? raw.slice(1) : raw;
  }

  /** Removes an active sequence, frees its KV cache, and ends its stream with `done` or an error. */
  private retire(s: Seq, how: 'stop' | 'length' | 'cancelled' | EngineError): void {
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
    this.native.release(s.id);
    if (how instanceof EngineError) s.out.fail(how);
    else this.finish(s, how);
  }

  private finish(s: Seq, reason: 'stop' | 'length' | 'cancelled'): void {
    const now = performance.now();
    const first = s.firstTokenAt || now;
    s.out.push({
      type: 'done',
      finishReason: reason,
      promptTokens: s.prompt.length,
      completionTokens: s.completion,
      prefillMs: s.admittedAt ? first - s.admittedAt : 0,
      decodeMs: s.firstTokenAt ? now - s.firstTokenAt : 0,
    });
    s.out.end();
  }
}
