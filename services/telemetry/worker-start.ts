// A worker process's start as a span of its own (swapserve.worker_start) plus the start-up histogram: how long a
// scale from zero waits for the process before the scheduler can place a model on it.
import type { Attributes } from '@opentelemetry/api';
import { recordWorkerStartDuration } from './metrics.ts';
import * as S from '../../contracts/semconv.ts';
import { tracer } from './span-utils.ts';

export interface WorkerStartPhases {
  worker: string;
  backend: string;
  /** CUDA device ordinal (none for the CPU backend). */
  gpu?: number | null;
  /** Each phase's end, ms since the process started (performance.now() in the worker). */
  importedMs: number;
  runtimeOpenMs: number;
  readyMs: number;
}

/** Records the span (from performance.timeOrigin, the process start) and the histogram. Call once, when ready. */
export function recordWorkerStart(p: WorkerStartPhases): void {
  const origin = performance.timeOrigin;
  const attrs: Attributes = { [S.ATTR_WORKER]: p.worker, [S.ATTR_BACKEND]: p.backend };
  if (p.gpu != null) attrs[S.ATTR_GPU] = p.gpu;
  const span = tracer().startSpan(S.SPAN.workerStart, { attributes: attrs, startTime: origin, root: true });
  span.addEvent(S.EVENT.workerImported, origin + p.importedMs);
  span.addEvent(S.EVENT.workerRuntimeOpen, origin + p.runtimeOpenMs);
  span.end(origin + p.readyMs);
  recordWorkerStartDuration(p.readyMs / 1000, p.backend);
}
