// The headline's measurements: each path set up on the running stack (the bench arranges state, the system decides)
// and one request sent per sample, its numbers read from its trace. Cold samples first take the model out of the
// host tier with a fenced `drop`; worker starts follow a `drain` and the worker's exit.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { RuntimeAddon } from '../../native/ts/addon.ts';
import type { BenchModel, Prompt } from './models.ts';
import { fmtS } from './report.ts';
import { postStream, sampleFrom, workerStartFrom, type Mismatch, type Sample } from './sample.ts';
import type { SpanSink } from './span-sink.ts';
import type { Stack } from './stack.ts';

/** What a measurement needs around it: the stack, the trace receiver, the addon's page-cache calls, the clock. */
export interface MeasureContext {
  stack: Stack;
  sink: SpanSink;
  addon: RuntimeAddon;
  log: (line: string) => void;
  /** ms left before --deadline-s. */
  timeLeft: () => number;
}

/** How many samples of each kind (--reps, --cold-reps, --start-reps) and which phases run (--phases). */
export interface Reps {
  reps: number;
  coldReps: number;
  startReps: number;
  phases: ReadonlySet<'start' | 'swap' | 'cold'>;
}

export class Measure {
  readonly samples: Sample[] = [];
  readonly mismatches: Mismatch[] = [];
  /** The worker's device, as it registered (set by the first worker start). */
  device = '';

  constructor(private readonly ctx: MeasureContext) {}

  /** The fraction (0..1) of the model's least cached file in the page cache. */
  private cached(m: BenchModel): number {
    return Math.min(...m.files.map((f) => this.ctx.addon.cachedFraction(f)));
  }

  /** Drops the model's files from the page cache; returns the largest fraction (0..1) still cached. */
  private dropCache(m: BenchModel): number {
    for (const f of m.files) this.ctx.addon.dropPageCache(f);
    return Math.max(...m.files.map((f) => this.ctx.addon.cachedFraction(f)));
  }

  private warmCache(m: BenchModel): void {
    if (this.cached(m) > 0.999) return;
    spawnSync('sh', ['-c', 'cat "$@" > /dev/null', 'sh', ...m.files]);
  }

  /** One streamed request set up as `intended` ('prep': not a sample of any path); its sample, from its trace. */
  private async send(m: BenchModel, p: Prompt, intended: string, cachedBefore: number | null): Promise<Sample> {
    const { stack, sink } = this.ctx;
    const traceId = randomBytes(16).toString('hex');
    const r = await postStream(`${stack.url}/v1/completions`, { model: m.id, prompt: p.text, max_tokens: 2, temperature: 0, stream: true }, traceId);
    if (r.status !== 200 || !r.text.includes('[DONE]')) throw new Error(`request to ${m.id} failed: ${r.status} ${r.text.slice(0, 500)}`);
    const spans = await sink.complete(traceId);
    const s = sampleFrom(spans, { model: m.id, prompt: p.n, promptTokens: p.tokens, intended, clientTtftMs: r.firstChunkMs, cachedBefore });
    if (s.path === 'cold:worker_start') {
      const worker = await sink.servedBy(traceId);
      s.workerStart = worker ? workerStartFrom(sink.traces.get(traceId) ?? spans, await sink.workerStart(worker)) : null;
    }
    const key = s.path === 'warm' || s.path === 'swap' ? s.path : `${s.path}@${intended.split('@')[1] ?? ''}`;
    if (key !== intended && intended !== 'prep') this.mismatches.push({ intended, got: s.path, model: m.id, prompt: p.n });
    this.samples.push(s);
    const ws = s.workerStart ? `; worker: spawn ${fmtS(s.workerStart.spawnMs)}, ready ${fmtS(s.workerStart.readyMs)}, to load ${fmtS(s.workerStart.toLoadMs)}` : '';
    this.ctx.log(`${m.id} ${p.n} tok, ${intended}: path ${s.path}, TTFT ${fmtS(s.ttftMs)} (client ${fmtS(s.clientTtftMs)}; queue ${fmtS(s.queueMs)}, load ${fmtS(s.loadMs)}, swap ${fmtS(s.swapMs)}, prefill ${fmtS(s.prefillMs)}${ws})`);
    return s;
  }

  /** A request that only arranges state: its sample is not kept. */
  private async prep(m: BenchModel, p: Prompt): Promise<void> {
    await this.send(m, p, 'prep', null);
    this.samples.pop();
  }

  /** The worker that runs (waits for one), and where `model` is on it. */
  private async where(model: string) {
    const [w] = await this.ctx.stack.waitWorkers((ws) => ws.length === 1, 'one worker');
    return { w, res: w.models[model]?.residency ?? 'disk' };
  }

