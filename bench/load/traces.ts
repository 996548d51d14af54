// Request lengths (and arrival times) from the real traces in ../shared/data/traces, for `bench load`.
//   azure-conv, azure-code: Azure LLM inference trace 2023 (TIMESTAMP, ContextTokens, GeneratedTokens; CSV)
//   mooncake-conv, mooncake-synth: Mooncake FAST'25 traces (timestamp ms, input_length, output_length; JSON lines)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rng } from '../../services/simulator/rng.ts';

export const TRACES = ['azure-conv', 'azure-code', 'mooncake-conv', 'mooncake-synth'] as const;
export type TraceName = (typeof TRACES)[number];

export interface TraceRequest {
  /** Arrival, seconds after the trace's first request. */
  atS: number;
  inputTokens: number;
  outputTokens: number;
}

/** The traces folder: SWAPSERVE_TRACES_DIR, else SWAPSERVE_SHARED_DATA/traces, else `../shared/data/traces` beside the checkout. */
export function tracesDir(): string {
  if (process.env.SWAPSERVE_TRACES_DIR) return process.env.SWAPSERVE_TRACES_DIR;
  if (process.env.SWAPSERVE_SHARED_DATA) return join(process.env.SWAPSERVE_SHARED_DATA, 'traces');
  return join(new URL('../..', import.meta.url).pathname, '..', 'shared', 'data', 'traces');
}

const FILES: Record<TraceName, string> = {
  'azure-conv': 'azure-llm-2023/AzureLLMInferenceTrace_conv.csv',
  'azure-code': 'azure-llm-2023/AzureLLMInferenceTrace_code.csv',
  'mooncake-conv': 'mooncake-fast25/conversation_trace.jsonl',
  'mooncake-synth': 'mooncake-fast25/synthetic_trace.jsonl',
};

/** Azure's "2023-11-16 18:15:46.6805900" (UTC, 7 fractional digits) as epoch seconds. */
function azureTime(s: string): number {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`bad Azure trace timestamp: ${JSON.stringify(s)}`);
  return Date.parse(`${m[1]}T${m[2]}Z`) / 1000 + (m[3] ? Number(`0.${m[3]}`) : 0);
}

/** Reads a trace, sorted by arrival; rows with a non-positive length are skipped (counted in `skipped`). */
export function loadTrace(name: TraceName, dir = tracesDir()): { requests: TraceRequest[]; skipped: number; file: string } {
  const file = join(dir, FILES[name]);
  const text = readFileSync(file, 'utf8');
  const rows: { t: number; i: number; o: number }[] = [];
  let skipped = 0;
  if (name.startsWith('azure')) {
    const lines = text.split('\n');
    const head = lines[0].trim().split(',');
    const [ti, ci, gi] = ['TIMESTAMP', 'ContextTokens', 'GeneratedTokens'].map((c) => head.indexOf(c));
    if (ti < 0 || ci < 0 || gi < 0) throw new Error(`${file}: expected columns TIMESTAMP, ContextTokens, GeneratedTokens; got ${lines[0]}`);
    for (const line of lines.slice(1)) {
      if (!line.trim()) continue;
      const f = line.split(',');
      const i = Number(f[ci]), o = Number(f[gi]);
      if (!(i > 0 && o > 0)) { skipped++; continue; }
      rows.push({ t: azureTime(f[ti]), i, o });
    }
  } else {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as { timestamp: number; input_length: number; output_length: number };
      if (!(r.input_length > 0 && r.output_length > 0)) { skipped++; continue; }
      rows.push({ t: r.timestamp / 1000, i: r.input_length, o: r.output_length });
    }
  }
  if (rows.length === 0) throw new Error(`${file}: no requests`);
  rows.sort((a, b) => a.t - b.t);
  const t0 = rows[0].t;
  return { requests: rows.map((r) => ({ atS: r.t - t0, inputTokens: r.i, outputTokens: r.o })), skipped, file };
}

/** A seeded PRNG: the same seed gives the same arrivals and the same picks of trace rows (the simulators' own). */
export { rng };

export interface Arrival {
  /** Seconds after the run's start. */
  atS: number;
  inputTokens: number;
  outputTokens: number;
}

/**
 * The run's arrivals over `durationS`: Poisson at `rate` requests/s with lengths drawn from the trace rows in order
 * (from a seeded offset), or, with `traceTime`, the trace's own timestamps divided by `speedup`.
 */
export function arrivals(trace: TraceRequest[], opts: { durationS: number; rate?: number; traceTime?: boolean; speedup?: number; seed: number; maxRequests?: number }): Arrival[] {
  const r = rng(opts.seed);
  const out: Arrival[] = [];
  const limit = opts.maxRequests ?? Infinity;
  if (opts.traceTime) {
    const k = opts.speedup ?? 1;
    for (const t of trace) {
      const at = t.atS / k;
      if (at >= opts.durationS || out.length >= limit) break;
      out.push({ atS: at, inputTokens: t.inputTokens, outputTokens: t.outputTokens });
    }
    return out;
  }
  const rate = opts.rate ?? 1;
  let idx = Math.floor(r() * trace.length);
  for (let at = -Math.log(1 - r()) / rate; at < opts.durationS && out.length < limit; at += -Math.log(1 - r()) / rate) {
    const t = trace[idx++ % trace.length];
    out.push({ atS: at, inputTokens: t.inputTokens, outputTokens: t.outputTokens });
  }
  return out;
}
