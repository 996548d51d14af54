// The load run itself (library; load.ts is the command): arrivals (Poisson, trace timestamps, or a closed loop of
// C streams) → streamed requests through the gateway → per-request timings → the report; and the sweep for the
// highest rate inside the SLO.
import type { Tokenizer } from '../../native/ts/tokenizer/index.ts';
import { stream, type RequestResult } from './client.ts';
import { clampToContext, PromptBuilder, type Endpoint } from './prompts.ts';
import { arrivals, type Arrival, type TraceRequest } from './traces.ts';

export interface LoadTarget {
  /** Gateway base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  model: string;
  endpoint: Endpoint;
  tokenizer: Tokenizer;
  /** The model's context as the worker serves it (tokens): prompt + output are clamped into it. */
  context: number;
  headers?: Record<string, string>;
}

export interface LoadSpec {
  /** Request lengths to draw from (trace rows, or one fixed size for a profile bucket). */
  lengths: TraceRequest[];
  durationS: number;
  /** Poisson arrivals at this rate (requests/s). */
  rate?: number;
  /** Arrivals at the trace's own timestamps, divided by `speedup`. */
  traceTime?: boolean;
  speedup?: number;
  /** Closed loop instead of arrivals: this many streams, each sending its next request when the last ends. */
  concurrency?: number;
  /** Stop after this many requests (closed loop: exactly this many). */
  maxRequests?: number;
  seed: number;
  /** Scale trace lengths to fit a small model: lengths are capped here after the context clamp. */
  maxInput?: number;
  maxOutput?: number;
  sloTtftMs: number;
  sloTpotMs: number;
  ignoreEos: boolean;
  temperature: number;
  /** A request with no end after this long is lost (s). */
  timeoutS: number;
  /** Status endpoint poll period for memory in use (ms); 0 = off. */
  statusPollMs?: number;
  /** Called with every finished request (tests compare texts). */
  onResult?: (r: RequestResult & { index: number; inputTokens: number; outputTokens: number; promptText: string }) => void;
}

export interface Percentiles { p50: number; p90: number; p99: number }

export interface LoadReport {
  offered: { mode: 'poisson' | 'trace-time' | 'closed-loop'; rate: number | null; concurrency: number | null; durationS: number };
  requests: number;
  ok: number;
  failed: number;
  lost: number;
  errors: Record<string, number>;
  wallS: number;
  throughput: { requestsPerS: number; outputTokensPerS: number; inputTokensPerS: number };
  ttftMs: Percentiles | null;
  tpotMs: Percentiles | null;
  e2eMs: Percentiles | null;
  slo: { ttftMs: number; tpotMs: number };
  goodput: { requestsPerS: number; share: number };
  tokens: { input: number; output: number; meanInput: number; meanOutput: number };
  /** Requests whose trace lengths were clamped to the context or to --max-input/--max-output. */
  clamped: number;
  /** ignore_eos was asked; requests that still ended before max_tokens (finish_reason stop). */
  endedEarly: number;
  ignoreEos: 'honoured' | 'not-honoured' | 'rejected-by-gateway' | 'off';
  memory: { gpuPeakBytes: number; hostPeakBytes: number; gpuLastBytes: number; hostLastBytes: number; workers: number; samples: number } | null;
  notes: string[];
}

export function percentiles(xs: number[]): Percentiles | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return { p50: at(50), p90: at(90), p99: at(99) };
}

/** Time per output token after the first (ms); null for a one-token completion. */
export function tpotOf(r: RequestResult): number | null {
  return r.completionTokens > 1 && r.ttftMs >= 0 ? (r.e2eMs - r.ttftMs) / (r.completionTokens - 1) : null;
}

