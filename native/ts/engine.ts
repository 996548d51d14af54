// The engine: generation over a resident model, with concurrent requests batched into one forward pass per step.
//
// All sequence bookkeeping (positions, prefill progress, which sequences are active, stop rules, text) lives
// here on the event loop; each step's compute runs on a native thread (NativeEngine.step). See
// native/src/engine/design.md for the threads, the batching loop and who owns what.
//
// Over 600 lines, knowingly: admission by KV blocks, preemption and recompute and n > 1 forks all read and write the
// same per-sequence state inside one loop. The request/event types are in engine-types.ts, the sampling arrays in
// engine-sampling.ts.
import { randomBytes } from 'node:crypto';

import type { ModelSource } from './types.ts';
import { EngineError, fromNative } from './engine-errors.ts';
import { buildModelDesc, isEngineAddon, loadEngineAddon, type EngineAddon, type NativeBatch, type NativeEngine } from './engine-native.ts';
import type { Runtime } from './runtime.ts';
import { StopMatcher } from './stop-strings.ts';
import { SpmTokenizer, TokenizerError, type Tokenizer, type TokenDecoder } from './tokenizer/index.ts';
import { engineTuningSchema, type EngineTuning } from './tuning.ts';
import { logprobsOf, samplingExtras, type SamplingExtras, type SamplingRow } from './engine-sampling.ts';
import type { EngineOptions, EngineStats, GenerateEvent, GenerateRequest, TopLogprob } from './engine-types.ts';

export type { EngineOptions, EngineStats, GenerateEvent, GenerateRequest, TokenConstraint, TopLogprob } from './engine-types.ts';

export { EngineError, isEngineError } from './engine-errors.ts';
export { ENGINE_ERROR_CODES, type EngineErrorCode } from '../../contracts/errors.ts';

/** Most sequences one step may compute (CUDA kernels and graphs are sized for it). */
export const MAX_BATCH = 256;

/**
 * Choice i's PRNG state: choice 0 uses the seed itself (so n = 1 is unchanged); the others a splitmix64 finaliser of
 * (seed, i), so the choices are distinct, reproducible, and not shifted copies of one stream.
 */
