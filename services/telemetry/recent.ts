// The last requests this process served (model, path, time to first token), for the status page. Fed by the
// gateway's request spans; bounded, so memory stays flat however long the process runs.
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';

export interface RecentRequest {
  model: string;
  path: ServePath;
  coldReason: ColdReason | null;
  /** Arrival to first token, ms (the worker's measure when it sent one, else the gateway's). */
  ttftMs: number;
  /** When the first token arrived, epoch ms. */
  atMs: number;
}

/** Requests kept. @defaultValue 256 */
const CAPACITY = 256;
const ring: RecentRequest[] = [];

export function recordRecent(r: RecentRequest): void {
  if (!Number.isFinite(r.ttftMs) || r.ttftMs < 0) return;
  ring.push(r);
  if (ring.length > CAPACITY) ring.splice(0, ring.length - CAPACITY);
}

/** Most recent first. */
export function recentRequests(limit = CAPACITY): RecentRequest[] {
  return ring.slice(-limit).reverse();
}
