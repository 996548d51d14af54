// Per-model residency history on one worker and the one definition of a request's path (pure; time is an argument).
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';

/** A finished tier move, in epoch ms. */
export interface MoveSpan {
  startMs: number;
  endMs: number;
}

/** How and when a model last reached the GPU tier on this worker. */
export interface GpuArrival {
  atMs: number;
  /** The latest disk read of the model's weights (into host, or straight to the GPU), if any. */
  load: MoveSpan | null;
  /** The host -> GPU copy of this arrival (null for a load_to_gpu, whose span is `load`). */
  swap: MoveSpan | null;
}

export interface PathDecision {
  path: ServePath;
  coldReason?: ColdReason;
  /** The part of [arrival, ready] spent on each move; queue is the rest (ms). */
  loadMs: number;
  swapMs: number;
  queueMs: number;
}

const overlap = (a0: number, a1: number, s: MoveSpan | null): number => (s ? Math.max(0, Math.min(a1, s.endMs) - Math.max(a0, s.startMs)) : 0);

/**
 * What the request waited for. The model was on the GPU before the request arrived: warm. It got there after:
 * the worker started after the arrival -> cold (worker_start); a disk read that ended after the arrival -> cold
 * (disk_load); else (a host -> GPU copy only) swap.
 * @param readyMs when the model was usable for this request (ms since epoch)
 */
export function classifyPath(arrivalMs: number, readyMs: number, arrival: GpuArrival, workerStartedMs: number): PathDecision {
  const loadMs = overlap(arrivalMs, readyMs, arrival.load);
  const swapMs = overlap(arrivalMs, readyMs, arrival.swap);
  const queueMs = Math.max(0, readyMs - arrivalMs - loadMs - swapMs);
  if (arrival.atMs <= arrivalMs) return { path: 'warm', loadMs: 0, swapMs: 0, queueMs: Math.max(0, readyMs - arrivalMs) };
  if (arrivalMs < workerStartedMs) return { path: 'cold', coldReason: 'worker_start', loadMs, swapMs, queueMs };
  if (arrival.load && arrival.load.endMs > arrivalMs) return { path: 'cold', coldReason: 'disk_load', loadMs, swapMs, queueMs };
  return { path: 'swap', loadMs, swapMs, queueMs };
}