/** Memory in use from the gateway's status data (GET /status/api/state: the workers' heartbeated usage). */
class MemoryPoll {
  gpuPeak = 0; hostPeak = 0; gpuLast = 0; hostLast = 0; workers = 0; samples = 0;
  private timer: NodeJS.Timeout | null = null;
  private failed = '';
  constructor(private readonly t: LoadTarget, private readonly everyMs: number) {}
  start(): void {
    if (this.everyMs <= 0) return;
    const tick = () => { void this.sample().finally(() => { if (this.timer) this.timer = setTimeout(tick, this.everyMs); }); };
    this.timer = setTimeout(tick, 0);
  }
  async sample(): Promise<void> {
    try {
      const r = await fetch(new URL('status/api/state', this.t.url.endsWith('/') ? this.t.url : `${this.t.url}/`), { headers: this.t.headers ?? {} });
      if (!r.ok) { this.failed = `status endpoint answered ${r.status}`; return; }
      const s = (await r.json()) as { workers?: { usage?: { gpu?: number; host?: number } }[] };
      let gpu = 0, host = 0;
      for (const w of s.workers ?? []) { gpu += w.usage?.gpu ?? 0; host += w.usage?.host ?? 0; }
      this.gpuLast = gpu; this.hostLast = host; this.workers = s.workers?.length ?? 0; this.samples++;
      this.gpuPeak = Math.max(this.gpuPeak, gpu); this.hostPeak = Math.max(this.hostPeak, host);
    } catch (e) {
      this.failed = `status endpoint: ${(e as Error).message}`;
    }
  }
  async stop(): Promise<LoadReport['memory'] | string> {
    const t = this.timer;
    this.timer = null;
    if (t) clearTimeout(t);
    if (this.everyMs > 0) await this.sample();
    if (this.samples === 0) return this.failed || 'status polling off';
    return { gpuPeakBytes: this.gpuPeak, hostPeakBytes: this.hostPeak, gpuLastBytes: this.gpuLast, hostLastBytes: this.hostLast, workers: this.workers, samples: this.samples };
  }
}

