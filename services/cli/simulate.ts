// `swapserve simulate`: replays a multi-model trace through the real scheduler policy and three baselines on a
// simulated cluster timed by a GPU calibration, and reports GPU-hours, TTFT per path and SLO attainment.
import { execFileSync } from 'node:child_process';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { loadCalibration } from '../fleet/calibration.ts';
import { POLICY_DEFAULTS, type PolicyConfig } from '../scheduler/policy.ts';
import { loadFleet } from '../simulator/fleet-spec.ts';
import { writeReport, renderMarkdown, savings, type ReportMeta } from '../simulator/report.ts';
import { CLUSTER_DEFAULTS, runOnce, type RunResult, type RunSpec } from '../simulator/run.ts';
import { buildReplay, TRACE_DEFAULTS } from '../simulator/trace.ts';
import { HELP, parseCommand, STDIO, type CommandIo } from './args.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATA = resolve(ROOT, '..', 'shared', 'data', 'traces');

/** Every flag's default, in one place (printed by --help and in the report). */
export const SIMULATE_DEFAULTS = {
  fleet: join(ROOT, 'examples', 'fleet', 'llm-14.yaml'),
  calibration: [join(ROOT, 'bench', 'results', 'profiles', 'h200.json'), join(ROOT, 'bench', 'results', 'profiles', 'h100.json')],
  arrivals: join(DATA, 'alibaba-gentd26', 'lora_request_trace.csv'),
  tokens: join(DATA, 'azure-llm-2023', 'AzureLLMInferenceTrace_conv.csv'),
  ...TRACE_DEFAULTS,
  target: 0.99,
  stzIdleS: [30, 60, 120, 300, 600],
  lruWorkers: [2, 3, 4, 6, 8, 12],
  maxWorkers: [2, 3, 4, 6],
  workerIdleS: [600, 900, 1800],
  hostGbPerGpu: CLUSTER_DEFAULTS.hostBytesPerGpu / 1e9,
  pageCache: CLUSTER_DEFAULTS.pageCache,
  batchContextTokens: CLUSTER_DEFAULTS.batchContextTokens,
};

const USAGE = `usage: swapserve simulate [options]

Replays a multi-model trace with a virtual clock through swapserve's scheduler policy (the production decide())
and three baselines (always-warm, scale-to-zero, LRU swap), each over a sweep of its knob, on simulated workers
timed by a GPU calibration. Prints the report; with --out writes report.md, report.json and two SVGs per calibration
under <out>/<date>-<calibration>-<commit>/.
  --fleet FILE            fleet description (models in popularity order)      [examples/fleet/llm-14.yaml]
  --calibration FILE      GPU calibration; repeat for several                  [bench/results/profiles/h200.json, h100.json]
  --arrivals FILE         GenTD26 lora_request_trace.csv                       [../shared/data/traces/alibaba-gentd26/…]
  --tokens FILE           Azure LLM trace CSV the token counts are drawn from  [../shared/data/traces/azure-llm-2023/…_conv.csv]
  --compress X            divide arrival gaps by X                             [${TRACE_DEFAULTS.compress}]
  --mapping fold|top      trace model of rank r -> fleet model r mod N (fold), or only the top N (top) [${TRACE_DEFAULTS.mapping}]
  --days D                only the first D trace days                          [all]
  --seed N                seed of the token-count draw                         [${TRACE_DEFAULTS.seed}]
  --target P              SLO attainment the savings are read at (0..1)        [${SIMULATE_DEFAULTS.target}]
  --max-workers LIST      swapserve's maxWorkers sweep                         [${SIMULATE_DEFAULTS.maxWorkers}]
  --worker-idle-s LIST    swapserve's workerIdleMs sweep (s), crossed with it  [${SIMULATE_DEFAULTS.workerIdleS}]
  --stz-idle-s LIST       scale-to-zero idle timeouts (s)                      [${SIMULATE_DEFAULTS.stzIdleS}]
  --lru-workers LIST      LRU swap pool sizes (workers)                        [${SIMULATE_DEFAULTS.lruWorkers}]
  --set KEY=VALUE         a scheduler policy setting (PolicyConfig), repeatable, e.g. workerIdleMs=600000
  --host-gb-per-gpu GB    pinned host RAM per GPU                              [${SIMULATE_DEFAULTS.hostGbPerGpu}]
  --no-page-cache         every weight read comes from disk
  --batch-context N       tokens per sequence when sizing a replica's batch    [${SIMULATE_DEFAULTS.batchContextTokens}]
  --out DIR               write the report files under DIR
  --json                  print the runs as JSON instead of the report
`;

const list = (flag: string, v: string | undefined, def: number[]): number[] => {
  if (v === undefined) return def;
  const xs = v.split(',').map(Number);
  if (xs.length === 0 || xs.some((x) => !(x > 0))) throw new Error(`Expected a comma-separated list of positive numbers for --${flag} but received "${v}"`);
  return xs;
};
const num = (flag: string, v: string | undefined, def: number, check: (x: number) => boolean = (x) => x > 0): number => {
  if (v === undefined) return def;
  const x = Number(v);
  if (!check(x)) throw new Error(`Bad value for --${flag}: "${v}"`);
  return x;
};

