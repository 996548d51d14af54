// Partial residency policy (pure; time is an argument): how many leading layer groups of a model being parked stay
// on the GPU (its resident prefix), and whose prefixes go back first when memory is needed. Issue 15 item 3.
//
// A prefix uses GPU memory that is otherwise idle; a swap of that model then copies only the rest, and the prefix's
// groups are ready at once (execute-while-loading starts with layer 0). Reclaiming one is bookkeeping (microseconds),
// so the rules are: prefixes come out of free memory only, in proportion to the chance of a request soon; they go
// back before any model is evicted, least likely model first; they never make a model's move fail or wait (the
// worker reclaims them and retries a reservation they fragmented).

/** Tuning of the prefix choice. */
export interface PrefixOptions {
  /** "Soon": the window over which the chance of a request is taken, ms. @defaultValue 60_000 */
  horizonMs: number;
  /** Half-life of the arrival-rate estimate, ms. @defaultValue 120_000 */
  rateHalfLifeMs: number;
  /** Below this chance of a request within the horizon nothing is kept. @defaultValue 0.05 */
  minProbability: number;
  /** Free GPU bytes never given to prefixes (room for a new arrival's first reservation). @defaultValue 0 */
  headroomBytes: number;
  /** At most this fraction of a model's bytes is kept. @defaultValue 1 */
  maxFraction: number;
}

export const PREFIX_DEFAULTS: PrefixOptions = { horizonMs: 60_000, rateHalfLifeMs: 120_000, minProbability: 0.05, headroomBytes: 0, maxFraction: 1 };

/** An exponentially decayed count of a model's request arrivals. */
export interface ArrivalRate {
  /** Decayed count at `atMs`. */
  count: number;
  atMs: number;
}

const tauMs = (o: Pick<PrefixOptions, 'rateHalfLifeMs'>) => o.rateHalfLifeMs / Math.LN2;

/** The estimate after one more arrival at `nowMs`. */
export function observeArrival(prev: ArrivalRate | null, nowMs: number, o: Pick<PrefixOptions, 'rateHalfLifeMs'> = PREFIX_DEFAULTS): ArrivalRate {
  if (!prev) return { count: 1, atMs: nowMs };
  const dt = Math.max(0, nowMs - prev.atMs);
  return { count: prev.count * Math.exp(-dt / tauMs(o)) + 1, atMs: Math.max(nowMs, prev.atMs) };
}

/**
 * Chance of at least one request within the horizon, treating arrivals as Poisson at the decayed rate
 * (count / tau requests per ms): 1 - exp(-rate * horizon). 0 for a model never requested.
 */
export function requestProbability(rate: ArrivalRate | null, nowMs: number, o: Pick<PrefixOptions, 'rateHalfLifeMs' | 'horizonMs'> = PREFIX_DEFAULTS): number {
  if (!rate) return 0;
  const tau = tauMs(o);
  const perMs = (rate.count * Math.exp(-Math.max(0, nowMs - rate.atMs) / tau)) / tau;
  return 1 - Math.exp(-perMs * o.horizonMs);
}

/** The GPU pool's block alignment (native/src/runtime/core.cc opens the gpu pool with 256): what a prefix holds. */
export const GPU_BLOCK_ALIGN = 256;
const aligned = (n: number) => Math.max(GPU_BLOCK_ALIGN, Math.ceil(n / GPU_BLOCK_ALIGN) * GPU_BLOCK_ALIGN);

export interface PrefixInput {
  /** End of each layer group in the model's arena, ascending (bytes); group g is [groupEnds[g-1] or 0, groupEnds[g]). */
  groupEnds: readonly number[];
  /** GPU pool bytes free once the model's arena is released and any reservation being made for now is counted. */
  freeBytes: number;
  /** Chance of a request for the model soon (requestProbability). */
  probability: number;
}

/**
 * How many leading groups to keep: the most whose bytes fit in probability × (free − headroom), and at most
 * maxFraction of the model; 0 below minProbability. The chance scales the share of idle memory a model may claim, so
 * a likely model keeps much of itself and an unlikely one little, and a prefix is never paid for with another
 * model's room (only free bytes are offered).
 */
export function choosePrefixGroups(input: PrefixInput, options: Partial<PrefixOptions> = {}): number {
  const o = { ...PREFIX_DEFAULTS, ...options };
  const { groupEnds, probability } = input;
  const G = groupEnds.length;
  if (G === 0 || !(probability >= o.minProbability)) return 0;
  const offer = Math.max(0, input.freeBytes - o.headroomBytes) * Math.min(1, probability);
  const cap = o.maxFraction * groupEnds[G - 1];
  let k = 0;
  while (k < G && aligned(groupEnds[k]) <= offer && groupEnds[k] <= cap) k++;
  return k;
}

/** A parked model's resident prefix, as the reclaim order sees it. */
export interface ParkedPrefix {
  id: string;
  bytes: number;
  probability: number;
  lastUsedAt: number | null;
}

/** Prefixes in the order they go back: least likely model first, then least recently used, then by id. */
export function reclaimOrder(parked: readonly ParkedPrefix[]): ParkedPrefix[] {
  return parked
    .filter((p) => p.bytes > 0)
    .sort((a, b) => a.probability - b.probability || (a.lastUsedAt ?? 0) - (b.lastUsedAt ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The prefixes to reclaim, in order, to free `needBytes` (the bytes a reservation lacks): the shortest head of
 * reclaimOrder that covers it, or every prefix when even all of them do not (the caller then evicts models).
 */
export function prefixesToReclaim(parked: readonly ParkedPrefix[], needBytes: number): string[] {
  const out: string[] = [];
  let freed = 0;
  for (const p of reclaimOrder(parked)) {
    if (freed >= needBytes) break;
    out.push(p.id);
    freed += p.bytes;
  }
  return out;
}
