// ModelBackend over the native weights runtime and engine (CPU or CUDA, picked by SWAPSERVE_BACKEND / auto).
// Moves and forward passes run on native threads; this file only does bookkeeping on the event loop.
import { Engine, isEngineError, type GenerateRequest } from '../../native/ts/engine.ts';
import { jsonGrammar, SchemaError, type Grammar } from '../../native/ts/grammar/index.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, TokenizerError, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import type { EngineTuning } from '../../native/ts/tuning.ts';
import type { Config, ModelEntry } from '../config/config.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { RequestError } from '../../contracts/errors.ts';
import { maxTokensAboveCap, refuseConstrainedConflicts, type JobData } from '../../contracts/job.ts';
import type { MoveKind, Residency } from '../../contracts/vocab.ts';
import type { GenEvent, ModelBackend, MoveOutcome, PrefixBackend } from './backend.ts';
import type { EngineStats, ModelCapacity } from './admission.ts';
import { DiskCache, ensureCacheDir, layoutHash, type CacheFile } from './codec-cache.ts';

interface Held {
  entry: ModelEntry;
  source: ModelSource;
  /** Loaded on first need (tokenizerOf), not at registration: a move needs only the layout. */
  tokenizer: Promise<Tokenizer> | null;
  engine: Promise<Engine> | null;
  /** The engine once created (capacity() reads it synchronously). */
  ready: Engine | null;
  /** Moving mean of prompt + max_tokens of this model's sequences (admission's per-sequence KV estimate). */
  meanSeqTokens: number;
  /** With the disk cache on: the layout's hash (part of every cache file's identity), computed once. */
  layoutDigest: string;
}

/** Whether this build's engine reports its capacity (paged KV cache: Engine.stats()). */
const ENGINE_HAS_STATS = typeof (Engine.prototype as { stats?: unknown }).stats === 'function';
/** Sequences batched by an engine with stats (admission then follows its KV blocks) and by one without. */
const MAX_BATCH = 256;
const LEGACY_MAX_BATCH = 8;

export interface NativeBackendOptions {
  /** @defaultValue env SWAPSERVE_BACKEND, else auto */
  backend?: 'auto' | 'cpu' | 'cuda';
  /** CUDA device ordinal (one worker per GPU). @defaultValue 0 */
  device?: number;
  /** Sequences batched per engine step. @defaultValue min(config.worker.concurrency, 256), or 8 for an engine without stats */
  maxBatch?: number;
  /** CPU compute threads, 0 = all cores. @defaultValue 0 */
  threads?: number;
  /** Where the backend's own events go (the compressed disk cache's hits, rejections, writes). @defaultValue pino for service "worker" at config `log.level` */
  log?: Logger;
}

/** Idle time after start before a worker pins a large host pool (ms); see the constructor. */
const PIN_IDLE_MS = 300;
/**
 * Delay after a model's registration before its tokenizer is built in the background (ms). Building one is
 * synchronous work on the event loop (a 128K vocabulary: ~0.3 s); a fresh worker's first command, which comes just
 * after it registers, must not queue behind it. A move towards the GPU or a job builds it at once.
 */
const TOKENIZER_IDLE_MS = 300;
/** Host pools from this size are pinned late (pinning runs at roughly 25 GB/s: 4 GiB is ~0.2 s). */
const DEFER_PIN_MIN_BYTES = 4 * 1024 ** 3;

/** The job's prompt ids. Messages the model's template refuses (or malformed ones) are the client's 400, not a 500. */
function encodePrompt(tokenizer: Tokenizer, job: JobData): number[] {
  try {
    return job.input.type === 'chat'
      ? tokenizer.encodeChat(job.input.messages, { tools: job.input.tools }) // template specials as tokens; a user's "<|im_end|>" stays text
      : tokenizer.encode(job.input.prompt, { addBos: true });
  } catch (e) {
    if (e instanceof TokenizerError && e.code === 'bad_messages') throw new RequestError('invalid_request', { detail: e.message, param: 'messages', cause: e });
    throw e;
  }
}

/** Prompt + max_tokens beyond the context: a 400 naming both numbers (vLLM's wording), `param` max_tokens. */
function contextError(ctx: number, promptTokens: number, s: JobData['sampling'], promptParam: string): RequestError {
  const asked = s.maxTokensAsked ?? s.maxTokens;
  const message = promptTokens >= ctx
    ? `This model's maximum context length is ${ctx} tokens. However, your prompt has ${promptTokens} tokens, which leaves no room for a completion.`
    : `This model's maximum context length is ${ctx} tokens. However, you requested ${promptTokens + asked} tokens (${promptTokens} in the prompt, ${asked} for the completion). Please reduce the length of the prompt or max_tokens.`;
  return new RequestError('context_length_exceeded', { message, param: promptTokens >= ctx ? promptParam : 'max_tokens' });
}

