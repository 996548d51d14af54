// From the config to workers per GPU (issue 14): reads the gain table, judges every GPU with colocate.ts's pure
// decision, and makes the MPS daemon when a co-located GPU asks for it. Used by `swapserve up` and `swapserve scheduler`.
import { readFileSync } from 'node:fs';
import { ConfigError, workersOnGpu, type Config } from '../config/config.ts';
import { decideColocation, gainTableSchema, SEED_GAIN_TABLE, type ColocationProfile, type GainRow, type ObservedWorkload } from './colocate.ts';
import { MpsDaemon, type ProcessRunner } from './mps.ts';

/** The gain table of a `swapserve bench mps` JSON (its `gainTable` field, or the array itself); throws ConfigError. */
export function loadGainTable(path: string): GainRow[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`coLocation.gainTable: cannot read ${path}: ${(e as Error).message}`);
  }
  const table = Array.isArray(raw) ? raw : (raw as { gainTable?: unknown })?.gainTable;
  const r = gainTableSchema.safeParse(table);
  if (!r.success) throw new ConfigError(`coLocation.gainTable: ${path} is not a gain table: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export interface ColocationPlan {
  /** Workers per GPU index (length = gpus). */
  perGpu: number[];
  /** One line per GPU that was judged, and why. */
  reasons: string[];
  /** GPUs running more than one worker. */
  colocated: number[];
}

/**
 * Workers per GPU: 1 everywhere unless `coLocation.enabled`; then each GPU's configured count where the gain table
 * predicts it pays for every model (or always, with requireGain false). `modelBytes[i]`: weight bytes of
 * `cfg.models[i]` (0 = unknown: the model is judged at the table's smallest size). `observed`: each model's typical
 * request in `coLocation.workloadFrom`, read by the entry point (services/fleet/observed-workload.ts: the trace
 * reader is an offline tool the serving path does not import); required when workloadFrom is set.
 */
export function planColocation(cfg: Pick<Config, 'coLocation' | 'models'>, gpus: number, modelBytes: number[], observed?: ReadonlyMap<string, ObservedWorkload>): ColocationPlan {
  const c = cfg.coLocation;
  const perGpu = Array.from({ length: gpus }, () => 1);
  const reasons: string[] = [];
  if (!c.enabled) return { perGpu, reasons, colocated: [] };
  if (gpus === 0) return { perGpu, reasons: ['co-location is enabled but no GPU is visible: one CPU worker per slot, not co-located'], colocated: [] };
  const table = c.gainTable ? loadGainTable(c.gainTable) : SEED_GAIN_TABLE;
  if (c.workloadFrom && !observed) throw new ConfigError(`coLocation.workloadFrom is ${c.workloadFrom} but its traffic was not read (observedWorkloads)`);
  const profiles: ColocationProfile[] = cfg.models.map((m, i) => {
    // Each model judged at its own typical request: configured, else observed in the trace, else the default.
    const seen = observed?.get(m.id);
    const w = m.workload ?? seen ?? c.workload;
    if (c.workloadFrom && !m.workload) {
      reasons.push(seen ? `${m.id}: typical request from ${c.workloadFrom}: median ${seen.promptTokens} prompt / ${seen.outputTokens} completion tokens of ${seen.requests} requests`
        : `${m.id}: no requests for it in ${c.workloadFrom}: judged at coLocation.workload (${w.promptTokens} / ${w.outputTokens} tokens)`);
    }
    return { model: m.id, paramsB: Math.max(1e-3, (modelBytes[i] ?? 0) / 2 / 1e9), promptTokens: w.promptTokens, outputTokens: w.outputTokens };
  });
  for (let d = 0; d < gpus; d++) {
    const want = workersOnGpu(c, d);
    if (want <= 1) continue;
    if (!c.requireGain) {
      perGpu[d] = want;
      reasons.push(`GPU ${d}: ${want} co-located workers (requireGain: false)`);
      continue;
    }
    const decision = decideColocation(table, profiles, { workersPerGpu: want, minGain: c.minGain });
    perGpu[d] = decision.workers;
    reasons.push(`GPU ${d}: ${decision.reason}${c.gainTable ? '' : ' [prior: the Databricks seed shape, not measured here]'}`);
  }
  return { perGpu, reasons, colocated: perGpu.flatMap((n, d) => (n > 1 ? [d] : [])) };
}

/** The MPS daemon for a plan's co-located GPUs, compute modes checked (throws MpsError), or null when none needs it. */
export async function mpsFor(cfg: Pick<Config, 'coLocation' | 'dataDir'>, plan: ColocationPlan, opts: { log?: (line: string) => void; runner?: ProcessRunner; env?: NodeJS.ProcessEnv } = {}): Promise<MpsDaemon | null> {
  if (plan.colocated.length === 0 || !cfg.coLocation.mps.enabled) return null;
  const mps = new MpsDaemon({
    dataDir: cfg.dataDir, control: cfg.coLocation.mps.control,
    ...(cfg.coLocation.mps.activeThreadPercentage === undefined ? {} : { activeThreadPercentage: cfg.coLocation.mps.activeThreadPercentage }),
    ...opts,
  });
  await mps.checkComputeMode(plan.colocated);
  return mps;
}
