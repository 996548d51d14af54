// `swapserve bench <name>`: dispatches to each area's benchmark module (each exports run(argv) -> exit code).
type Bench = { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> };

const BENCHES: Record<string, Bench> = {
  swap: { summary: 'tier moves (load, swapIn, loadToGpu, evict) against a plain copy of the same bytes', load: () => import('../../native/bench/swap.ts') },
  engine: { summary: 'prefill and decode speed against the floor', load: () => import('../../native/ts/bench-engine.ts') },
  headline: { summary: 'TTFT per path (warm, swap, cold page cache, cold disk, worker start) through the gateway, from the traces', load: () => import('../../bench/headline/headline.ts') },
  spine: { summary: 'enqueue -> worker-start overhead and gateway requests/s (stories260K, CPU)', load: () => import('../../bench/spine/spine.ts') },
  scheduler: { summary: "the scheduler policy's decision time (1,000 models x 64 workers)", load: () => import('../scheduler/bench.ts') },
  telemetry: { summary: 'what tracing + metrics cost a request (telemetry calls alone, and warm requests end to end)', load: () => import('../../bench/telemetry/telemetry.ts') },
};

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const bench = name ? BENCHES[name] : undefined;
  if (!bench) {
    const lines = Object.entries(BENCHES).map(([n, b]) => `  ${n.padEnd(10)} ${b.summary}`);
    process.stderr.write(`usage: swapserve bench <name> [--json]\n\n${lines.join('\n')}\n`);
    return name ? 2 : 1;
  }
  return (await bench.load()).run(rest);
}
