// The one list of `swapserve` commands and benchmarks. Every help text about them is generated from here: the
// top-level usage (main.ts), `swapserve bench`'s usage (bench.ts) and the markdown table in docs/cli.md
// (`swapserve help --markdown`; test/cli/help.test.ts keeps the file in sync).

/** What a command or benchmark module exports: run(argv) resolves to the process exit code. */
export type CommandModule = { run: (argv: string[]) => Promise<number> };

export interface Entry {
  name: string;
  /** The arguments shown after the name in the markdown table (its own --help has them all). */
  synopsis: string;
  summary: string;
  load: () => Promise<CommandModule>;
}

export const BENCHES: readonly Entry[] = [
  { name: 'swap', synopsis: '[--model DIR | --size 1g] [--baseline FILE] [--resident 0,25,50,75] [--json]', summary: 'tier moves (load, swapIn, loadToGpu, evict) against a plain copy of the same bytes', load: () => import('../../bench/swap/swap.ts') },
  { name: 'codec', synopsis: '--model DIR [--reps 5] [--prompt 128] [--max-ratio 0.9] [--out FILE] [--md FILE] [--disk-cache DIR]', summary: 'host-tier codec: raw vs compressed swapIn and swap TTFT through the engine, against the plain pinned copy; with --disk-cache, cold loads from the raw files vs the compressed disk cache', load: () => import('../../bench/codec/swap.ts') },
  { name: 'engine', synopsis: '[--quick] [--json]', summary: 'prefill and decode speed against the floor', load: () => import('../../bench/engine/cpu.ts') },
  { name: 'headline', synopsis: '--tiny | --models-dir DIR [--baseline FILE]', summary: 'TTFT per path (warm, swap, cold page cache, cold disk, worker start) through the gateway, from the traces', load: () => import('../../bench/headline/headline.ts') },
  { name: 'spine', synopsis: '[--requests N] [--seconds S] [--clients C] [--models-dir DIR]', summary: 'enqueue -> worker-start overhead and gateway requests/s (stories260K, CPU)', load: () => import('../../bench/spine/spine.ts') },
  { name: 'scheduler', synopsis: '[--models N] [--workers N] [--seed N]', summary: "the scheduler policy's decision time (1,000 models x 64 workers)", load: () => import('../../bench/scheduler/decision.ts') },
  { name: 'load', synopsis: '--model ID [--trace azure-conv] [--rate R | --trace-time | --concurrency C] [--sweep] [--out FILE]', summary: 'drive a running stack through the gateway with trace-replayed streamed requests: throughput, TTFT/TPOT percentiles, goodput, failed/lost, memory; --sweep for the highest rate inside the SLO', load: () => import('../../bench/load/load.ts') },
  { name: 'telemetry', synopsis: '[--n N] [--requests N] [--rounds N]', summary: 'what tracing + metrics cost a request (telemetry calls alone, and warm requests end to end)', load: () => import('../../bench/telemetry/telemetry.ts') },
  { name: 'multigpu', synopsis: '--tiny | --model DIR [--gpus N] [--reps N] [--load-s S]', summary: 'N GPUs swapping at once through `up`: aggregate swap-in GB/s vs N x one link, the slowest TTFT of N models hit at once vs one swap, the load replay on every GPU vs one (issue 16)', load: () => import('../../bench/multigpu/multigpu.ts') },
  { name: 'mps', synopsis: '--models-dir DIR | --tiny [--prompts 128,512,2048] [--budget-s S]', summary: 'two engines on one GPU under MPS vs time-sliced vs one engine (and at twice the batch): tok/s, p99 TPOT, the co-location gain table (GPU)', load: () => import('../../bench/mps/mps.ts') },
];