function choiceSeed(seed: bigint | null, choice: number): bigint {
  if (seed === null) return randomBytes(8).readBigUInt64LE();
  if (choice === 0) return seed;
  const M = (1n << 64n) - 1n;
  let z = (seed + BigInt(choice) * 0x9e3779b97f4a7c15n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return z ^ (z >> 31n);
}

const DEFAULTS = { maxBatch: 8, prefillChunk: 512, threads: 0, tuning: {}, warn: (m: string) => { process.stderr.write(`swapserve engine: ${m}\n`); } };
const MAX_STOPS = 16;
const MAX_STOP_CHARS = 256;

type Resolved = Required<Omit<EngineOptions, 'tuning' | 'kvCacheBytes' | 'kvShare'>> & { tuning: EngineTuning; kvCacheBytes?: number; kvShare?: number };

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

/** The n choices of one generate() call: one event channel, one done event when the last choice ends. */
interface Group {
  seqs: Seq[];
  /** Choices > 0 waiting for choice 0 to prefill prompt[0, P-1); then forked from its KV (P > 1 only). */
  pending: Seq[];
  reasons: ('stop' | 'length' | 'cancelled' | null)[];
  left: number;
  failed: boolean;
  out: Channel<GenerateEvent>;
}

/** A sequence: its sampling state (SamplingRow: prompt, position, penalties, bias, logprobs, constraint) and the rest. */
interface Seq extends SamplingRow {
  id: number;
  choice: number;
  group: Group;
  temperature: number;
  topP: number;
  topK: number;
  rng: bigint;
  /** Tokens to prefill: the prompt, or after a preemption the prompt and all sampled tokens but the last. */
  prefix: Int32Array;
  /** Recomputing after a preemption: the sample of the prefix's last chunk repeats `last` and is dropped. */
  resumed: boolean;
  /** KV blocks committed to it (covering its prefix + 1 at admission, grown a block at a time while decoding). */
  blocks: number;
  /** Sampled ids (kept for recompute after a preemption). */
  sampled: number[];
  /** Arrival order (generate() calls): orders `active`, so preemption takes the latest arrival. */
  arrival: number;
  /** The token to feed next once the prompt is in (the last sampled one). */
  last: number;
  text: TokenDecoder;
  /** SentencePiece: drop the dummy-prefix space of the first text after a BOS-only/BOS-final prompt. */
  stripSpace: boolean;
  stop: StopMatcher;
  ignoreEos: boolean;
  cancelled: boolean;
  admittedAt: number;
  firstTokenAt: number;
}

export class Engine {
  private readonly waiting: Seq[] = [];
  /** In arrival order (a readmitted sequence goes back to its place): the youngest is last, preempted first. */
  private readonly active: Seq[] = [];
  private arrivals = 0;
  /** Paged KV cache: positions a block, blocks in all, blocks committed to active sequences. */
  private readonly blockTokens: number;
  private readonly blocksTotal: number;
  private blocksCommitted = 0;
  /** Sequences preempted (their blocks freed, to be recomputed) since the engine was made. */
  preemptions = 0;
  private nextSeqId = 1;
  private loopRunning: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private readonly eos: Set<number>;
  /** Whether an undecodable sampled id was reported yet (once per engine: a padded vocabulary would flood the log). */
  private warnedUndecodable = false;
  /** Text of single ids, for logprob alternatives. */
  private readonly pieceText = new Map<number, string>();

  private constructor(
    private readonly native: NativeEngine,
    readonly source: ModelSource,
    private readonly tokenizer: Tokenizer,
    readonly options: Resolved,
  ) {
    this.eos = new Set(source.config.eosTokenIds);
    const kv = native.kvStats();
    if (!kv) throw new EngineError('native', 'the engine has no KV cache');
    this.blockTokens = kv.blockTokens;
    this.blocksTotal = kv.blocksTotal;
  }

  /**
   * An engine over a model the runtime holds (or is swapping in: the first prefill waits per layer). Throws
   * EngineError('native', nativeCode not_resident) when the model is neither on the compute tier
   * nor moving there.
   */
  static async create(runtime: Runtime, modelId: string, source: ModelSource, tokenizer: Tokenizer, opts?: EngineOptions): Promise<Engine> {
    const addon: unknown = runtime.addon;
    if (!isEngineAddon(addon)) throw new EngineError('native', "the runtime's addon has no Engine class: rebuild it with `npm run build:native`");
    let scratchFree = Infinity;
    try {
      const u = runtime.usage().scratch;
      const share = opts?.kvShare ?? 1;
      if (!(share > 0 && share <= 1)) throw new EngineError('invalid_request', `Expected kvShare in (0, 1] but received ${share}`);
      scratchFree = Math.max(0, Math.min(u.budgetBytes - u.usedBytes, Math.floor(u.budgetBytes * share)));
    } catch (e) {
      if (e instanceof EngineError) throw e; // an older runtime without usage(): no cap
    }
    return Engine.make(addon, runtime.native, modelId, source, tokenizer, opts, {}, { scratchFree, backend: addon.build });
  }

  /**
   * An engine over a host copy of the model's arena, without the weights runtime (CPU backend only): for tests,
   * benchmarks and `swapserve generate`. scratchBudgetBytes bounds its KV caches.
   */
  static async createOnHostArena(arena: Uint8Array, source: ModelSource, tokenizer: Tokenizer, opts?: EngineOptions & { scratchBudgetBytes?: number }): Promise<Engine> {
    if (arena.byteLength !== source.layout.totalBytes) {
      throw new EngineError('invalid_request', `Expected an arena of ${source.layout.totalBytes} bytes but received ${arena.byteLength}`);
    }
    const scratchBudgetBytes = opts?.scratchBudgetBytes ?? 1 << 30;
    return Engine.make(loadEngineAddon(), arena, source.path, source, tokenizer, opts, {
      scratchBudgetBytes,
      numGroups: source.layout.groups.length,
    }, { scratchFree: scratchBudgetBytes, backend: 'cpu' });
  }

  private static make(addon: EngineAddon, target: object, modelId: string, source: ModelSource, tokenizer: Tokenizer,
    opts: EngineOptions | undefined, extra: { scratchBudgetBytes?: number; numGroups?: number },
    room: { scratchFree: number; backend: 'cpu' | 'cuda' }): Engine {
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
    if (o.maxBatch > MAX_BATCH) throw new EngineError('invalid_request', `Expected maxBatch <= ${MAX_BATCH} but received ${o.maxBatch}`);
    if (o.kvCacheBytes !== undefined && (!Number.isSafeInteger(o.kvCacheBytes) || o.kvCacheBytes < 0)) {
      throw new EngineError('invalid_request', `Expected an integer >= 0 for kvCacheBytes but received ${o.kvCacheBytes}`);
    }
    if (!Number.isInteger(o.threads) || o.threads < 0) throw new EngineError('invalid_request', `Expected an integer >= 0 for threads but received ${o.threads}`);
    const tuning = engineTuningSchema.safeParse(o.tuning);
    if (!tuning.success) throw new EngineError('invalid_request', `Invalid engine tuning: ${tuning.error.issues.map((i) => `${i.path.join('.') || 'tuning'}: ${i.message}`).join('; ')}`);
    o.tuning = tuning.data;
    const desc = buildModelDesc(source);
    const stack = new Error().stack;
    let native: NativeEngine;
    try {
      native = new addon.Engine(target, modelId, desc, {
        maxBatch: o.maxBatch, maxContext: o.maxContext, threads: o.threads, tuning: o.tuning,
        kvCacheBytes: o.kvCacheBytes ?? defaultKvBytes(source, o, room), ...extra,
      });
    } catch (e) {
      throw fromNative(e, stack);
    }
    return new Engine(native, source, tokenizer, o);
  }

  /** The native engine (test hooks only: native/ts/testing.ts failNextPass). */
  get nativeForTest(): NativeEngine { return this.native; }

  /** Sequences admitted or waiting. */
  get activeSequences(): number { return this.active.length + this.waiting.length; }

  /** Load and KV capacity now (blocksFree: blocks not committed to admitted sequences). */
  stats(): { active: number; waiting: number; blockTokens: number; blocksTotal: number; blocksFree: number; maxBatch: number } {
    return {
      active: this.active.length, waiting: this.waiting.length, blockTokens: this.blockTokens,
      blocksTotal: this.blocksTotal, blocksFree: this.blocksTotal - this.blocksCommitted, maxBatch: this.options.maxBatch,
    };
  }

  /** The native KV pool's own count (tests: equals stats().blocksTotal once every sequence has ended). */
  kvBlocksFreeNative(): number { return this.native.kvStats()?.blocksFree ?? 0; }

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
    const n = req.n ?? 1;
    const group: Group = { seqs: [], pending: [], reasons: new Array(n).fill(null), left: n, failed: false, out: new Channel<GenerateEvent>() };
    const prompt = Int32Array.from(req.prompt);
    const seed = req.seed === undefined ? null : BigInt.asUintN(64, BigInt(req.seed));
    const bias = req.logitBias && Object.keys(req.logitBias).length ? {
      ids: Int32Array.from(Object.keys(req.logitBias).map(Number)),
      vals: Float32Array.from(Object.values(req.logitBias)),
    } : null;
    const repetition = req.repetitionPenalty ?? 1;
    const penalised = repetition !== 1 || !!req.presencePenalty || !!req.frequencyPenalty;
    const arrival = this.arrivals++;
    for (let choice = 0; choice < n; choice++) {
      const seq: Seq = {
        id: this.nextSeqId++,
        choice,
        group,
        prompt,
        maxTokens: req.maxTokens,
        temperature: req.temperature,
        topP: req.topP,
        topK: req.topK,
        minP: req.minP ?? 0,
        presence: req.presencePenalty ?? 0,
        frequency: req.frequencyPenalty ?? 0,
        repetition,
        bias,
        hist: penalised ? new Map(repetition !== 1 ? [...prompt].map((id) => [id, 0] as [number, number]) : []) : null,
        numLogprobs: req.logprobs ?? -1,
        constraint: req.constraint ? req.constraint() : null,
        rng: choiceSeed(seed, choice),
        pos: 0,
        prefix: prompt,
        resumed: false,
        blocks: 0,
        sampled: [],
        arrival,
        last: -1,
        completion: 0,
        text: this.tokenizer.decodeStream(),
        stripSpace: this.tokenizer instanceof SpmTokenizer && req.prompt[req.prompt.length - 1] === this.tokenizer.bosId,
        stop: new StopMatcher(req.stop ?? []),
        ignoreEos: req.ignoreEos === true,
        cancelled: false,
        admittedAt: 0,
        firstTokenAt: 0,
      };
      if (this.nextSeqId > 0x7fffffff) this.nextSeqId = 1;
      group.seqs.push(seq);
      // Choices > 0 share choice 0's prefill of prompt[0, P-1) (a KV fork); a 1-token prompt has nothing to share.
      if (choice > 0 && prompt.length > 1) group.pending.push(seq);
      else this.waiting.push(seq);
    }
    const onAbort = () => this.cancelGroup(group);
    if (signal?.aborted) for (const s of group.seqs) s.cancelled = true;
    signal?.addEventListener('abort', onAbort, { once: true });
    this.kick();
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* group.out.drain();
        } finally {
          signal?.removeEventListener('abort', onAbort);
          self.cancelGroup(group); // no-op once finished
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
    const inRange = (k: keyof GenerateRequest, lo: number, hi: number, loOpen = false) => {
      const v = req[k];
      if (v === undefined) return;
      if (typeof v !== 'number' || !Number.isFinite(v) || v > hi || (loOpen ? v <= lo : v < lo)) bad(`Expected a number in ${loOpen ? '(' : '['}${lo}, ${hi}] for ${k} but received ${String(v)}`);
    };
    inRange('minP', 0, 1);
    inRange('presencePenalty', -2, 2);
    inRange('frequencyPenalty', -2, 2);
    inRange('repetitionPenalty', 0, 2, true);
    if (req.logprobs !== undefined && (!Number.isInteger(req.logprobs) || req.logprobs < 0 || req.logprobs > 20)) bad(`Expected an integer in [0, 20] for logprobs but received ${req.logprobs}`);
    if (req.n !== undefined && (!Number.isInteger(req.n) || req.n < 1 || req.n > 16)) bad(`Expected an integer in [1, 16] for n but received ${req.n}`);
    if (req.logitBias !== undefined) {
      if (typeof req.logitBias !== 'object' || req.logitBias === null) bad('Expected an object of token id -> bias for logitBias');
      for (const [k, v] of Object.entries(req.logitBias)) {
        if (!/^\d{1,7}$/.test(k) || Number(k) >= V) bad(`Expected token ids in [0, ${V}) as logitBias keys but received ${k}`);
        if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100) bad(`Expected a bias in [-100, 100] for logitBias[${k}] but received ${String(v)}`);
      }
    }
    if (req.constraint !== undefined && typeof req.constraint !== 'function') bad('Expected a function returning a TokenConstraint for constraint');
    // A stop string inside constrained text would cut the document the constraint guarantees (contracts/job.ts
    // refuseConstrainedConflicts is the API's side of this rule).
    if (req.constraint !== undefined && req.stop?.length) bad(`Expected no stop strings with a constraint (it ends the text itself) but received ${JSON.stringify(req.stop)}`);
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

  private cancelGroup(g: Group): void {
    for (const seq of g.seqs) {
      seq.cancelled = true;
      const i = this.waiting.indexOf(seq);
      if (i >= 0) {
        this.waiting.splice(i, 1);
        this.finish(seq, 'cancelled');
        for (const c of g.pending.splice(0)) this.finish(c, 'cancelled'); // choice 0 will never prefill for them
      }
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

  private blocksFor(positions: number): number { return Math.ceil(positions / this.blockTokens); }

  /**
   * Admits waiting sequences in FIFO order while a maxBatch slot and the KV blocks of the head's prefix (+ its
   * first sampled token) are free, keeping a watermark of a block per blockTokens running sequences for their
   * growth. The head waits otherwise (never fails), unless its prefix alone outgrows the whole cache.
   */
  private admit(): void {
    while (this.waiting.length && this.active.length < this.options.maxBatch) {
      const s = this.waiting[0];
      // Choice 0 of an n > 1 request commits its choices' blocks too (handed to them at the fork), so a fork never
      // waits for blocks while choice 0 holds its prefill.
      const need = this.blocksFor(s.prefix.length + 1) * (1 + (s.choice === 0 ? s.group.pending.length : 0));
      if (need > this.blocksTotal) {
        this.waiting.shift();
        this.retire(s, this.kvTooSmall(s, need));
        continue;
      }
      const watermark = this.active.length ? Math.ceil(this.active.length / this.blockTokens) : 0;
      if (need > this.blocksTotal - this.blocksCommitted - watermark) return;
      this.waiting.shift();
      s.blocks = need;
      this.blocksCommitted += need;
      if (!s.admittedAt) s.admittedAt = performance.now();
      this.activate(s);
    }
  }

  /** Into `active` at its arrival's place (a readmitted or forked sequence among those that came before it). */
  private activate(s: Seq): void {
    let at = this.active.length;
    while (at > 0 && this.active[at - 1].arrival > s.arrival) at--;
    this.active.splice(at, 0, s);
  }

  private kvTooSmall(s: Seq, need: number): EngineError {
    return new EngineError('native', `KV cache: sequence needs ${need} blocks of ${this.blockTokens} positions; the cache has ${this.blocksTotal} (raise kvCacheBytes or the scratch budget)`, { nativeCode: 'budget' });
  }

  /**
   * Commits blocks so that s holds `positions` positions. When none are free, preempts the youngest (latest
   * arrived) running sequence (its blocks freed, recomputed from its prefix when readmitted) until they are; false when that was s
   * itself. A sequence alone that still does not fit fails with `budget`.
   */
  private grow(s: Seq, positions: number): boolean {
    const need = this.blocksFor(positions) - s.blocks;
    if (need <= 0) return true;
    while (this.blocksTotal - this.blocksCommitted < need) {
      const victim = this.active[this.active.length - 1];
      if (victim === s && this.active.length === 1) {
        this.retire(s, this.kvTooSmall(s, this.blocksFor(positions)));
        return false;
      }
      this.preempt(victim);
      if (victim === s) return false;
    }
    s.blocks += need;
    this.blocksCommitted += need;
    return true;
  }

  /** Frees s's KV blocks and puts it back at the head of the queue, to recompute its prompt and samples so far. */
  private preempt(s: Seq): void {
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
    this.native.release(s.id);
    this.blocksCommitted -= s.blocks;
    s.blocks = 0;
    s.pos = 0;
    // The last sampled id is not in the cache yet (it is fed by the next decode step), so it stays out of the prefix.
    const kept = s.sampled.length - 1;
    if (kept >= 0) {
      const prefix = new Int32Array(s.prompt.length + kept);
      prefix.set(s.prompt);
      prefix.set(s.sampled.slice(0, kept), s.prompt.length);
      s.prefix = prefix;
      s.resumed = true;
    }
    this.preemptions++;
    this.waiting.unshift(s);
  }

  /** The batching loop: one native step at a time over every active sequence. */
  private async loop(): Promise<void> {
    while (this.active.length || this.waiting.length) {
      for (const s of [...this.active]) if (s.cancelled) this.retire(s, 'cancelled');
      this.admit();
      if (this.active.length === 0) continue;
      // n > 1: once choice 0 holds prompt[0, P-1), the other choices get a copy of that KV (applied natively before
      // this step's pass) and each feeds the last prompt token itself, so each samples its own first token. Their
      // blocks were committed with choice 0's at its admission (admit) and pass to them here.
      const forks: number[] = [];
      for (const s of [...this.active]) {
        const g = s.group;
        if (s.choice !== 0 || g.pending.length === 0 || s.pos !== s.prefix.length - 1) continue;
        const per = this.blocksFor(s.prefix.length + 1);
        for (const c of g.pending.splice(0)) {
          forks.push(s.id, c.id, s.pos);
          c.pos = s.pos;
          c.admittedAt = s.admittedAt;
          c.blocks = per;
          s.blocks -= per;
          this.activate(c);
        }
      }
      // Decoding sequences feed their last token (a new block when it starts one, oldest first: preemption takes the
      // youngest); prompts feed chunks within the step's prefill budget (their blocks were committed at admission).
      const batch: { seq: Seq; tokens: Int32Array }[] = [];
      let budget = this.options.prefillChunk;
      // By index over the live list: grow() preempts only from its tail (the youngest), so a sequence preempted to
      // make room for an older one is simply never reached (no O(n) membership test per sequence).
      for (let i = 0; i < this.active.length; i++) {
        const s = this.active[i];
        if (s.pos >= s.prefix.length) {
          if (this.grow(s, s.pos + 1)) batch.push({ seq: s, tokens: Int32Array.of(s.last) });
        } else if (budget > 0) {
          // Choice 0 of an n > 1 request stops before the last prompt token until its choices are forked.
          const end = s.group.pending.length ? s.prefix.length - 1 : s.prefix.length;
          const n = Math.min(budget, end - s.pos);
          if (n <= 0) continue;
          budget -= n;
          batch.push({ seq: s, tokens: s.prefix.subarray(s.pos, s.pos + n) });
        }
      }
      if (batch.length === 0) continue;
      const B = batch.length;
      const total = batch.reduce((a, b) => a + b.tokens.length, 0);
      const tokens = new Int32Array(total);
      let off = 0;
      for (const b of batch) { tokens.set(b.tokens, off); off += b.tokens.length; }
      if (B === 0) continue;
      const rng = BigUint64Array.from(batch.map((b) => b.seq.rng));
      let next: Int32Array;
      let extras: SamplingExtras;
      try {
        extras = samplingExtras(batch, forks, this.source.config.vocabSize, this.tokenizer.vocabSize);
      } catch (e) {
        // A constraint that throws (a grammar bug) fails its own sequences only, typed.
        for (const b of batch) if (b.seq.constraint) this.retire(b.seq, new EngineError('decode_failed', `constraint: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        continue;
      }
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
          ...extras,
        });
      } catch (e) {
        const err = fromNative(e);
        // No room for new sequences' KV caches: those fail, the running ones go on (the pass computed nothing,
        // so the next step feeds them the same tokens again).
        const forked = new Set(forks.filter((_, i) => i % 3 === 1));
        const fresh = batch.filter((b) => b.seq.pos === 0 || forked.has(b.seq.id));
        const failed = err.nativeCode === 'budget' && fresh.length > 0 && fresh.length < batch.length ? fresh : batch;
        for (const b of failed) this.retire(b.seq, err);
        continue;
      }
      for (let b = 0; b < B; b++) {
        const s = batch[b].seq;
        s.pos += batch[b].tokens.length;
        // More prefix to feed, or a recomputed prefix whose sample repeats `last`: discarded, the PRNG not advanced,
        // so a seeded request's tokens do not depend on how its prompt was chunked, on an n > 1 fork step or on a
        // preemption.
        if (s.pos < s.prefix.length) continue;
        if (s.resumed) {
          s.resumed = false;
          continue;
        }
        s.rng = rng[b];
        try {
          this.onToken(s, next[b], extras.numLogprobs ? logprobsOf(extras, b, (id) => this.tokenText(id)) : null);
        } catch (e) {
          // A throw here would escape the engine's loop and end the process: fail this sequence alone, typed.
          this.retire(s, new EngineError('decode_failed', `token ${next[b]}: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
        }
      }
    }
  }

  /** One id's own text (alternatives in logprobs); '' for ids past the tokenizer or control tokens. */
  private tokenText(id: number): string {
    let t = this.pieceText.get(id);
    if (t === undefined) {
      try { t = id < this.tokenizer.vocabSize ? this.tokenizer.decode([id]) : ''; } catch { t = ''; }
      if (this.pieceText.size > 65536) this.pieceText.clear();
      this.pieceText.set(id, t);
    }
    return t;
  }

  /** A sampled token: emits its text, applies EOS, stop strings, the constraint and maxTokens. */
  private onToken(s: Seq, id: number, lp: { logprob: number; top: TopLogprob[] } | null): void {
    const now = performance.now();
    if (s.completion === 0) s.firstTokenAt = now;
    s.completion++;
    s.last = id;
    s.sampled.push(id);
    const c = s.choice;
    const emit = (text: string) => s.group.out.push(lp
      ? { type: 'token', id, text, choice: c, logprob: lp.logprob, topLogprobs: lp.top }
      : { type: 'token', id, text, choice: c });
    if (s.constraint && !s.constraint.accept(id)) {
      this.retire(s, new EngineError('decode_failed', `token ${id} is not allowed by the request's grammar (no allowed token was left to sample)`));
      return;
    }
    if (s.hist) s.hist.set(id, (s.hist.get(id) ?? 0) + 1);
    if (this.eos.has(id) && !s.ignoreEos) {
      const rest = s.stop.push(this.textOf(s, s.text.flush())).text + s.stop.flush();
      if (rest) emit(rest);
      this.retire(s, 'stop');
      return;
    }
    const piece = s.stop.push(this.textOf(s, this.pieceOf(s, id)));
    if (piece.stopped) {
      emit(piece.text);
      this.retire(s, 'stop');
      return;
    }
    // A complete grammar that admits nothing more ends the choice like an EOS would.
    const complete = s.constraint?.isTerminated() ?? false;
    if (complete || s.completion >= s.maxTokens) {
      const tail = s.stop.push(this.textOf(s, s.text.flush()));
      const text = piece.text + tail.text + (tail.stopped ? '' : s.stop.flush());
      emit(text);
      this.retire(s, tail.stopped || complete ? 'stop' : 'length');
      return;
    }
    emit(piece.text);
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

  /**
   * Removes an active sequence and frees its KV cache; the request's stream ends with `done` when its last choice
   * ends, or with the error at once (its other choices are cancelled).
   */
  private retire(s: Seq, how: 'stop' | 'length' | 'cancelled' | EngineError): void {
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
    this.native.release(s.id);
    this.blocksCommitted -= s.blocks;
    s.blocks = 0;
    const g = s.group;
    if (how instanceof EngineError) {
      if (!g.failed) g.out.fail(how);
      g.failed = true;
      for (const o of g.seqs) o.cancelled = true;
      for (const c of g.pending.splice(0)) this.finish(c, 'cancelled');
      return;
    }
    this.finish(s, how);
    if (s.choice === 0) for (const c of g.pending.splice(0)) this.finish(c, 'cancelled'); // never forked
  }

  private finish(s: Seq, reason: 'stop' | 'length' | 'cancelled'): void {
    const g = s.group;
    if (g.reasons[s.choice] !== null) return;
    g.reasons[s.choice] = reason;
    if (--g.left > 0 || g.failed) return;
    const now = performance.now();
    const first = g.seqs[0].firstTokenAt || now;
    const lastFirst = Math.min(...g.seqs.map((q) => q.firstTokenAt || now));
    const reasons = g.reasons as ('stop' | 'length' | 'cancelled')[];
    g.out.push({
      type: 'done',
      finishReason: reasons[0],
      ...(g.seqs.length > 1 ? { finishReasons: reasons } : {}),
      promptTokens: s.prompt.length,
      completionTokens: g.seqs.reduce((a, q) => a + q.completion, 0),
      prefillMs: g.seqs[0].admittedAt ? first - g.seqs[0].admittedAt : 0,
      decodeMs: g.seqs.some((q) => q.firstTokenAt) ? now - lastFirst : 0,
    });
    g.out.end();
  }
}

/**
 * Default KV cache bytes: room for maxBatch sequences of maxContext positions, capped by the scratch pool's free
 * bytes less, on CUDA, an estimate of the backend's activations (grown by doubling to prefillChunk + maxBatch rows)
 * and its fixed buffers.
 */
function defaultKvBytes(source: ModelSource, o: Resolved, room: { scratchFree: number; backend: 'cpu' | 'cuda' }): number {
  const c = source.config;
  const elt = room.backend === 'cuda' && source.dtype !== 'f32' ? 2 : 4;
  const headDim = c.headDim;
  const perToken = 2 * c.numLayers * c.numKvHeads * headDim * elt;
  const want = o.maxBatch * Math.ceil(o.maxContext / 16) * 16 * perToken;
  let reserve = 0;
  if (room.backend === 'cuda') {
    const rows = 2 * (o.prefillChunk + o.maxBatch);
    const qkv = (c.numHeads + 2 * c.numKvHeads) * headDim;
    const perRow = c.hiddenSize * 4 + c.hiddenSize * 2 + qkv * 2 + c.numHeads * headDim * 2 + c.intermediateSize * 6 + headDim * 4;
    reserve = rows * perRow + o.maxBatch * (c.vocabSize * 4 + c.hiddenSize * 2) + (48 << 20);
  }
  return Math.max(0, Math.min(want, Math.floor(room.scratchFree - reserve)));
}
