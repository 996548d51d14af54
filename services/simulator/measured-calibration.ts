// The engine and tier rates a simulator-vs-reality run measured (bench/fleet/replay.ts), in the terms the simulated
// cluster (cluster.ts) prices them: one engine pass of `tokens` tokens (`prefillS`), one decode step (`decodeStepS`),
// a host -> GPU copy and a disk read per byte. Pure: per-request rows in, rates out.
//
// Why "clean" requests. A request's own timings mix its work with its neighbours': its prefill waits for passes that
// feed other prompts, and its decode window holds the mixed passes in which other prompts' chunks were fed. The
// simulator runs those neighbours' passes itself (cluster.ts `kick`), so a rate measured over such windows would
// charge that work twice: in run 13 the median decode step over every request was 1.66/2.40/3.20 ms against
// 1.31/1.79/2.53 ms over decode windows no other prompt was fed in, and the simulated batches ran ~30% long, holding
// waiting swaps behind them. So each rate comes from the windows in which only the thing it prices ran.
import type { ModelShape } from '../fleet/calibration.ts';

/** What a replay recorded of one answered request (the final chunk's Server-Timing and the client's clock). */
export interface MeasuredRequest {
  id: number;
  model: string;
  /** When the client sent it (ms since the replay's start). */
  at: number;
  path: 'warm' | 'swap' | 'cold';
  /** Client TTFT (ms). */
  ttftMs: number;
  /** Server-Timing: queue_ms, load_ms, swap_ms, prefill_ms, ttft_ms, decode_ms, total_ms (ms, from the request's arrival). */
  timing: Record<string, number>;
  /** decode_ms / (completion tokens - 1); null with one token. */
  stepMs: number | null;
  promptTokens: number;
  outputTokens: number;
}

/** A per-pass cost line: one engine pass of `tokens` tokens takes `passS + tokens * tokenS` seconds. */
export interface PassFit { passS: number; tokenS: number; samples: number }

export interface MeasuredRates {
  swapBytesPerS: number;
  diskBytesPerS: number;
  /** Per model: one engine pass (the cluster prices every prefill or mixed pass with it). */
  prefill: Map<string, PassFit>;
  /** Per model: one decode step (s), and how many requests' decode windows it was measured on. */
  step: Map<string, { s: number; samples: number }>;
}

export const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

type Window = [number, number];
const overlaps = (a: Window, b: Window): boolean => a[0] < b[1] && b[0] < a[1];
/** Generation start (or landing) to first token, on the client's clock (the server's offset is the same for all). */
const prefillWindow = (r: MeasuredRequest): Window => [r.at + r.timing.ttft_ms - r.timing.prefill_ms, r.at + r.timing.ttft_ms];
const decodeWindow = (r: MeasuredRequest): Window => [r.at + r.timing.ttft_ms, r.at + r.timing.total_ms];

/**
 * Least squares of y = passes * a + tokens * b with a, b >= 0 (a negative one is dropped and the other refitted alone).
 * Passes and tokens are nearly proportional for long prompts; short ones (one pass) separate them.
 */
function fitPasses(xs: { passes: number; tokens: number; s: number }[]): PassFit {
  let pp = 0, tt = 0, pt = 0, py = 0, ty = 0;
  for (const x of xs) {
    pp += x.passes * x.passes; tt += x.tokens * x.tokens; pt += x.passes * x.tokens; py += x.passes * x.s; ty += x.tokens * x.s;
  }
  const det = pp * tt - pt * pt;
  let a = det > 0 ? (py * tt - ty * pt) / det : -1;
  let b = det > 0 ? (pp * ty - pt * py) / det : -1;
  if (a < 0 || b < 0) {
    // One term alone: the one whose fit leaves the smaller squared error.
    const aOnly = py / pp, bOnly = ty / tt;
    const err = (fa: number, fb: number): number => xs.reduce((e, x) => e + (x.s - fa * x.passes - fb * x.tokens) ** 2, 0);
    [a, b] = err(aOnly, 0) <= err(0, bOnly) ? [aOnly, 0] : [0, bOnly];
  }
  return { passS: a, tokenS: b, samples: xs.length };
}

/**
 * Rates from a run's rows. Copies: the median of bytes / swap_ms (swap requests) and bytes / load_ms (cold ones).
 * A pass: fitted on warm requests whose prefill window no other request's prefill overlapped, as their
 * ceil(tokens / prefillChunk) passes (the engine feeds a prompt `prefillChunk` tokens a pass). A decode step: the
 * median per-token time of requests whose decode window no other request's prefill overlapped.
 * @throws Error when a model has no clean sample of either (the run cannot calibrate it).
 */
export function measureRates(real: MeasuredRequest[], shapes: ModelShape[], prefillChunk: number): MeasuredRates {
  if (!Number.isInteger(prefillChunk) || prefillChunk < 1) throw new Error(`Expected a positive integer for prefillChunk but received ${prefillChunk}`);
  const bytes = new Map(shapes.map((s) => [s.name, s.weightBytes]));
  const rate = (path: MeasuredRequest['path'], key: 'swap_ms' | 'load_ms'): number =>
    median(real.filter((r) => r.path === path && (r.timing[key] ?? 0) > 1 && bytes.has(r.model)).map((r) => bytes.get(r.model)! / (r.timing[key] / 1000)));
  const prefills = real.filter((r) => r.timing.prefill_ms !== undefined && r.timing.ttft_ms !== undefined).map((r) => ({ r, w: prefillWindow(r) }));
  const alone = (r: MeasuredRequest, w: Window): boolean => !prefills.some((o) => o.r !== r && overlaps(o.w, w));
  const prefill = new Map<string, PassFit>();
  const step = new Map<string, { s: number; samples: number }>();
  for (const { name } of shapes) {
    const warm = prefills.filter(({ r, w }) => r.model === name && r.path === 'warm' && r.promptTokens > 0 && alone(r, w));
    if (warm.length === 0) throw new Error(`model ${name}: no warm request whose prefill ran alone; the run cannot calibrate its prefill`);
    prefill.set(name, fitPasses(warm.map(({ r }) => ({ passes: Math.ceil(r.promptTokens / prefillChunk), tokens: r.promptTokens, s: r.timing.prefill_ms / 1000 }))));
    const decodes = real.filter((r) => r.model === name && r.stepMs !== null && r.timing.total_ms !== undefined && alone(r, decodeWindow(r)));
    if (decodes.length === 0) throw new Error(`model ${name}: no request whose decode ran with no prompt fed beside it; the run cannot calibrate its decode step`);
    step.set(name, { s: median(decodes.map((r) => r.stepMs! / 1000)), samples: decodes.length });
  }
  return { swapBytesPerS: rate('swap', 'swap_ms'), diskBytesPerS: rate('cold', 'load_ms'), prefill, step };
}
