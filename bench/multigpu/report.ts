// `swapserve bench multigpu`'s figures and tables, from the samples it took (pure: tests feed it samples). Three
// comparisons, each against its one-GPU counterpart measured in the same run, with issue 16's bars:
//   swap bandwidth   N swap-ins at once: bytes of all / (last end - first start), vs N x one swap-in alone   >= 0.9
//   TTFT             N models hit at once: the slowest one's TTFT, vs one model hit alone                     <= 1.1
//   load replay      the trace replayed on every GPU's model at once: summed goodput, vs N x one GPU's        >= 0.9

export interface SwapSpan {
  startMs: number;
  endMs: number;
  bytes: number;
}

/** One request of a swap round, read from its trace. */
export interface SwapSample {
  round: number;
  /** `single`: one model hit alone; `all`: N models hit at the same moment. */
  kind: 'single' | 'all';
  model: string;
  worker: string | null;
  /** The path the system reported (a round counts only where every request was a swap). */
  path: string;
  ttftMs: number;
  /** The swap-in span of the request's trace (null when it had none). */
  swap: SwapSpan | null;
}

export interface LoadFigures {
  gpus: number;
  goodputRps: number;
  throughputRps: number;
  ok: number;
  failed: number;
  lost: number;
  ttftP99Ms: number | null;
}

export interface RoundFigures {
  round: number;
  kind: 'single' | 'all';
  n: number;
  workers: number;
  allSwap: boolean;
  bytes: number;
  wallMs: number;
  gbps: number;
  maxTtftMs: number;
  /** Sum of the swap-ins' own durations over the round's wall time: N when they all ran at once, 1 when in turn. */
  overlap: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Each round's aggregate: bytes swapped over the wall time from the first swap-in's start to the last one's end. */
export function rounds(samples: SwapSample[]): RoundFigures[] {
  const by = new Map<number, SwapSample[]>();
  for (const s of samples) by.set(s.round, [...(by.get(s.round) ?? []), s]);
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([round, ss]) => {
    const spans = ss.flatMap((s) => (s.swap ? [s.swap] : []));
    const bytes = spans.reduce((n, s) => n + s.bytes, 0);
    const wallMs = spans.length ? Math.max(...spans.map((s) => s.endMs)) - Math.min(...spans.map((s) => s.startMs)) : NaN;
    return {
      round, kind: ss[0].kind, n: ss.length, workers: new Set(ss.map((s) => s.worker)).size,
      allSwap: ss.every((s) => s.path === 'swap' && s.swap !== null), bytes, wallMs,
      gbps: spans.length && wallMs > 0 ? bytes / 1e6 / wallMs : NaN, maxTtftMs: Math.max(...ss.map((s) => s.ttftMs)),
      overlap: spans.length && wallMs > 0 ? spans.reduce((n, s) => n + (s.endMs - s.startMs), 0) / wallMs : NaN,
    };
  });
}

export interface Summary {
  gpus: number;
  single: { gbps: number; ttftMs: number; rounds: number };
  all: { gbps: number; maxTtftMs: number; rounds: number; spreadRounds: number };
  /** all.gbps / (gpus x single.gbps): bar >= 0.9. */
  bandwidthScaling: number;
  /** all.maxTtftMs / single.ttftMs: bar <= 1.1. */
  ttftRatio: number;
  load: { single: LoadFigures | null; all: LoadFigures | null; scaling: number };
  /** Rounds left out: some request was not a swap (the state was not what the round set up). */
  skipped: number;
}

