// Traces of a request, one module per side: span-utils.ts (helpers), request-span.ts (gateway / SDK),
// job-trace.ts (worker). This file keeps the one import path the services use.
export { tracer, setRequestPath, withSpan, recordSpan } from './span-utils.ts';
export { RequestSpan, requestSpan } from './request-span.ts';
export type { RequestSpanInit, RequestEnd, DeliveredLike } from './request-span.ts';
export { JobTrace, jobTrace, tracedMove } from './job-trace.ts';
export { recordWorkerStart } from './worker-start.ts';
export type { WorkerStartPhases } from './worker-start.ts';
export type { JobTraceInit } from './job-trace.ts';