export class NativeBackend implements ModelBackend {
  readonly kind: 'cpu' | 'cuda';
  readonly device: string;
  readonly budgets: { host: number; gpu: number };
  private readonly runtime: Runtime;
  private readonly held = new Map<string, Held>();
  private readonly maxBatch: number;
  private readonly threads: number;
  private readonly tuning: EngineTuning;
  private movesInFlight = 0;
  /** Set by an engine pass that failed with a sticky device error (the runtime tracks its own moves' ones). */
  private engineSticky = false;
  private pinWhenIdle = false;
  private readonly codec: Config['hostCodec'];
  /** Background encodes under way (close waits for them; the runtime's close aborts them). */
  private readonly encoding = new Set<Promise<unknown>>();
  private readonly pinTimer: NodeJS.Timeout;
  /** The compressed disk cache (config hostCodec.diskCacheBytes > 0 with compress on), else null. */
  private readonly diskCache: DiskCache | null;
  private readonly log: Logger;

  constructor(config: Config, opts: NativeBackendOptions = {}) {
    this.runtime = Runtime.open({
      backend: opts.backend, device: opts.device,
      hostBudgetBytes: config.budgets.hostBytes, gpuBudgetBytes: config.budgets.gpuBytes, scratchBudgetBytes: config.budgets.scratchBytes,
      // A fresh CUDA worker's first request is usually a cold one, placed with load_to_gpu while its host pool is
      // not ready (scheduler/placement.ts); pinning tens of GB at the same time (page faults on every core, then
      // cudaHostRegister) slows that disk read. So a large pool is pinned once the worker has been idle for
      // PIN_IDLE_MS (after the moves in flight then), or at once when a move into the host tier needs it. Small
      // pools and the CPU backend (nothing to register) are pinned at once, as without the option.
      deferHostPin: true,
      // With compression on, the GPU decode's work buffer is carved out of the GPU budget (the runtime's gpu pool
      // gets the rest; native/src/runtime/codec/design.md "Device memory"): budgets.gpu below reports what is left.
      ...(config.hostCodec.compress ? { codecWorkBytes: config.hostCodec.workBytes } : {}),
    });
    this.pinTimer = setTimeout(() => {
      this.pinWhenIdle = true;
      this.maybePin();
    }, PIN_IDLE_MS);
    this.pinTimer.unref();
    if (this.runtime.backend !== 'cuda' || config.budgets.hostBytes < DEFER_PIN_MIN_BYTES) this.runtime.pinHostPool();
    this.kind = this.runtime.backend;
    this.device = this.runtime.deviceName || this.kind;
    this.budgets = { host: config.budgets.hostBytes, gpu: this.runtime.usage().gpu.budgetBytes };
    this.maxBatch = opts.maxBatch ?? Math.min(config.worker.concurrency, ENGINE_HAS_STATS ? MAX_BATCH : LEGACY_MAX_BATCH);
    this.threads = opts.threads ?? 0;
    this.tuning = config.engine;
    this.codec = config.hostCodec;
    this.log = opts.log ?? createLogger({ service: 'worker', level: config.log.level });
    this.diskCache = config.hostCodec.compress && config.hostCodec.diskCacheBytes > 0 ? new DiskCache(config.dataDir, config.hostCodec.diskCacheBytes, this.log) : null;
    if (this.diskCache) ensureCacheDir(this.diskCache);
  }

  async register(entry: ModelEntry): Promise<{ bytes: number }> {
    const source = await openModel(entry.path);
    this.runtime.register(entry.id, source.layout);
    const h: Held = { entry, source, tokenizer: null, engine: null, ready: null, meanSeqTokens: 0, layoutDigest: this.diskCache ? layoutHash(source.layout) : '' };
    this.held.set(entry.id, h);
    setTimeout(() => void this.tokenizerOf(h).catch(() => {}), TOKENIZER_IDLE_MS).unref();
    return { bytes: source.layout.totalBytes };
  }

  /** The model's tokenizer, loaded once; a failed load is retried by the next caller. */
  private tokenizerOf(h: Held): Promise<Tokenizer> {
    if (!h.tokenizer) {
      const p = loadTokenizer(h.source);
      h.tokenizer = p;
      p.catch(() => {
        if (h.tokenizer === p) h.tokenizer = null;
      });
    }
    return h.tokenizer;
  }

