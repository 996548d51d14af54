// Each model's typical request in observed traffic, for the co-location decision (issue 14): the simulator's token
// trace reader (services/simulator/trace.ts) and colocate.ts's pure statistic. Read by the entry points (up, scheduler).
import { ConfigError, type Config } from '../config/config.ts';
import { typicalRequest, type ObservedWorkload } from '../scheduler/colocate.ts';
import { readTokenTrace, type TokenRow } from '../simulator/trace.ts';

/**
 * Each model's typical request (the median, `typicalRequest`) in a token trace: a trace without a `model` column is
 * every model's traffic; with one, a model's rows are those naming its id or an alias (a model with none is absent
 * from the map). Throws ConfigError naming coLocation.workloadFrom and the file.
 */
export function observedWorkloads(models: Pick<Config['models'][number], 'id' | 'aliases'>[], path: string): Map<string, ObservedWorkload> {
  let rows: TokenRow[];
  try {
    rows = readTokenTrace(path);
  } catch (e) {
    throw new ConfigError(`coLocation.workloadFrom: ${(e as Error).message}`);
  }
  const out = new Map<string, ObservedWorkload>();
  const perModel = rows.some((r) => r.model !== null);
  for (const m of models) {
    const names = new Set([m.id, ...m.aliases]);
    const w = typicalRequest(perModel ? rows.filter((r) => r.model !== null && names.has(r.model)) : rows);
    if (w) out.set(m.id, w);
  }
  return out;
}

/** The observed workloads a config asks for (`coLocation.workloadFrom`), or undefined when it names no trace. */
export function observedFor(cfg: Pick<Config, 'coLocation' | 'models'>): Map<string, ObservedWorkload> | undefined {
  return cfg.coLocation.workloadFrom ? observedWorkloads(cfg.models, cfg.coLocation.workloadFrom) : undefined;
}