export const COMMANDS: readonly Entry[] = [
  { name: 'inspect', synopsis: '<folder or .gguf> [--json]', summary: 'validate a model folder or .gguf and print its architecture', load: () => import('./inspect.ts') },
  { name: 'generate', synopsis: '<model> --prompt "…" [--max-tokens N] [--temperature T] [--seed S]', summary: 'generate text from a model (streams tokens, prints timings)', load: () => import('./generate.ts') },
  { name: 'bench', synopsis: '<name> [options]', summary: `benchmarks: ${BENCHES.map((b) => b.name).join(', ')}`, load: async () => ({ run: runBench }) },
  { name: 'up', synopsis: '[--config FILE] [--plan FILE [--group NAME]] [--workload-from TRACE] [--dry-run]', summary: 'run the whole stack on this machine (Redis, gateway, scheduler, workers)', load: () => import('./up.ts') },
  { name: 'gateway', synopsis: '[--config FILE]', summary: 'run the HTTP gateway alone', load: () => import('./gateway.ts') },
  { name: 'scheduler', synopsis: '[--config FILE]', summary: 'run a scheduler (leader-elected)', load: () => import('./scheduler.ts') },
  { name: 'worker', synopsis: '[--config FILE] [--group NAME]', summary: 'run one GPU (or CPU) worker', load: () => import('./worker.ts') },
  { name: 'simulate', synopsis: '[--fleet FILE] [--calibration FILE] [--out DIR]', summary: 'replay a multi-model trace through the scheduler policy and baselines; GPU-hours and TTFT per policy', load: () => import('./simulate.ts') },
  { name: 'profile', synopsis: '--model-path PATH [--device NAME] [--out DIR] [--quick]', summary: "measure one device for the planner: max rate inside the SLO per request-size bucket, swap/disk GB/s, worker start, prefill/decode step times; writes its JSON and a calibration file", load: () => import('../../bench/load/profile.ts') },
  { name: 'plan', synopsis: '<input.yaml> [--out FILE] [--report FILE] [--json FILE]', summary: 'the cheapest mix of GPU types and worker groups for a workload, as a placement config (docs/plan.md)', load: () => import('./plan.ts') },
];

export const find = (list: readonly Entry[], name: string | undefined): Entry | undefined => list.find((e) => e.name === name);

const listing = (list: readonly Entry[]) => list.map((e) => `  ${e.name.padEnd(10)} ${e.summary}`).join('\n');

/** `swapserve --help`. */
export function mainUsage(): string {
  return `usage: swapserve <command> [options]\n\ncommands:\n${listing(COMMANDS)}\n\n\`swapserve <command> --help\` for a command's options.\n`;
}

/** `swapserve bench` without a (known) name. */
export function benchUsage(): string {
  return `usage: swapserve bench <name> [options]\n\n${listing(BENCHES)}\n\n\`swapserve bench <name> --help\` for a benchmark's options.\n`;
}

/** docs/cli.md: every command and benchmark as a markdown table. */
export function markdownHelp(): string {
  // A `|` inside a table cell, in code or not, must be escaped.
  const row = (cmd: string, e: Entry) => `| \`npx swapserve ${cmd} ${e.synopsis.replaceAll('|', '\\|')}\` | ${e.summary} |`;
  return [
    '# swapserve commands',
    '',
    '<!-- Generated by `node bin/swapserve.js help --markdown` from services/cli/commands.ts; do not edit by hand. -->',
    '',
    '| command | what |',
    '| --- | --- |',
    ...COMMANDS.filter((c) => c.name !== 'bench').map((c) => row(c.name, c)),
    ...BENCHES.map((b) => row(`bench ${b.name}`, b)),
    '',
  ].join('\n');
}

/** `swapserve bench <name>`: dispatches to the benchmark named in BENCHES (here, not in a module of its own, so the
 * list and its dispatcher don't import each other). */
async function runBench(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h') {
    process.stdout.write(benchUsage());
    return 0;
  }
  const bench = find(BENCHES, name);
  if (!bench) {
    process.stderr.write(`${name ? `swapserve bench: unknown benchmark "${name}"\n\n` : ''}${benchUsage()}`);
    return name ? 2 : 1;
  }
  return (await bench.load()).run(rest);
}