/** The medians over clean rounds (every request a swap), and the three ratios. */
export function summarize(gpus: number, samples: SwapSample[], load: { single: LoadFigures | null; all: LoadFigures | null }): Summary {
  const rs = rounds(samples);
  const clean = rs.filter((r) => r.allSwap && r.n === (r.kind === 'single' ? 1 : gpus));
  const single = clean.filter((r) => r.kind === 'single');
  const all = clean.filter((r) => r.kind === 'all');
  const s = { gbps: median(single.map((r) => r.gbps)), ttftMs: median(single.map((r) => r.maxTtftMs)), rounds: single.length };
  const a = { gbps: median(all.map((r) => r.gbps)), maxTtftMs: median(all.map((r) => r.maxTtftMs)), rounds: all.length, spreadRounds: all.filter((r) => r.workers === gpus).length };
  const scaling = load.single && load.all && load.single.goodputRps > 0 ? load.all.goodputRps / (gpus * load.single.goodputRps) : NaN;
  return {
    gpus, single: s, all: a, bandwidthScaling: a.gbps / (gpus * s.gbps), ttftRatio: a.maxTtftMs / s.ttftMs,
    load: { ...load, scaling }, skipped: rs.length - clean.length,
  };
}

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
const ms = (x: number): string => (Number.isFinite(x) ? (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`) : '–');
const verdict = (ok: boolean, x: number): string => (Number.isFinite(x) ? (ok ? 'meets' : '**misses**') : 'not measured');

export function renderReport(r: { date: string; device: string; argv: string[]; modelBytes: number; summary: Summary; rounds: RoundFigures[] }): string {
  const s = r.summary;
  const n = s.gpus;
  const lines = [
    `## swapserve bench multigpu — ${n} GPU${n > 1 ? 's' : ''}`, '',
    `${r.date}, ${r.device}; model arena ${(r.modelBytes / 1e9).toFixed(3)} GB; \`swapserve bench multigpu ${r.argv.join(' ')}\``, '',
    '| | 1 GPU (alone, same run) | N at once | ratio | bar | |',
    '| --- | ---: | ---: | ---: | --- | --- |',
    `| swap-in bandwidth (GB/s; N at once: aggregate) | ${f(s.single.gbps)} | ${f(s.all.gbps)} | ${f(s.bandwidthScaling)} of N x one | >= 0.9 | ${verdict(s.bandwidthScaling >= 0.9, s.bandwidthScaling)} |`,
    `| TTFT, swap path (N at once: the slowest) | ${ms(s.single.ttftMs)} | ${ms(s.all.maxTtftMs)} | ${f(s.ttftRatio)} x | <= 1.1 | ${verdict(s.ttftRatio <= 1.1, s.ttftRatio)} |`,
    `| load replay goodput (req/s; N at once: summed) | ${f(s.load.single?.goodputRps ?? NaN)} | ${f(s.load.all?.goodputRps ?? NaN)} | ${f(s.load.scaling)} of N x one | >= 0.9 | ${verdict(s.load.scaling >= 0.9, s.load.scaling)} |`,
    '',
    `Medians over ${s.single.rounds} single and ${s.all.rounds} concurrent rounds (${s.all.spreadRounds} of them on ${n} distinct workers); ${s.skipped} round(s) left out (a request that was not a swap).`,
    ...(s.load.single && s.load.all ? [`Load replay: one GPU ${s.load.single.ok} ok / ${s.load.single.failed} failed / ${s.load.single.lost} lost, p99 TTFT ${ms(s.load.single.ttftP99Ms ?? NaN)}; all GPUs ${s.load.all.ok} / ${s.load.all.failed} / ${s.load.all.lost}, p99 TTFT ${ms(s.load.all.ttftP99Ms ?? NaN)}.`] : []),
    '', 'Overlap: the swap-ins\' own durations summed over the round\'s wall time (N: all at once; 1: one after another).', '',
    '| round | kind | requests | workers | all swaps | GB | wall | GB/s | overlap | slowest TTFT |', '| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.rounds.map((x) => `| ${x.round} | ${x.kind} | ${x.n} | ${x.workers} | ${x.allSwap ? 'yes' : 'no'} | ${f(x.bytes / 1e9, 3)} | ${ms(x.wallMs)} | ${f(x.gbps)} | ${f(x.overlap)} | ${ms(x.maxTtftMs)} |`),
    '',
  ];
  return lines.join('\n');
}
