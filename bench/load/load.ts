// `swapserve bench load`: drives a RUNNING stack through its gateway with streamed OpenAI requests whose lengths are
// replayed from the real traces (Azure 2023 conv/code, Mooncake), arrivals Poisson at --rate, at the trace's own
// timestamps (--trace-time), or a closed loop of --concurrency streams; prints a table and writes JSON (--out).
// --sweep finds the highest rate at which p99 TTFT and TPOT still meet the SLO (bisection over short runs).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from '../../services/config/config.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { isSwapserveError } from '../../contracts/errors.ts';
import { closeAgents } from './client.ts';
import { runLoad, sweep, type LoadReport, type LoadSpec, type LoadTarget, type SweepResult } from './run.ts';
import { loadTrace, TRACES, type TraceName } from './traces.ts';
import type { Endpoint } from './prompts.ts';

const USAGE = `usage: swapserve bench load --model ID [options]

Drives a running stack (swapserve up, or gateway + workers) through its gateway: streamed requests in the OpenAI
wire format, lengths replayed from a trace, prompts built to each length for the model's tokenizer.

target:
  --url URL            gateway base URL (default: http://<config gateway host>:<port>)
  --config FILE        the stack's config (model path, context, gateway address); else SWAPSERVE_CONFIG / defaults
  --model ID           the model to load (required)
  --model-path PATH    model folder or .gguf for the tokenizer (default: the config entry's path)
  --context N          the model's served context, tokens (default: the entry's contextLength, else min(maxPositions, 4096))
  --endpoint E         chat | completions (default chat)
  --api-key KEY        sent as Authorization: Bearer (default env SWAPSERVE_API_KEY)
load:
  --trace T            ${TRACES.join(' | ')} (default azure-conv)
  --rate R             Poisson arrivals per second (default 1)
  --trace-time         arrivals at the trace's own timestamps instead
  --speedup K          with --trace-time: timestamps divided by K (default 1)
  --concurrency C      closed loop of C streams instead of arrivals (with --requests)
  --duration-s S       arrivals for S seconds (default 60)
  --requests N         at most N requests (closed loop: exactly N; default 1000)
  --max-input N        cap prompt lengths (a small model); --max-output N caps outputs
  --no-ignore-eos      do not send ignore_eos (outputs then end at EOS, not at the trace's length)
  --temperature T      sampling temperature (default 0: greedy)
  --seed N             arrivals and length picks (default 1)
  --timeout-s S        a request with no end after S seconds is lost (default 300)
SLO:
  --slo-ttft-ms MS     (default 2000)   --slo-tpot-ms MS (default 100)
  --sweep              find the highest Poisson rate meeting the SLO at p99 (each run --duration-s long)
  --sweep-steps N      bisection steps after bracketing (default 4); --max-rate R caps the search
  --deadline-s S       with --sweep: no run starts S seconds after the start (the result so far is printed and
                       written, marked cut; a run started before it ends within --duration-s + --timeout-s)
output:
  --out FILE           the JSON report
  --json               print the JSON report instead of the table
`;

const OPTIONS = {
  url: { type: 'string' }, config: { type: 'string' }, model: { type: 'string' }, 'model-path': { type: 'string' }, context: { type: 'string' },
  endpoint: { type: 'string' }, 'api-key': { type: 'string' }, trace: { type: 'string' }, rate: { type: 'string' }, 'trace-time': { type: 'boolean' },
  speedup: { type: 'string' }, concurrency: { type: 'string' }, 'duration-s': { type: 'string' }, requests: { type: 'string' },
  'max-input': { type: 'string' }, 'max-output': { type: 'string' }, 'no-ignore-eos': { type: 'boolean' }, temperature: { type: 'string' },
  seed: { type: 'string' }, 'timeout-s': { type: 'string' }, 'slo-ttft-ms': { type: 'string' }, 'slo-tpot-ms': { type: 'string' },
  sweep: { type: 'boolean' }, 'sweep-steps': { type: 'string' }, 'max-rate': { type: 'string' }, 'deadline-s': { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

function num(v: string | undefined, name: string, def: number, opts: { int?: boolean; min?: number; positive?: boolean } = {}): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.positive && n <= 0) || (opts.min !== undefined && n < opts.min)) {
    throw new UsageError(`--${name} must be ${opts.int ? 'an integer' : 'a number'}${opts.positive ? ' > 0' : opts.min !== undefined ? ` >= ${opts.min}` : ''}, got ${JSON.stringify(v)}`);
  }
  return n;
}