/** One load run against a running stack. */
export async function runLoad(t: LoadTarget, spec: LoadSpec): Promise<{ report: LoadReport; results: RequestResult[] }> {
  const closed = spec.concurrency !== undefined && spec.concurrency > 0;
  const plan: Arrival[] = closed
    ? Array.from({ length: spec.maxRequests ?? 1000 }, (_, i) => {
      const l = spec.lengths[(i + spec.seed) % spec.lengths.length];
      return { atS: 0, inputTokens: l.inputTokens, outputTokens: l.outputTokens };
    })
    : arrivals(spec.lengths, { durationS: spec.durationS, rate: spec.rate, traceTime: spec.traceTime, speedup: spec.speedup, seed: spec.seed, maxRequests: spec.maxRequests });
  const notes: string[] = [];
  // Lengths into the context (and the caps), then prompts of those lengths.
  let clamped = 0;
  const sized = plan.map((a) => {
    const c = clampToContext(Math.min(a.inputTokens, spec.maxInput ?? Infinity), Math.min(a.outputTokens, spec.maxOutput ?? Infinity), t.context);
    if (c.clamped || a.inputTokens > (spec.maxInput ?? Infinity) || a.outputTokens > (spec.maxOutput ?? Infinity)) clamped++;
    return { ...a, inputTokens: c.input, outputTokens: c.output };
  });
  const maxIn = sized.reduce((m, a) => Math.max(m, a.inputTokens), 1);
  const pb = new PromptBuilder(t.tokenizer, t.endpoint, maxIn, spec.seed);
  const prompts = sized.map((a, i) => pb.build(a.inputTokens, i * 7919 + spec.seed));
  if (clamped) notes.push(`${clamped} of ${sized.length} requests clamped to the context (${t.context} tokens)${spec.maxInput || spec.maxOutput ? ` or to --max-input ${spec.maxInput ?? '-'} / --max-output ${spec.maxOutput ?? '-'}` : ''}`);

  let ignoreEos = spec.ignoreEos;
  let ignoreEosState: LoadReport['ignoreEos'] = ignoreEos ? 'honoured' : 'off';
  const results: RequestResult[] = new Array(sized.length);
  const mem = new MemoryPoll(t, spec.statusPollMs ?? 500);
  const one = async (i: number) => {
    const a = sized[i];
    const req = { model: t.model, endpoint: t.endpoint, text: prompts[i].text, maxTokens: a.outputTokens, ignoreEos, temperature: spec.temperature };
    let r = await stream(t.url, req, spec.timeoutS * 1000, t.headers);
    // A gateway that rejects the extension by name: say so once, and go on without it.
    if (r.outcome === 'failed' && r.status === 400 && r.param === 'ignore_eos') {
      if (ignoreEos) notes.push('the gateway rejected ignore_eos (400, param ignore_eos): sent without it from then on; completions may end at EOS before the trace length');
      ignoreEos = false;
      ignoreEosState = 'rejected-by-gateway';
      r = await stream(t.url, { ...req, ignoreEos: false }, spec.timeoutS * 1000, t.headers);
    }
    results[i] = r;
    spec.onResult?.({ ...r, index: i, inputTokens: prompts[i].tokens, outputTokens: a.outputTokens, promptText: prompts[i].text });
  };
  mem.start();
  const t0 = performance.now();
  if (closed) {
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(spec.concurrency!, sized.length) }, async () => {
      while (next < sized.length) await one(next++);
    }));
  } else {
    await Promise.all(sized.map((a, i) => new Promise<void>((resolve) => {
      setTimeout(() => { void one(i).then(resolve); }, Math.max(0, a.atS * 1000 - (performance.now() - t0)));
    })));
  }
  const wallS = (performance.now() - t0) / 1000;
  const memory = await mem.stop();
  if (typeof memory === 'string') notes.push(`memory in use not read: ${memory}`);

  const ok = results.filter((r) => r.outcome === 'ok');
  const errors: Record<string, number> = {};
  for (const r of results) if (r.outcome !== 'ok') errors[`${r.outcome}:${r.error ?? 'unknown'}`] = (errors[`${r.outcome}:${r.error ?? 'unknown'}`] ?? 0) + 1;
  const tpots = ok.map(tpotOf).filter((x): x is number => x !== null);
  const meets = ok.filter((r) => r.ttftMs <= spec.sloTtftMs && (tpotOf(r) ?? 0) <= spec.sloTpotMs).length;
  let endedEarly = 0;
  if (ignoreEos) {
    results.forEach((r, i) => { if (r.outcome === 'ok' && r.finishReason === 'stop' && r.completionTokens < sized[i].outputTokens) endedEarly++; });
    if (endedEarly > 0) {
      ignoreEosState = 'not-honoured';
      notes.push(`ignore_eos sent but ${endedEarly} of ${ok.length} completions ended at EOS before max_tokens: the gateway does not pass ignore_eos on (outputs shorter than the trace's)`);
    }
  }
  const inTok = ok.reduce((s, r) => s + r.promptTokens, 0);
  const outTok = ok.reduce((s, r) => s + r.completionTokens, 0);
  const report: LoadReport = {
    offered: { mode: closed ? 'closed-loop' : spec.traceTime ? 'trace-time' : 'poisson', rate: closed ? null : spec.traceTime ? null : spec.rate ?? null, concurrency: closed ? spec.concurrency! : null, durationS: spec.durationS },
    requests: results.length, ok: ok.length,
    failed: results.filter((r) => r.outcome === 'failed').length,
    lost: results.filter((r) => r.outcome === 'lost').length,
    errors, wallS,
    throughput: { requestsPerS: ok.length / wallS, outputTokensPerS: outTok / wallS, inputTokensPerS: inTok / wallS },
    ttftMs: percentiles(ok.map((r) => r.ttftMs)),
    tpotMs: percentiles(tpots),
    e2eMs: percentiles(ok.map((r) => r.e2eMs)),
    slo: { ttftMs: spec.sloTtftMs, tpotMs: spec.sloTpotMs },
    goodput: { requestsPerS: meets / wallS, share: results.length ? meets / results.length : 0 },
    tokens: { input: inTok, output: outTok, meanInput: ok.length ? inTok / ok.length : 0, meanOutput: ok.length ? outTok / ok.length : 0 },
    clamped, endedEarly, ignoreEos: ignoreEosState,
    memory: typeof memory === 'string' ? null : memory,
    notes,
  };
  return { report, results };
}