  async move(kind: MoveKind, id: string, onProgress?: (d: number, t: number) => void): Promise<MoveOutcome> {
    const h = this.get(id);
    const o = onProgress ? { onProgress } : undefined;
    // Off the GPU tier: the engine's weights lease must go first (the runtime never frees a leased arena).
    if (kind === 'evict' || kind === 'drop') await this.closeEngine(h);
    let r;
    // A cold load tries the model's compressed disk cache file first (the runtime falls back to the raw files).
    const cache = kind === 'load' ? this.cacheFileOf(id, h) : null;
    this.movesInFlight++;
    try {
      const moving = kind === 'load' ? this.runtime.load(id, { ...o, ...(cache ? { cache } : {}) })
        : kind === 'swap_in' ? this.runtime.swapIn(id, o)
          : kind === 'load_to_gpu' ? this.runtime.loadToGpu(id, o)
            : kind === 'evict' ? this.runtime.evict(id)
              : this.runtime.drop(id);
      // The model is about to serve: its tokenizer is built while the weights move (native threads).
      if (kind === 'load' || kind === 'swap_in' || kind === 'load_to_gpu') void this.tokenizerOf(h).catch(() => {});
      r = await moving;
      const settled = cache ? this.afterCacheLoad(id, cache, r.cache) : Promise.resolve();
      if (kind === 'load' && this.codec.compress) this.compressInBackground(id, cache, settled);
    } catch (e) {
      // An engine created while the weights were landing (execute-while-loading) leases the failed move's arena:
      // release it, so the arena goes back to the pool and the next move has its room.
      if (kind === 'swap_in' || kind === 'load_to_gpu') await this.closeEngine(h);
      throw e;
    } finally {
      this.movesInFlight--;
      this.maybePin();
    }
    return { bytes: r.bytes, wallMs: r.wallMs };
  }

  readonly prefixes: PrefixBackend = {
    groupEnds: (id) => this.get(id).source.layout.groups.map((g) => g.end),
    hasHostCopy: (id) => this.runtime.residency(id).host,
    prefix: (id) => this.runtime.residentPrefix(id),
    evictKeeping: async (id, keepGroups) => {
      await this.closeEngine(this.get(id)); // the engine's lease must go first (the runtime never frees a leased arena)
      const r = await this.runtime.evict(id, { keepGroups });
      return { bytes: r.bytes, wallMs: r.wallMs };
    },
    reclaim: async (id) => {
      const r = await this.runtime.reclaimPrefix(id);
      return { bytes: r.bytes, wallMs: r.wallMs };
    },
  };

