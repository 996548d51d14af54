// ModelBackend over the native weights runtime and engine (CPU or CUDA, picked by SWAPSERVE_BACKEND / auto).
// Moves and forward passes run on native threads; this file only does bookkeeping on the event loop.
import { Engine, isEngineError } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import type { Config, ModelEntry } from '../shared/config.ts';
import { SwapserveError } from '../shared/errors.ts';
import type { JobData } from '../shared/job.ts';
import type { MoveKind, Residency } from '../shared/vocab.ts';
import type { GenEvent, ModelBackend, MoveOutcome } from './backend.ts';

interface Held {
  entry: ModelEntry;
  source: ModelSource;
  tokenizer: Tokenizer;
  engine: Promise<Engine> | null;
}

export interface NativeBackendOptions {
  /** @defaultValue env SWAPSERVE_BACKEND, else auto */
  backend?: 'auto' | 'cpu' | 'cuda';
  /** CUDA device ordinal (one worker per GPU). @defaultValue 0 */
  device?: number;
  /** Sequences batched per engine step. @defaultValue config.worker.concurrency */
  maxBatch?: number;
  /** CPU compute threads, 0 = all cores. @defaultValue 0 */
  threads?: number;
}

export class NativeBackend implements ModelBackend {
  readonly kind: 'cpu' | 'cuda';
  readonly device: string;
  readonly budgets: { host: number; gpu: number };
  private readonly runtime: Runtime;
  private readonly held = new Map<string, Held>();
  private readonly maxBatch: number;
  private readonly threads: number;

  constructor(config: Config, opts: NativeBackendOptions = {}) {
    this.runtime = Runtime.open({
      backend: opts.backend, device: opts.device,
      hostBudgetBytes: config.budgets.hostBytes, gpuBudgetBytes: config.budgets.gpuBytes, scratchBudgetBytes: config.budgets.scratchBytes,
    });
    this.kind = this.runtime.backend;
    this.device = this.runtime.deviceName || this.kind;
    this.budgets = { host: config.budgets.hostBytes, gpu: config.budgets.gpuBytes };
    this.maxBatch = opts.maxBatch ?? config.worker.concurrency;
    this.threads = opts.threads ?? 0;
  }

  async register(entry: ModelEntry): Promise<{ bytes: number }> {
    const source = await openModel(entry.path);
    const tokenizer = await loadTokenizer(source);
    this.runtime.register(entry.id, source.layout);
    this.held.set(entry.id, { entry, source, tokenizer, engine: null });
    return { bytes: source.layout.totalBytes };
  }

  async move(kind: MoveKind, id: string, onProgress?: (d: number, t: number) => void): Promise<MoveOutcome> {
    const h = this.get(id);
    const o = onProgress ? { onProgress } : undefined;
    // Off the GPU tier: the engine's weights lease must go first (the runtime never frees a leased arena).
    if (kind === 'evict' || kind === 'drop') await this.closeEngine(h);
    let r;
    try {
      r = kind === 'load' ? await this.runtime.load(id, o)
        : kind === 'swap_in' ? await this.runtime.swapIn(id, o)
          : kind === 'load_to_gpu' ? await this.runtime.loadToGpu(id, o)
            : kind === 'evict' ? await this.runtime.evict(id)
              : await this.runtime.drop(id);
    } catch (e) {
      // An engine created while the weights were landing (execute-while-loading) leases the failed move's arena:
      // release it, so the arena goes back to the pool and the next move has its room.
      if (kind === 'swap_in' || kind === 'load_to_gpu') await this.closeEngine(h);
      throw e;
    }
    return { bytes: r.bytes, wallMs: r.wallMs };
  }

  residency(id: string): Residency {
    // Not registered yet (files still being opened): it is on disk.
    return this.held.has(id) ? this.runtime.residency(id).state : 'disk';
  }

  usage(): { host: number; gpu: number } {
    const u = this.runtime.usage();
    return { host: u.host.usedBytes, gpu: u.gpu.usedBytes };
  }

  /** The native runtime (tests hold a move with `holdNextForTest`; benches read it). */
  get runtimeForTest(): Runtime {
    return this.runtime;
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
    h.engine ??= Engine.create(this.runtime, id, h.source, h.tokenizer, {
      maxBatch: this.maxBatch, threads: this.threads,
      ...(h.entry.contextLength ? { maxContext: Math.min(h.entry.contextLength, h.source.config.maxPositions) } : {}),
    });
    h.engine.catch(() => { h.engine = null; });
    const engine = await h.engine;
    const prompt = job.input.type === 'chat'
      ? h.tokenizer.encode(h.tokenizer.applyChatTemplate(job.input.messages), { addBos: false })
      : h.tokenizer.encode(job.input.prompt, { addBos: true });
    const ctx = engine.options.maxContext;
    if (prompt.length >= ctx) throw new SwapserveError('context_length_exceeded', { detail: prompt.length });
    const s = job.sampling;
    try {
      for await (const ev of engine.generate({
        prompt, maxTokens: Math.min(s.maxTokens, ctx - prompt.length), temperature: s.temperature, topP: s.topP, topK: 0,
        stop: s.stop, ...(s.seed !== undefined ? { seed: s.seed } : {}),
      }, signal)) {
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
        if (e.code === 'context_length_exceeded') throw new SwapserveError('context_length_exceeded', { detail: prompt.length, cause: e });
        if (e.code === 'invalid_request') throw new SwapserveError('invalid_request', { detail: e.message, cause: e });
      }
      throw new SwapserveError('generation_failed', { cause: e });
    }
  }

  private async closeEngine(h: Held): Promise<void> {
    const p = h.engine;
    h.engine = null;
    if (p) await p.then((e) => e.close(), () => {});
  }

  private get(id: string): Held {
    const h = this.held.get(id);
    if (!h) throw new SwapserveError('model_not_found', { detail: id });
    return h;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.held.values()].map((h) => this.closeEngine(h)));
    await this.runtime.close();
  }
}