function policySettings(sets: string[]): Partial<PolicyConfig> {
  const out: Record<string, unknown> = {};
  for (const s of sets) {
    const [k, v] = s.split('=', 2);
    if (!(k in POLICY_DEFAULTS) || v === undefined) throw new Error(`--set: expected KEY=VALUE with KEY one of ${Object.keys(POLICY_DEFAULTS).join(', ')}; received "${s}"`);
    const def = POLICY_DEFAULTS[k as keyof PolicyConfig];
    const parsed = typeof def === 'number' ? z.coerce.number().nonnegative().safeParse(v) : z.enum(['expected-cost', 'lru']).safeParse(v);
    if (!parsed.success) throw new Error(`--set ${k}: bad value "${v}"`);
    out[k] = parsed.data;
  }
  return out as Partial<PolicyConfig>;
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export async function run(argv: string[], io: CommandIo = STDIO): Promise<number> {
  const parsed = parseCommand('simulate', USAGE, {
    args: argv, allowPositionals: false, options: {
      fleet: { type: 'string' }, calibration: { type: 'string', multiple: true }, arrivals: { type: 'string' }, tokens: { type: 'string' },
      compress: { type: 'string' }, mapping: { type: 'string' }, days: { type: 'string' }, seed: { type: 'string' }, target: { type: 'string' },
      'max-workers': { type: 'string' }, 'worker-idle-s': { type: 'string' }, 'stz-idle-s': { type: 'string' }, 'lru-workers': { type: 'string' }, set: { type: 'string', multiple: true },
      'host-gb-per-gpu': { type: 'string' }, 'no-page-cache': { type: 'boolean' }, 'batch-context': { type: 'string' }, out: { type: 'string' },
      json: { type: 'boolean' }, ...HELP,
    },
  }, io);
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const D = SIMULATE_DEFAULTS;
  try {
    const mapping = v.mapping ?? D.mapping;
    if (mapping !== 'fold' && mapping !== 'top') throw new Error(`--mapping: expected fold or top, received "${mapping}"`);
    const trace = {
      arrivals: resolve(v.arrivals ?? D.arrivals), tokens: resolve(v.tokens ?? D.tokens), compress: num('compress', v.compress, D.compress), mapping,
      days: num('days', v.days, D.days), seed: num('seed', v.seed, D.seed, Number.isInteger),
    } as const;
    const target = num('target', v.target, D.target, (x) => x > 0 && x <= 1);
    const cluster = {
      ...CLUSTER_DEFAULTS, hostBytesPerGpu: num('host-gb-per-gpu', v['host-gb-per-gpu'], D.hostGbPerGpu, (x) => x >= 0) * 1e9,
      pageCache: !v['no-page-cache'], batchContextTokens: num('batch-context', v['batch-context'], D.batchContextTokens, Number.isInteger),
    };
    const config = policySettings(v.set ?? []);
    const specs: RunSpec[] = [
      { policy: 'always-warm' },
      ...list('stz-idle-s', v['stz-idle-s'], D.stzIdleS).map((s) => ({ policy: 'scale-to-zero' as const, idleMs: s * 1000 })),
      ...list('lru-workers', v['lru-workers'], D.lruWorkers).map((n) => ({ policy: 'lru-swap' as const, workers: Math.round(n) })),
      ...list('worker-idle-s', v['worker-idle-s'], D.workerIdleS).flatMap((idle) => list('max-workers', v['max-workers'], D.maxWorkers).map((n) => ({
        policy: 'swapserve' as const, config: { workerIdleMs: idle * 1000, ...config, maxWorkers: Math.round(n) },
      }))),
    ];
    const fleetPath = resolve(v.fleet ?? D.fleet);
    const fleet = loadFleet(fleetPath);
    const replay = buildReplay(fleet, trace);
    const stamp = new Date().toISOString().slice(0, 10);
    const sha = commit();
    const all: Record<string, RunResult[]> = {};
    for (const calPath of (v.calibration ?? D.calibration).map((p) => resolve(p))) {
      const cal = loadCalibration(calPath);
      const runs = specs.map((s) => runOnce(s, fleet, replay, cal, cluster));
      all[cal.gpu] = runs;
      const meta: ReportMeta = {
        command: `swapserve simulate ${argv.join(' ')}`.trim(), date: new Date().toISOString(), commit: sha,
        calibration: { file: calPath.startsWith(ROOT) ? calPath.slice(ROOT.length + 1) : calPath, gpu: cal.gpu, source: cal.source },
        fleet: `${fleetPath.startsWith(ROOT) ? fleetPath.slice(ROOT.length + 1) : fleetPath} (${fleet.models.length} models: ${fleet.description})`,
        mapping: {
          arrivals: basename(trace.arrivals), tokens: basename(trace.tokens), compress: trace.compress, mapping: trace.mapping, days: trace.days, seed: trace.seed,
          'skipped rows (no model id)': replay.skipped, 'trace models': replay.mapping.length, 'pinned host GB per GPU': cluster.hostBytesPerGpu / 1e9,
          'page cache': String(cluster.pageCache), 'batch context tokens': cluster.batchContextTokens,
          'policy settings': Object.entries(config).map(([k, x]) => `${k}=${x}`).join(' ') || 'defaults',
        },
        replayHours: replay.spanMs / 3.6e6, requests: replay.requests.length, targetAttainment: target,
      };
      if (v.out) {
        const dir = join(resolve(v.out), `${stamp}-${basename(calPath, '.json')}-${sha}`);
        for (const f of writeReport(dir, meta, runs)) io.err(`wrote ${f}\n`);
      }
      if (!v.json) io.out(`${renderMarkdown(meta, runs, { gpus: 'gpus-in-use.svg', cdf: 'ttft-cdf.svg' })}\n`);
      else io.err(`${cal.gpu}: ${savings(runs, target).line}\n`);
    }
    if (v.json) io.out(`${JSON.stringify(Object.fromEntries(Object.entries(all).map(([k, runs]) => [k, runs.map(({ gpuSeries, ttftCdf, ...r }) => r)])), null, 1)}\n`);
    return 0;
  } catch (e) {
    io.err(`swapserve simulate: ${(e as Error).message}\n`);
    return 2;
  }
}
