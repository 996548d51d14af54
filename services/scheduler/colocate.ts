// Whether co-locating several workers on one GPU pays, from a measured gain table (issue 14). Pure: no I/O, no clock.
//
// A table row is one cell of `swapserve bench mps` (bench/mps/): a model size, a prompt length and a mix, and the
// throughput of two engines under MPS over the best single-GPU alternative measured in the same run (one engine, or
// one engine at twice the batch). Until that table is measured on our engine, the prior is the shape Databricks
// published for two engines under MPS on an H100: ≥ +50% at ≤ 3B and short context, ≥ +100% for small
// prefill-heavy work, nothing or a loss at 7B or beyond 2k tokens of context.
import { z } from 'zod';

export const gainRowSchema = z.object({
  /** Model size, billions of parameters. */
  paramsB: z.number().positive(),
  /** Prompt tokens of the cell. */
  promptTokens: z.number().int().positive(),
  /** decode: short prompts, long completions; prefill: most tokens are prompt tokens. */
  mix: z.enum(['decode', 'prefill']),
  /** Throughput ratio: two engines under MPS / the best single engine (1 = no gain). */
  gain: z.number().positive(),
}).strict();
export type GainRow = z.infer<typeof gainRowSchema>;
export const gainTableSchema = z.array(gainRowSchema).min(1);

/** The Databricks seed's published shape (not our measurement): the prior until bench/mps has run on a GPU. */
export const SEED_GAIN_TABLE: GainRow[] = [
  ...[0.5, 1.5, 3].flatMap((paramsB) => [
    { paramsB, promptTokens: 128, mix: 'decode' as const, gain: 1.5 },
    { paramsB, promptTokens: 512, mix: 'decode' as const, gain: 1.5 },
    { paramsB, promptTokens: 128, mix: 'prefill' as const, gain: 2.0 },
    { paramsB, promptTokens: 512, mix: 'prefill' as const, gain: 2.0 },
    { paramsB, promptTokens: 2048, mix: 'decode' as const, gain: 1.0 },
    { paramsB, promptTokens: 2048, mix: 'prefill' as const, gain: 1.0 },
  ]),
  ...[128, 512, 2048].flatMap((promptTokens) => [
    { paramsB: 7, promptTokens, mix: 'decode' as const, gain: 1.0 },
    { paramsB: 7, promptTokens, mix: 'prefill' as const, gain: 1.0 },
  ]),
];

/** What the decision knows of one model: its size and the workload it serves. */
export interface ColocationProfile {
  model: string;
  /** Parameters, billions (from the weights: bytes / 2 for bf16). */
  paramsB: number;
  /** Typical prompt tokens. */
  promptTokens: number;
  /** Typical completion tokens. */
  outputTokens: number;
}

export interface ModelVerdict {
  model: string;
  /** Predicted gain, from the nearest measured cell. */
  gain: number;
  /** The table cell it came from. */
  cell: GainRow;
}

export interface ColocationDecision {
  /** Workers to run on the GPU: `workersPerGpu` when co-location pays, else 1. */
  workers: number;
  colocate: boolean;
  /** One line: why. */
  reason: string;
  perModel: ModelVerdict[];
}

/** A model's typical request as observed in a trace, and how many requests it was read from. */
export interface ObservedWorkload {
  promptTokens: number;
  outputTokens: number;
  requests: number;
}

/** The lower median of a non-empty list (an observed value, so a token count stays an integer). */
function lowerMedian(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

/**
 * The typical request of observed traffic: the median prompt and the median completion, each on its own. Medians,
 * not means: request sizes are long-tailed, and a few huge prompts would make the typical request read as a longer
 * context than most requests have (Azure's 2023 conversation trace: median prompt 1,020 tokens, mean 1,155, which the
 * seed table reads at its 2,048-token cell: no gain, where the median gets ×2). Completions of 0 tokens count as 1.
 * Null for no requests.
 */
export function typicalRequest(requests: readonly { promptTokens: number; outputTokens: number }[]): ObservedWorkload | null {
  if (requests.length === 0) return null;
  return {
    promptTokens: Math.max(1, lowerMedian(requests.map((r) => r.promptTokens))),
    outputTokens: Math.max(1, lowerMedian(requests.map((r) => r.outputTokens))),
    requests: requests.length,
  };
}

/** The mix a workload falls in: prefill-heavy when prompt tokens are at least half the tokens. */
export function mixOf(p: Pick<ColocationProfile, 'promptTokens' | 'outputTokens'>): 'decode' | 'prefill' {
  return p.promptTokens / (p.promptTokens + p.outputTokens) >= 0.5 ? 'prefill' : 'decode';
}

const logDist = (a: number, b: number): number => Math.abs(Math.log(a / b));

/**
 * The table's prediction for a profile: the cell nearest in model size (log scale), then nearest prompt length
 * (log scale), of the profile's mix when the table has it. Beyond the table's range the nearest edge holds (a 14B
 * model reads the 7B row). Context = prompt + completion beyond the table's longest prompt is read at that prompt.
 */
export function predictGain(table: readonly GainRow[], p: ColocationProfile): ModelVerdict {
  const mix = mixOf(p);
  const rows = table.some((r) => r.mix === mix) ? table.filter((r) => r.mix === mix) : [...table];
  const size = rows.reduce((best, r) => (logDist(r.paramsB, p.paramsB) < logDist(best, p.paramsB) ? r.paramsB : best), rows[0].paramsB);
  const atSize = rows.filter((r) => r.paramsB === size);
  const context = p.promptTokens + (mix === 'decode' ? p.outputTokens : 0);
  const cell = atSize.reduce((best, r) => (logDist(r.promptTokens, context) < logDist(best.promptTokens, context) ? r : best), atSize[0]);
  return { model: p.model, gain: cell.gain, cell };
}

/**
 * One GPU's worker count: co-locate `workersPerGpu` workers only when every model the GPU may serve is predicted to
 * gain at least `minGain` (a model that loses would be served worse by every worker on it); otherwise one worker.
 */
export function decideColocation(
  table: readonly GainRow[],
  models: readonly ColocationProfile[],
  opts: { workersPerGpu: number; minGain: number },
): ColocationDecision {
  if (opts.workersPerGpu <= 1) return { workers: 1, colocate: false, reason: 'one worker per GPU configured', perModel: [] };
  if (models.length === 0) return { workers: 1, colocate: false, reason: 'no models to judge: one worker per GPU', perModel: [] };
  const perModel = models.map((m) => predictGain(table, m));
  const losers = perModel.filter((v) => v.gain < opts.minGain);
  const fmt = (v: ModelVerdict) => `${v.model} ×${v.gain.toFixed(2)} (cell ${v.cell.paramsB}B/${v.cell.promptTokens} tok/${v.cell.mix})`;
  if (losers.length > 0) {
    return { workers: 1, colocate: false, perModel, reason: `co-location does not pay (needs ×${opts.minGain}): ${losers.map(fmt).join(', ')}` };
  }
  return { workers: opts.workersPerGpu, colocate: true, perModel, reason: `co-locating ${opts.workersPerGpu} workers: ${perModel.map(fmt).join(', ')}` };
}
