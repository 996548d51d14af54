// `swapserve bench scheduler`: the policy's decision time at 1,000 models x 64 workers, driven by a simulated
// cluster (Zipf demand, commands that land after a delay, heartbeats, ticks). Target: p99 <= 1 ms per event.
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { decide, initialState, type PolicyState } from '../../services/scheduler/policy.ts';
import { RandomCluster, type ClusterArgs } from '../../services/simulator/random-cluster.ts';

const GB = 1e9;
const TARGET_P99_MS = 1;

interface Args extends ClusterArgs { json: boolean }

function parse(argv: string[]): Args {
  const a: Args = { models: 1000, workers: 64, events: 50_000, seed: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = Number(argv[i + 1]);
    if (k === '--json') a.json = true;
    else if (k === '--models' || k === '--workers' || k === '--events' || k === '--seed') {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Expected a positive integer for ${k} but received "${argv[i + 1]}"`);
      a[k.slice(2) as 'models' | 'workers' | 'events' | 'seed'] = v;
      i++;
    } else throw new Error(`unknown option ${k}`);
  }
  return a;
}

interface SimResult {
  times: Map<string, number[]>;
  /** CPU time of the process during each decision (ms): what the decision cost when other processes preempt it. */
  cpuTimes: Map<string, number[]>;
  counts: { actions: number; load: number; swap_in: number; load_to_gpu: number; evict: number; drop: number; diskGB: number; pcieGB: number };
  measured: number;
  steps: number;
}

/** Runs the simulated cluster until `a.events` events were measured (or for `maxSteps` steps). */
function simulate(a: Args, victimOrder: 'expected-cost' | 'lru', maxSteps = Infinity): SimResult {
  const sim = new RandomCluster(a);
  const state: PolicyState = initialState(sim.models, { maxWorkers: a.workers, victimOrder }, 'e1');
  let now = 1_000_000;
  for (const w of sim.workers) sim.take(decide(state, sim.report(w, now), now).actions, now);
  const times = new Map<string, number[]>();
  const cpuTimes = new Map<string, number[]>();
  const counts = { actions: 0, load: 0, swap_in: 0, load_to_gpu: 0, evict: 0, drop: 0, diskGB: 0, pcieGB: 0 };
  const size = new Map(sim.models.map((m) => [m.id, m.bytes / GB]));
  let nextTick = now + 1000;
  const warmup = Math.min(5000, Math.floor(a.events / 5));
  let measured = 0, seen = 0, steps = 0;
  while (maxSteps === Infinity ? measured < a.events : steps < maxSteps) {
    steps++;
    now += 1 + Math.floor(sim.rand() * 4);
    const tickDue = now >= nextTick;
    if (tickDue) nextTick += 1000;
    for (const ev of sim.events(now, tickDue)) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const { actions } = decide(state, ev, now);
      const dt = performance.now() - t0;
      const c1 = process.cpuUsage(c0);
      sim.take(actions, now);
      if (seen++ < warmup) continue;
      measured++;
      let list = times.get(ev.type);
      if (!list) times.set(ev.type, (list = []));
      list.push(dt);
      let cl = cpuTimes.get(ev.type);
      if (!cl) cpuTimes.set(ev.type, (cl = []));
      cl.push((c1.user + c1.system) / 1000);
      counts.actions += actions.length;
      for (const x of actions) {
        if (x.type !== 'send') continue;
        const k = x.command.kind;
        if (k in counts) counts[k as 'evict']++;
        const gb = 'model' in x.command ? (size.get(x.command.model) ?? 0) : 0;
        if (k === 'load' || k === 'load_to_gpu') counts.diskGB += gb;
        if (k === 'swap_in' || k === 'load_to_gpu') counts.pcieGB += gb;
      }
    }
  }
  return { times, cpuTimes, counts, measured, steps };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function run(argv: string[]): Promise<number> {
  let a: Args;
  try {
    a = parse(argv);
  } catch (e) {
    process.stderr.write(`swapserve bench scheduler: ${(e as Error).message}\nusage: swapserve bench scheduler [--models N] [--workers N] [--events N] [--seed N] [--json]\n`);
    return 2;
  }
  const main = simulate(a, 'expected-cost');
  // The same demand (same seed, same number of simulated steps) under least-recently-used victims, for the moves.
  const lru = simulate(a, 'lru', main.steps);
  const { times, cpuTimes, counts, measured } = main;

  type Row = { event: string; n: number; p50: number; p99: number; p999: number; max: number; cpuP50: number; cpuP99: number };
  const rows: Row[] = [];
  const row = (event: string, wall: number[], cpu: number[]): Row => {
    const s = Float64Array.from(wall).sort();
    const c = Float64Array.from(cpu).sort();
    return {
      event, n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), p999: percentile(s, 99.9), max: s[s.length - 1],
      cpuP50: percentile(c, 50), cpuP99: percentile(c, 99),
    };
  };
  const all: number[] = [], allCpu: number[] = [];
  for (const [type, list] of [...times.entries()].sort()) {
    const cpu = cpuTimes.get(type) ?? [];
    all.push(...list);
    allCpu.push(...cpu);
    rows.push(row(type, list, cpu));
  }
  const total = row('all', all, allCpu);
  rows.push(total);
  const load = loadavg()[0];
  const pass = total.p99 <= TARGET_P99_MS;
  const meta = {
    models: a.models, workers: a.workers, events: measured, seed: a.seed, node: process.version, cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length, loadAvg1m: load,
    date: new Date().toISOString(), targetP99Ms: TARGET_P99_MS, pass, commands: counts, lruCommands: lru.counts,
  };
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
    return pass ? 0 : 1;
  }
  const f = (x: number): string => x.toFixed(3);
  const lines = [
    `scheduler policy decision time: ${a.models} models x ${a.workers} workers, ${measured} events (seed ${a.seed})`,
    `cpu: ${meta.cpu} x${meta.cores}; load average (1 min) ${load.toFixed(1)}; node ${meta.node}; ${meta.date}`,
    '',
    '| event | n | p50 ms | p99 ms | p99.9 ms | max ms | cpu p50 ms | cpu p99 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.event} | ${r.n} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.p999)} | ${f(r.max)} | ${f(r.cpuP50)} | ${f(r.cpuP99)} |`),
    '',
    `target p99 <= ${TARGET_P99_MS} ms (wall): ${pass ? 'met' : 'MISSED'} (all events p99 ${f(total.p99)} ms wall, ${f(total.cpuP99)} ms cpu)`,
    '',
    `moves over the same demand (${main.steps} simulated steps), against least-recently-used victims:`,
    '',
    '| victims | disk loads | GB read from disk | swap-ins | GB host -> GPU | evictions |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...([['expected cost (ours)', counts], ['least recently used', lru.counts]] as const).map(([name, c]) =>
      `| ${name} | ${c.load + c.load_to_gpu} | ${c.diskGB.toFixed(0)} | ${c.swap_in} | ${c.pcieGB.toFixed(0)} | ${c.evict} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return pass ? 0 : 1;
}