  /** Takes `m` out of every tier: another model is made resident (the scheduler evicts m to host), then m is dropped. */
  private async toDisk(m: BenchModel, other: BenchModel, prompt: Prompt): Promise<void> {
    let { res } = await this.where(m.id);
    if (res === 'gpu' || res === 'swapping-in') {
      await this.prep(other, prompt);
      ({ res } = await this.where(m.id));
    }
    const { w } = await this.where(m.id);
    if (res !== 'disk') await this.ctx.stack.command(w.workerId, { kind: 'drop', model: m.id });
    await this.ctx.stack.waitWorkers((ws) => ws.length === 1 && (ws[0].models[m.id]?.residency ?? 'disk') === 'disk', `${m.id} on disk`);
  }

  /** A scale from zero, page cache dropped: drains the running worker first unless `first` (none runs yet). */
  private async workerStart(m: BenchModel, p: Prompt, first: boolean): Promise<void> {
    if (!first) await this.ctx.stack.drainWorkers();
    const left = this.dropCache(m);
    await this.send(m, p, 'cold:worker_start@disk', left);
    if (!this.device) this.device = (await this.ctx.stack.workers())[0]?.device ?? '';
  }

  /** 1. Cold with a worker start, from disk: the run's first requests (no worker exists before the first). */
  async workerStarts(m8: BenchModel, prompts: Prompt[], reps: number): Promise<void> {
    for (let rep = 0; rep < reps; rep++) {
      for (const [i, p] of prompts.entries()) await this.workerStart(m8, p, rep === 0 && i === 0);
    }
  }

  /**
   * 2. Warm and swap, every model, both prompts. One request to each first (not recorded) parks all three in the
   * host tier; then a ring 8B -> 7B -> 11B -> 8B ... makes each request a swap, each followed by a warm one. The 8B
   * model is brought in again between the others: a fresh worker loads it with load_to_gpu (no host copy yet, as
   * its host pool was still being pinned), so the 7B one displaces it to disk and it must be loaded once more.
   */
  async warmAndSwap([m8, m7, m11]: BenchModel[], prompts: Prompt[], reps: number): Promise<void> {
    for (const m of [m7, m8, m11]) await this.prep(m, prompts[0]);
    for (const p of prompts) {
      for (let rep = 0; rep < reps && this.ctx.timeLeft() > 0; rep++) {
        for (const m of [m8, m7, m11]) {
          await this.send(m, p, 'swap', null);
          await this.send(m, p, 'warm', null);
        }
      }
    }
  }

  /** 3. Cold from the page cache and from disk: each model, both prompts; the 8B model first and `coldReps` more. */
  async coldLoads([m8, m7, m11]: BenchModel[], prompts: Prompt[], coldReps: number): Promise<void> {
    const order: { m: BenchModel; other: BenchModel }[] = [
      { m: m8, other: m7 }, { m: m7, other: m11 }, { m: m11, other: m8 },
      ...Array.from({ length: coldReps }, () => ({ m: m8, other: m7 })),
    ];
    for (const kind of ['cache', 'disk'] as const) {
      for (const [i, { m, other }] of order.entries()) {
        for (const p of prompts) {
          if (this.ctx.timeLeft() < (kind === 'disk' ? 40_000 : 15_000) && i > 0) continue;
          await this.toDisk(m, other, prompts[0]);
          await this.send(m, p, `cold:disk_load@${kind}`, this.cacheFor(m, kind));
        }
      }
    }
  }

  /** Sets the page cache for a cold sample; returns the fraction (0..1) cached before it. */
  private cacheFor(m: BenchModel, kind: 'cache' | 'disk'): number {
    if (kind === 'disk') return this.dropCache(m);
    this.warmCache(m);
    return this.cached(m);
  }

  /** 4. One more worker start (8B, the first prompt) if time allows. */
  async lastWorkerStart(m8: BenchModel, prompts: Prompt[]): Promise<void> {
    if (this.ctx.timeLeft() > 30_000) await this.workerStart(m8, prompts[0], false);
  }

  /** The four phases in order (worker starts first: the stack starts with no worker). */
  async all(models: BenchModel[], prompts: Prompt[], reps: Reps): Promise<void> {
    // The stack starts with no worker: the first worker start always runs.
    await this.workerStarts(models[0], reps.phases.has('start') ? prompts : prompts.slice(0, 1), reps.phases.has('start') ? reps.startReps : 1);
    if (reps.phases.has('swap')) await this.warmAndSwap(models, prompts, reps.reps);
    if (reps.phases.has('cold')) await this.coldLoads(models, prompts, reps.coldReps);
    if (reps.phases.has('start')) await this.lastWorkerStart(models[0], prompts);
  }
}