/** Whether a run kept the SLO at p99 with nothing failed or lost. */
export function meetsSlo(r: LoadReport): boolean {
  return r.failed === 0 && r.lost === 0 && r.ttftMs !== null && r.ttftMs.p99 <= r.slo.ttftMs && (r.tpotMs === null || r.tpotMs.p99 <= r.slo.tpotMs);
}

export interface SweepPoint { rate: number; meets: boolean; report: LoadReport }
export interface SweepResult {
  maxRate: number;
  /** The search stopped at its cap (maxRate) still meeting the SLO: the true limit is higher. */
  capped: boolean;
  /** The deadline stopped the search: maxRate is the highest rate seen meeting the SLO, a lower bound. */
  cut?: boolean;
  points: SweepPoint[];
}

/**
 * The highest Poisson rate whose run keeps p99 TTFT and TPOT inside the SLO (0 failed, 0 lost): doubles from
 * `startRate` until a run misses (or `maxRate`), then bisects `steps` times between the last pass and the miss.
 * Every run is a short one of `spec.durationS`. maxRate 0 = nothing passed even at the lowest rate tried.
 */
export async function sweep(t: LoadTarget, spec: LoadSpec, opts: { startRate: number; maxRate?: number; steps: number; minRate?: number; log?: (s: string) => void; deadline?: number;
  /** Called after every run with the points so far (a caller that is killed mid-search keeps them). */
  onPoint?: (points: SweepPoint[]) => void }): Promise<SweepResult> {
  const points: SweepPoint[] = [];
  // opts.deadline (epoch ms): no run starts after it (the first always runs; one started before it runs to its end).
  const late = (): boolean => opts.deadline !== undefined && Date.now() > opts.deadline;
  const tryRate = async (rate: number) => {
    const { report } = await runLoad(t, { ...spec, rate, traceTime: false, concurrency: undefined });
    const p = { rate, meets: meetsSlo(report), report };
    points.push(p);
    opts.onPoint?.(points);
    opts.log?.(`rate ${rate.toFixed(3)}/s: p99 TTFT ${report.ttftMs?.p99.toFixed(0) ?? '-'} ms, p99 TPOT ${report.tpotMs?.p99.toFixed(1) ?? '-'} ms, ${report.failed} failed, ${report.lost} lost -> ${p.meets ? 'meets' : 'misses'} the SLO`);
    return p.meets;
  };
  const cap = opts.maxRate ?? Infinity;
  let lo = 0;
  let hi = opts.startRate;
  // Grow (or shrink) until the pass/miss boundary is bracketed.
  if (await tryRate(hi)) {
    lo = hi;
    for (;;) {
      if (hi >= cap) return { maxRate: lo, capped: true, points };
      if (late()) return { maxRate: lo, capped: false, cut: true, points };
      hi = Math.min(cap, hi * 2);
      if (!(await tryRate(hi))) break;
      lo = hi;
    }
  } else {
    const floor = opts.minRate ?? opts.startRate / 16;
    for (let r = hi / 2; r >= floor; r /= 2) {
      if (late()) return { maxRate: 0, capped: false, cut: true, points };
      if (await tryRate(r)) { lo = r; break; }
      hi = r;
    }
    if (lo === 0) return { maxRate: 0, capped: false, points };
  }
  for (let i = 0; i < opts.steps; i++) {
    if (late()) return { maxRate: lo, capped: false, cut: true, points };
    const mid = (lo + hi) / 2;
    if (await tryRate(mid)) lo = mid;
    else hi = mid;
  }
  return { maxRate: lo, capped: false, points };
}
