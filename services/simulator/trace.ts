// A multi-model LLM replay built from real traces: arrivals and model ids from Alibaba GenTD26 (86 image-generation
// models over 23 days), prompt and output token counts drawn from an Azure LLM 2023 trace (the pairing is
// synthetic; the data README says so). Every mapping choice is a field of TraceOptions and printed in the report.
import { readFileSync } from 'node:fs';
import { SwapserveError } from '../../contracts/errors.ts';
import type { Fleet } from './fleet-spec.ts';
import { rng } from './rng.ts';

/** One request of the replay. */
export interface SimRequest {
  id: number;
  /** Arrival (ms since the replay's start, after compression). */
  at: number;
  /** Fleet model id. */
  model: string;
  promptTokens: number;
  outputTokens: number;
}

export interface TraceOptions {
  /** GenTD26 `lora_request_trace.csv`. */
  arrivals: string;
  /** Azure LLM trace CSV (`ContextTokens`, `GeneratedTokens`) the token counts are drawn from. */
  tokens: string;
  /** Time compression: arrival gaps are divided by this. @defaultValue 60 (23 days -> 9.2 h) */
  compress: number;
  /**
   * How the trace's models map onto the fleet, by popularity rank r (0 = most requested): 'fold' sends rank r to
   * fleet model r mod N (the fleet's N models carry all traffic); 'top' keeps only the N most requested trace models.
   * @defaultValue "fold"
   */
  mapping: 'fold' | 'top';
  /** Only arrivals within the first this-many trace days (before compression). @defaultValue Infinity (all 23) */
  days: number;
  /** Seed of the token-count draw. @defaultValue 1 */
  seed: number;
}

export const TRACE_DEFAULTS: Omit<TraceOptions, 'arrivals' | 'tokens'> = { compress: 60, mapping: 'fold', days: Infinity, seed: 1 };

export class TraceError extends SwapserveError<'trace_invalid'> {
  override name = 'TraceError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('trace_invalid', message, options);
  }
}

/** Rows of `columns` ('' where a column of `absent` is not in the header, or a value of `optional` is empty). */
function readCsv(path: string, columns: string[], optional: ReadonlySet<string> = new Set(), absent: ReadonlySet<string> = new Set()): string[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TraceError(`trace ${path}: ${(e as Error).message}`);
  }
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const header = lines[0]?.split(',') ?? [];
  const idx = columns.map((c) => header.indexOf(c));
  const missing = columns.filter((c, i) => idx[i] < 0 && !absent.has(c));
  if (missing.length > 0) throw new TraceError(`trace ${path}: missing column(s) ${missing.join(', ')} (header: ${header.join(',')})`);
  return lines.slice(1).map((l, n) => {
    const f = l.split(',');
    const row = idx.map((i) => (i < 0 ? '' : (f[i] ?? '')));
    if (row.some((v, i) => v === '' && !optional.has(columns[i]) && idx[i] >= 0)) throw new TraceError(`trace ${path}: line ${n + 2} lacks ${columns.join('/')}`);
    return row;
  });
}

/** Parses "2024-11-15 16:57:50" (the trace's clock; read as UTC: only differences matter) to ms. */
function parseTime(s: string, path: string): number {
  const t = Date.parse(`${s.trim().replace(' ', 'T')}Z`);
  if (!Number.isFinite(t)) throw new TraceError(`trace ${path}: bad time "${s}"`);
  return t;
}

/** One request's token counts from a token trace, and its model where the trace has a `model` column. */
export interface TokenRow {
  promptTokens: number;
  outputTokens: number;
  /** The `model` column's value; null when the trace has none (the Azure traces: one service's traffic). */
  model: string | null;
}

/**
 * A token trace: the Azure LLM 2023 CSV (`ContextTokens`, `GeneratedTokens`), optionally with a `model` column
 * (a swapserve model id or alias per row, for traffic of several models). Throws TraceError naming the line.
 */
export function readTokenTrace(path: string): TokenRow[] {
  const rows = readCsv(path, ['ContextTokens', 'GeneratedTokens', 'model'], new Set(['model']), new Set(['model']));
  if (rows.length === 0) throw new TraceError(`trace ${path}: no requests`);
  return rows.map(([c, g, m], n) => {
    const promptTokens = Number(c), outputTokens = Number(g);
    if (!Number.isInteger(promptTokens) || !Number.isInteger(outputTokens) || promptTokens < 1 || outputTokens < 0) {
      throw new TraceError(`trace ${path}: line ${n + 2} has a bad token count`);
    }
    return { promptTokens, outputTokens, model: m === '' ? null : m };
  });
}

export interface Replay {
  requests: SimRequest[];
  /** Replay length (ms): the last arrival. */
  spanMs: number;
  /** Trace model -> fleet model, by rank, with request counts (for the report). */
  mapping: { traceModel: string; requests: number; fleetModel: string | null }[];
  tokenRows: number;
  /** Trace rows left out because they name no model. */
  skipped: number;
}

export function buildReplay(fleet: Fleet, o: TraceOptions): Replay {
  // 25 rows have no model id (all PENDING, per the data README): they are left out and counted.
  const rows = readCsv(o.arrivals, ['gmt_create', 'checkpoint_model_version_id'], new Set(['checkpoint_model_version_id']));
  const arrivals = rows.filter(([, m]) => m !== '').map(([t, m]) => ({ t: parseTime(t, o.arrivals), m })).sort((a, b) => a.t - b.t);
  if (arrivals.length === 0) throw new TraceError(`trace ${o.arrivals}: no requests`);
  const t0 = arrivals[0].t;
  const inSpan = arrivals.filter((a) => a.t - t0 < o.days * 86_400_000);
  const counts = new Map<string, number>();
  for (const a of inSpan) counts.set(a.m, (counts.get(a.m) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const n = fleet.models.length;
  const mapping = ranked.map(([traceModel, requests], r) => ({
    traceModel, requests, fleetModel: o.mapping === 'fold' || r < n ? fleet.models[r % n].id : null,
  }));
  const to = new Map(mapping.map((x) => [x.traceModel, x.fleetModel]));
  const tokenRows = readTokenTrace(o.tokens).map((r) => [r.promptTokens, r.outputTokens]);
  const rand = rng(o.seed);
  const ctx = new Map(fleet.models.map((m) => [m.id, m.contextTokens]));
  const requests: SimRequest[] = [];
  for (const a of inSpan) {
    const model = to.get(a.m);
    if (!model) continue;
    const [c, g] = tokenRows[Math.floor(rand() * tokenRows.length)];
    const limit = ctx.get(model)!;
    const promptTokens = Math.min(c, limit - 1);
    requests.push({ id: requests.length, at: (a.t - t0) / o.compress, model, promptTokens, outputTokens: Math.max(1, Math.min(g, limit - promptTokens)) });
  }
  return { requests, spanMs: requests.length ? requests[requests.length - 1].at : 0, mapping, tokenRows: tokenRows.length, skipped: rows.length - arrivals.length };
}