const ms = (x: number | undefined) => (x === undefined ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const gb = (b: number) => `${(b / 1e9).toFixed(b >= 1e9 ? 2 : 4)} GB`;

/** The report as a markdown table. */
export function table(r: LoadReport, title = 'bench load'): string {
  const offered = r.offered.mode === 'closed-loop' ? `closed loop, ${r.offered.concurrency} streams` : r.offered.mode === 'trace-time' ? 'trace timestamps' : `Poisson ${r.offered.rate} req/s`;
  const rows: [string, string][] = [
    ['offered', `${offered}, ${r.requests} requests in ${r.wallS.toFixed(1)} s`],
    ['completed / failed / lost', `${r.ok} / ${r.failed} / ${r.lost}${Object.keys(r.errors).length ? ` (${Object.entries(r.errors).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`],
    ['throughput', `${r.throughput.requestsPerS.toFixed(2)} req/s, ${r.throughput.outputTokensPerS.toFixed(1)} output tok/s (${r.throughput.inputTokensPerS.toFixed(0)} input tok/s)`],
    ['TTFT p50 / p90 / p99', r.ttftMs ? `${ms(r.ttftMs.p50)} / ${ms(r.ttftMs.p90)} / ${ms(r.ttftMs.p99)} ms` : '-'],
    ['TPOT p50 / p90 / p99', r.tpotMs ? `${ms(r.tpotMs.p50)} / ${ms(r.tpotMs.p90)} / ${ms(r.tpotMs.p99)} ms` : '-'],
    ['e2e p50 / p99', r.e2eMs ? `${ms(r.e2eMs.p50)} / ${ms(r.e2eMs.p99)} ms` : '-'],
    [`goodput (TTFT <= ${r.slo.ttftMs} ms, TPOT <= ${r.slo.tpotMs} ms)`, `${r.goodput.requestsPerS.toFixed(2)} req/s (${(100 * r.goodput.share).toFixed(1)}% of requests)`],
    ['tokens in / out (mean)', `${r.tokens.meanInput.toFixed(0)} / ${r.tokens.meanOutput.toFixed(1)}`],
    ['ignore_eos', `${r.ignoreEos}${r.endedEarly ? ` (${r.endedEarly} ended early)` : ''}`],
    ['memory in use (peak)', r.memory ? `GPU ${gb(r.memory.gpuPeakBytes)}, host ${gb(r.memory.hostPeakBytes)} over ${r.memory.workers} worker(s)` : 'n/a'],
  ];
  return [`### ${title}`, '', '| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`), ...r.notes.map((n) => `\nnote: ${n}`), ''].join('\n');
}

export function sweepTable(s: SweepResult): string {
  const rows = [...s.points].sort((a, b) => a.rate - b.rate).map((p) =>
    `| ${p.rate.toFixed(3)} | ${ms(p.report.ttftMs?.p50)} | ${ms(p.report.ttftMs?.p99)} | ${ms(p.report.tpotMs?.p99)} | ${p.report.goodput.requestsPerS.toFixed(2)} | ${p.report.failed}/${p.report.lost} | ${p.meets ? 'yes' : 'no'} |`);
  return ['### capacity curve (rate -> p99 TTFT)', '', '| rate (req/s) | TTFT p50 (ms) | TTFT p99 (ms) | TPOT p99 (ms) | goodput (req/s) | failed/lost | meets SLO |',
    '| --- | --- | --- | --- | --- | --- | --- |', ...rows, '', `**highest rate inside the SLO: ${s.capped || s.cut ? '>= ' : ''}${s.maxRate.toFixed(3)} req/s${s.capped ? ' (the search cap, --max-rate)' : s.cut ? ' (the search was cut by --deadline-s)' : ''}**`, ''].join('\n');
}

/** Resolves the target (tokenizer, context, URL) from the arguments and the config. */
export async function target(v: Record<string, string | boolean | undefined>): Promise<LoadTarget> {
  const model = v.model as string | undefined;
  if (!model) throw new UsageError('--model is required');
  const cfg = loadConfig(v.config as string | undefined);
  const entry = cfg.models.find((m) => m.id === model);
  const path = (v['model-path'] as string | undefined) ?? entry?.path;
  if (!path) throw new UsageError(`model "${model}" is not in the config's models: give --model-path for its tokenizer`);
  const source = await openModel(path);
  const tokenizer = await loadTokenizer(source);
  const maxPos = source.config.maxPositions;
  const context = v.context !== undefined ? num(v.context as string, 'context', 0, { int: true, positive: true })
    : entry?.contextLength ? Math.min(entry.contextLength, maxPos) : Math.min(maxPos, 4096);
  const endpoint = (v.endpoint as string | undefined) ?? 'chat';
  if (endpoint !== 'chat' && endpoint !== 'completions') throw new UsageError(`--endpoint must be chat or completions, got ${JSON.stringify(endpoint)}`);
  const host = cfg.gateway.host === '0.0.0.0' ? '127.0.0.1' : cfg.gateway.host;
  const url = (v.url as string | undefined) ?? `http://${host.includes(':') ? `[${host}]` : host}:${cfg.gateway.port}`;
  const key = (v['api-key'] as string | undefined) ?? process.env.SWAPSERVE_API_KEY;
  return { url, model, endpoint: endpoint as Endpoint, tokenizer, context, ...(key ? { headers: { authorization: `Bearer ${key}` } } : {}) };
}

/** The load spec from the arguments. */
export function spec(v: Record<string, string | boolean | undefined>): LoadSpec {
  const trace = (v.trace as string | undefined) ?? 'azure-conv';
  if (!(TRACES as readonly string[]).includes(trace)) throw new UsageError(`--trace must be one of ${TRACES.join(', ')}, got ${JSON.stringify(trace)}`);
  const concurrency = v.concurrency !== undefined ? num(v.concurrency as string, 'concurrency', 0, { int: true, positive: true }) : undefined;
  if (concurrency && (v['trace-time'] || v.rate !== undefined)) throw new UsageError('--concurrency (closed loop) excludes --rate and --trace-time');
  if (v['trace-time'] && v.rate !== undefined) throw new UsageError('--trace-time excludes --rate');
  if (v.sweep && (concurrency || v['trace-time'])) throw new UsageError('--sweep runs Poisson arrivals: it excludes --concurrency and --trace-time');
  const maxInput = v['max-input'] !== undefined ? num(v['max-input'] as string, 'max-input', 0, { int: true, positive: true }) : undefined;
  const maxOutput = v['max-output'] !== undefined ? num(v['max-output'] as string, 'max-output', 0, { int: true, positive: true }) : undefined;
  return {
    lengths: loadTrace(trace as TraceName).requests,
    durationS: num(v['duration-s'] as string, 'duration-s', 60, { positive: true }),
    rate: num(v.rate as string, 'rate', 1, { positive: true }),
    traceTime: v['trace-time'] === true,
    speedup: num(v.speedup as string, 'speedup', 1, { positive: true }),
    ...(concurrency ? { concurrency } : {}),
    maxRequests: num(v.requests as string, 'requests', 1000, { int: true, positive: true }),
    seed: num(v.seed as string, 'seed', 1, { int: true, min: 0 }),
    ...(maxInput ? { maxInput } : {}), ...(maxOutput ? { maxOutput } : {}),
    sloTtftMs: num(v['slo-ttft-ms'] as string, 'slo-ttft-ms', 2000, { positive: true }),
    sloTpotMs: num(v['slo-tpot-ms'] as string, 'slo-tpot-ms', 100, { positive: true }),
    ignoreEos: v['no-ignore-eos'] !== true,
    temperature: num(v.temperature as string, 'temperature', 0, { min: 0 }),
    timeoutS: num(v['timeout-s'] as string, 'timeout-s', 300, { positive: true }),
  };
}

export async function run(argv: string[]): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    process.stderr.write(`swapserve bench load: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    if (v['deadline-s'] !== undefined && !v.sweep) throw new UsageError('--deadline-s goes with --sweep');
    const s = spec(v);
    const t = await target(v);
    const log = (m: string) => process.stderr.write(`[bench load] ${m}\n`);
    // The stack must be up: a clear line, not a table of refused connections.
    try {
      const r = await fetch(new URL('v1/models', t.url.endsWith('/') ? t.url : `${t.url}/`), { headers: t.headers ?? {}, signal: AbortSignal.timeout(10_000) });
      if (!r.ok) throw new Error(`GET /v1/models answered ${r.status}`);
    } catch (e) {
      process.stderr.write(`swapserve bench load: cannot reach the gateway at ${t.url} (${(e as Error).message}); start the stack first (swapserve up)\n`);
      return 1;
    }
    log(`${t.url} model ${t.model} (${t.endpoint}, context ${t.context}), trace ${v.trace ?? 'azure-conv'}`);
    let out: unknown;
    const deadline = v['deadline-s'] !== undefined ? Date.now() + 1000 * num(v['deadline-s'] as string, 'deadline-s', 0, { positive: true }) : undefined;
    if (v.sweep) {
      const res = await sweep(t, s, { startRate: s.rate ?? 1, steps: num(v['sweep-steps'] as string, 'sweep-steps', 4, { int: true, min: 0 }),
        ...(v['max-rate'] !== undefined ? { maxRate: num(v['max-rate'] as string, 'max-rate', 0, { positive: true }) } : {}), log,
        ...(deadline !== undefined ? { deadline } : {}),
        // The points so far, rewritten after every run: a sweep killed by its caller's timeout keeps them.
        ...(v.out ? { onPoint: (points: SweepResult['points']) => writeFileSync(v.out as string, `${JSON.stringify({ partial: true, points }, null, 2)}\n`) } : {}) });
      out = res;
      process.stdout.write(v.json ? `${JSON.stringify(res, null, 2)}\n` : sweepTable(res));
    } else {
      const { report } = await runLoad(t, s);
      out = report;
      process.stdout.write(v.json ? `${JSON.stringify(report, null, 2)}\n` : table(report));
    }
    if (v.out) writeFileSync(v.out as string, `${JSON.stringify(out, null, 2)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`swapserve bench load: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError || isSwapserveError(e)) { // a bad config, a model file that cannot be read
      process.stderr.write(`swapserve bench load: ${e.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    closeAgents();
  }
}
