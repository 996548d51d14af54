// Run 14 (bench/results/fleet/2026-12-07-h100-sim-vs-real/run14-9ef238c.md) simulated again from what survives of it:
// its per-request rows were lost, but its arrivals are run 13's (the same GenTD26 top-3 trace, the same first 200
// requests, the same prompts) compressed x1685 instead of x1348 (120 s instead of 150 s), so run 13's recorded
// arrivals x 1348/1685 and token counts are run 14's; its calibration and real per-path results are in its report.
// Two calibrations: (a) as run 14's report printed it (the replay's old measure: every request's decode_ms per token
// and prefill_ms per prompt token); (b) an estimate of what the current measure (measured-calibration.ts) would have
// read on run 14: run 13's current measure scaled per model by run 14 / run 13 under the old one.
// usage: node --import tsx bench/fleet/run14-reconstruct.ts [--out DIR] (default: print only)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PREFILL_CHUNK } from '../../services/simulator/cluster.ts';
import { measureRates, median, type PassFit } from '../../services/simulator/measured-calibration.ts';
import { comparePaths, replayCalibration, simulateRun, tableLines, type Recorded, type ReplayRates } from './resimulate.ts';

const { values: v } = parseArgs({ options: { out: { type: 'string' } } });
const DIR = join(new URL('../..', import.meta.url).pathname, 'bench', 'results', 'fleet', '2026-12-07-h100-sim-vs-real');
const run13 = JSON.parse(readFileSync(join(DIR, 'run13-real.json'), 'utf8')) as Recorded;
const TIME_SCALE = 1348 / 1685;

// Run 14 as printed (run14-9ef238c.md).
const REAL14 = [{ path: 'warm' as const, n: 135, medianMs: 25.3 }, { path: 'swap' as const, n: 60, medianMs: 76.1 }, { path: 'cold' as const, n: 5, medianMs: 218.5 }];
const OVERHEAD14_MS = 1.9;
const PRINTED14 = { swapBytesPerS: 54.5e9, diskBytesPerS: 28.6e9,
  perToken: { 'fleet-m0': 12.5e-6, 'fleet-m1': 15.0e-6, 'fleet-m2': 17.1e-6 } as Record<string, number>,
  step: { 'fleet-m0': 1.82e-3, 'fleet-m1': 2.74e-3, 'fleet-m2': 3.31e-3 } as Record<string, number> };

// The replay's old measure, on run 13: median prefill_ms per prompt token (warm) and median decode_ms per token (all).
const old13 = new Map(run13.ids.map((m) => [m, {
  perToken: median(run13.real.filter((r) => r.model === m && r.path === 'warm' && r.promptTokens > 0).map((r) => r.timing.prefill_ms / 1000 / r.promptTokens)),
  step: median(run13.real.filter((r) => r.model === m && r.stepMs !== null).map((r) => r.stepMs! / 1000)),
}]));
const now13 = measureRates(run13.real, run13.shapes, PREFILL_CHUNK);

const asPrinted: ReplayRates = { swapBytesPerS: PRINTED14.swapBytesPerS, diskBytesPerS: PRINTED14.diskBytesPerS,
  prefill: new Map(run13.ids.map((m): [string, PassFit] => [m, { passS: 0, tokenS: PRINTED14.perToken[m], samples: 0 }])),
  step: new Map(run13.ids.map((m) => [m, { s: PRINTED14.step[m] }])) };
const estimate: ReplayRates = { swapBytesPerS: PRINTED14.swapBytesPerS, diskBytesPerS: PRINTED14.diskBytesPerS,
  prefill: new Map(run13.ids.map((m): [string, PassFit] => {
    const k = PRINTED14.perToken[m] / old13.get(m)!.perToken, f = now13.prefill.get(m)!;
    return [m, { passS: f.passS * k, tokenS: f.tokenS * k, samples: 0 }];
  })),
  step: new Map(run13.ids.map((m) => [m, { s: now13.step.get(m)!.s * (PRINTED14.step[m] / old13.get(m)!.step) }])) };

const md: string[] = ['# Run 14 re-simulated from run 13\'s arrivals (x 1348/1685) and run 14\'s printed calibration', '',
  `- Command: \`node --import tsx bench/fleet/run14-reconstruct.ts${v.out ? ` --out ${v.out}` : ''}\`. Real columns: run14-9ef238c.md; simulated TTFTs + ${OVERHEAD14_MS} ms request overhead (run 14's).`,
  '- The arrivals are the ones run 13 sent, scaled: run 14 sent the same requests 20% closer together, each with its own jitter, which is lost.', ''];
for (const [name, rates] of [['(a) calibration as run 14 printed it (old measure)', asPrinted], ['(b) estimate of the current measure on run 14 (run 13\'s, scaled per model)', estimate]] as const) {
  const c = simulateRun(run13, replayCalibration('H100 (run 14, reconstructed)', run13.gpuBytes, rates), TIME_SCALE);
  md.push(`## ${name}`, '', `- ${run13.ids.map((m) => `${m}: pass ${(rates.prefill.get(m)!.passS * 1000).toFixed(2)} ms + ${(rates.prefill.get(m)!.tokenS * 1e6).toFixed(2)} µs/token, decode step ${(rates.step.get(m)!.s * 1000).toFixed(2)} ms`).join('; ')}`,
    '', ...tableLines(comparePaths(REAL14, c.served, OVERHEAD14_MS)), '');
}
const text = md.join('\n');
process.stdout.write(text);
if (v.out) {
  mkdirSync(v.out, { recursive: true });
  writeFileSync(join(v.out, 'run14-reconstructed.md'), text);
}