  /**
   * Encodes a model that just entered the host tier, off the request path (native threads): it stays swappable
   * from its raw copy meanwhile, and the compressed copy replaces it only when it pays. A measured "raw" verdict
   * is kept by the runtime, so a model is not encoded again after a drop and reload.
   */
  private compressInBackground(id: string, cache: CacheFile | null, cacheSettled: Promise<void>): void {
    const c = this.runtime.hostCodec(id).state;
    if (c === 'raw' || c === 'compressed' || c === 'encoding') return;
    const p = this.runtime.compress(id, { maxRatio: this.codec.maxRatio }).then(async (r) => {
      // Persisted for the next cold load (of this worker or another on the host sharing the data dir).
      // After the rejected file's deletion, which must not remove the new one.
      await cacheSettled;
      if (r.state === 'compressed' && cache && this.diskCache) await this.diskCache.save(this.runtime, id, cache, r.storedBytes);
    }).catch((e: unknown) => {
      // A drop or close during the encode or the write, or a model the codec cannot store: it stays raw (its state
      // says failed) or is simply not cached.
      this.log.warn({ model: id, code: 'host_codec_incomplete', err: e }, `host-tier compression or caching of ${id} did not complete: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }).finally(() => this.encoding.delete(p));
    this.encoding.add(p);
  }

  /** The model's cache file and identity now, or null (cache off, or a source file gone: the load reports that). */
  private cacheFileOf(id: string, h: Held): CacheFile | null {
    if (!this.diskCache) return null;
    try {
      return this.diskCache.locate(id, h.source.layout, h.layoutDigest);
    } catch {
      return null;
    }
  }

  /** Logs what became of the cache file; a stale or corrupt one is deleted (it is rewritten after the encode). */
  private afterCacheLoad(id: string, file: CacheFile, c: { outcome: string; reason: string } | undefined): Promise<void> {
    const cache = this.diskCache;
    if (!cache || !c || c.outcome === 'miss') return Promise.resolve();
    if (c.outcome === 'hit') {
      this.log.info({ model: id, code: 'codec_cache_hit', path: file.path }, `codec cache: ${id} loaded compressed from ${file.path}`);
      const p = cache.touch(file.path).finally(() => this.encoding.delete(p));
      this.encoding.add(p);
      return p;
    }
    const drop = c.outcome === 'stale' || c.outcome === 'corrupt';
    this.log.warn({ model: id, code: 'codec_cache_rejected', outcome: c.outcome, reason: c.reason, path: file.path },
      `codec cache: ${file.path} not used for ${id} (${c.reason}); read the raw files${drop ? ', deleted it' : ''}`);
    if (!drop) return Promise.resolve();
    const p = cache.remove(file.path).catch((e: unknown) => { this.log.warn({ model: id, path: file.path, err: e }, 'codec cache: could not delete a rejected file'); }).finally(() => this.encoding.delete(p));
    this.encoding.add(p);
    return p;
  }

  /** Resolves once every background encode (and cache write or clean-up) started so far has ended (tests, benches). */
  async codecSettled(): Promise<void> {
    await Promise.allSettled([...this.encoding]);
  }

  hostCodec(id: string): { state: 'none' | 'encoding' | 'compressed' | 'raw' | 'failed'; ratio: number; storedBytes: number } | null {
    if (!this.held.has(id)) return null;
    try {
      return this.runtime.hostCodec(id);
    } catch {
      return null;  // closed
    }
  }

  residency(id: string): Residency {
    // Not registered yet (files still being opened): it is on disk.
    return this.held.has(id) ? this.runtime.residency(id).state : 'disk';
  }

  usage(): { host: number; gpu: number } {
    const u = this.runtime.usage();
    return { host: u.host.usedBytes, gpu: u.gpu.usedBytes };
  }

  /** The native runtime (tests hold a move through native/ts/testing.ts; benches read it). */
  get runtimeForTest(): Runtime {
    return this.runtime;
  }

  private maybePin(): void {
    if (!this.pinWhenIdle || this.movesInFlight > 0) return;
    this.pinWhenIdle = false;
    try {
      this.runtime.pinHostPool();
    } catch {
      // closed: nothing to pin
    }
  }

  private probeDevice(): boolean {
    try {
      return this.runtime.probe();
    } catch {
      return true; // closed: not a device fault
    }
  }

  healthy(): boolean {
    if (this.engineSticky) return false;
    try {
      return this.runtime.healthy;
    } catch {
      return true; // closed: not a device fault
    }
  }

  hostReady(): boolean {
    try {
      return this.runtime.usage().host.ready === true;
    } catch {
      return false; // closed
    }
  }

  whenHostReady(): Promise<void> {
    return this.runtime.hostReady;
  }

  async *generate(id: string, job: JobData, signal: AbortSignal): AsyncIterable<GenEvent> {
    const h = this.get(id);
    const tokenizer = await this.tokenizerOf(h);
    h.engine ??= Engine.create(this.runtime, id, h.source, tokenizer, {
      maxBatch: this.maxBatch, threads: this.threads, tuning: this.tuning,
      // Several resident models share the scratch pool: each engine's KV cache takes at most its weights' share of
      // the GPU budget (at least 1/8), so the first engine made cannot leave the next with no blocks.
      kvShare: Math.min(1, Math.max(1 / 8, h.source.layout.totalBytes / Math.max(1, this.budgets.gpu))),
      ...(h.entry.contextLength ? { maxContext: Math.min(h.entry.contextLength, h.source.config.maxPositions) } : {}),
    });
    const creating = h.engine;
    creating.then((e) => { if (h.engine === creating) h.ready = e; }, () => { if (h.engine === creating) h.engine = null; });
    const engine = await creating;
    const prompt = encodePrompt(tokenizer, job);
    const ctx = engine.options.maxContext;
    const s = job.sampling;
    // The worker's config is the authority on the model's maxTokens (an SDK without the models' config sends none).
    // (An entry made without the config schema, as a library user may register one, has no maxTokens: no cap then.)
    const cap = Number.isSafeInteger(h.entry.maxTokens) ? h.entry.maxTokens : Number.MAX_SAFE_INTEGER;
    if (s.maxTokensAsked !== undefined && s.maxTokensAsked > cap) throw maxTokensAboveCap(s.maxTokensAsked, cap);
    if (prompt.length >= ctx || (s.maxTokensAsked !== undefined && prompt.length + s.maxTokensAsked > ctx)) throw contextError(ctx, prompt.length, s, job.input.type === 'chat' ? 'messages' : 'prompt');
    const req: GenerateRequest = {
      prompt, maxTokens: Math.min(s.maxTokensAsked ?? s.maxTokens, cap, ctx - prompt.length), temperature: s.temperature, topP: s.topP, topK: s.topK ?? 0,
      stop: s.stop, ...(s.seed !== undefined ? { seed: s.seed } : {}),
      // Issue 12: every sampling field of the job reaches the engine (absent = off there too).
      ...(s.minP !== undefined ? { minP: s.minP } : {}),
      ...(s.presencePenalty !== undefined ? { presencePenalty: s.presencePenalty } : {}),
      ...(s.frequencyPenalty !== undefined ? { frequencyPenalty: s.frequencyPenalty } : {}),
      ...(s.repetitionPenalty !== undefined ? { repetitionPenalty: s.repetitionPenalty } : {}),
      ...(s.logitBias !== undefined ? { logitBias: s.logitBias } : {}),
      ...(s.logprobs !== undefined ? { logprobs: s.logprobs } : {}),
      ...(s.n !== undefined ? { n: s.n } : {}),
      ...(s.ignoreEos ? { ignoreEos: true } : {}),
    };
    if (s.constraint) {
      // The gateway and the SDK refuse these already (buildJob); a job enqueued some other way is refused here too.
      refuseConstrainedConflicts(s);
      let g: Grammar;
      try {
        g = jsonGrammar(tokenizer, h.source.config.vocabSize, h.source.config.eosTokenIds, s.constraint);
      } catch (e) {
        if (e instanceof SchemaError) {
          const param = s.constraint.type === 'json_schema' && s.constraint.from === 'tools' ? 'tools' : 'response_format';
          throw new RequestError('invalid_request', { detail: e.message, param, cause: e });
        }
        throw e;
      }
      // The grammar closes its document within maxTokens (budget-aware masks), given room for the shortest one.
      const least = g.minTokens();
      if (least > req.maxTokens) {
        throw new RequestError('invalid_request', {
          detail: `max_tokens is ${req.maxTokens}${s.maxTokensAsked === undefined ? " (not set: the model's maxTokens, or what the context leaves)" : ''}, but the shortest document that satisfies ${s.constraint.type === 'json_object' ? 'a JSON object' : 'the JSON schema (response_format or a forced tool call)'} takes ${least} tokens of this model`,
          param: 'max_tokens',
        });
      }
      req.constraint = () => g.matcher();
    }
    const seqTokens = Math.min(ctx, prompt.length + s.maxTokens);
    h.meanSeqTokens = h.meanSeqTokens ? 0.9 * h.meanSeqTokens + 0.1 * seqTokens : seqTokens;
    try {
      for await (const ev of engine.generate(req, signal)) {
        if (ev.type === 'token') {
          yield ev;
        } else if (ev.finishReason === 'cancelled') {
          return;
        } else {
          yield { ...ev, finishReason: ev.finishReason };
        }
      }
    } catch (e) {
      if (isEngineError(e)) {
        if (e.nativeCode === 'cuda_sticky' || e.nativeCode === 'unusable') this.engineSticky = true;
        // A plain device error may be a sticky one that a library reported unclassified (cuBLAS's "failed to
        // launch" after a kernel corrupted the context): ask the device before failing the job as a request error.
        else if (e.nativeCode === 'cuda' && !this.probeDevice()) this.engineSticky = true;
        if (e.code === 'context_length_exceeded') throw new RequestError('context_length_exceeded', { detail: prompt.length, cause: e });
        if (e.code === 'invalid_request') throw new RequestError('invalid_request', { detail: e.message, cause: e });
      }
      throw new RequestError('generation_failed', { cause: e });
    }
  }

  capacity(id: string): ModelCapacity | null {
    const h = this.held.get(id);
    if (!h) return null;
    const e = h.ready as (Engine & { stats?: () => EngineStats }) | null;
    let stats: EngineStats | null = null;
    try {
      if (e && typeof e.stats === 'function') stats = e.stats();
    } catch {
      // a closing engine: no stats, the caps decide
    }
    return { stats, maxBatch: e?.options.maxBatch ?? this.maxBatch, meanSeqTokens: h.meanSeqTokens };
  }

  private async closeEngine(h: Held): Promise<void> {
    const p = h.engine;
    h.engine = null;
    h.ready = null;
    if (p) await p.then((e) => e.close(), () => {});
  }

  private get(id: string): Held {
    const h = this.held.get(id);
    if (!h) throw new RequestError('model_not_found', { detail: id });
    return h;
  }

  async close(): Promise<void> {
    clearTimeout(this.pinTimer);
    await Promise.allSettled([...this.held.values()].map((h) => this.closeEngine(h)));
    await this.runtime.close();
  }
}
