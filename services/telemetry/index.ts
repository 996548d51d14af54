// swapserve telemetry for entry points and tests: this barrel loads the OpenTelemetry SDK (sdk.ts); services import
// the instrumentation modules directly (traces.ts, metrics.ts, bullmq.ts, http.ts, handle.ts: @opentelemetry/api
// only). Start with initTelemetry({ serviceName }) once per process (before creating BullMQ queues/workers);
// everything else is a no-op until then and never throws.
//
// Gateway:  app.register(httpTelemetry)  (HTTP server spans + GET /metrics);
//           const rs = requestSpan({ operation: 'chat', model }); await rs.run(() => queue.add(...));
//           rs.setPath(path, coldReason) when the worker reports it; rs.firstChunk(); rs.end({ outcome, ... }).
// Worker:   new Worker(name, processor, { telemetry: bullmqTelemetry() }); in the processor:
//           const jt = jobTrace({ operation, model, enqueuedMs: job.timestamp, worker, gpu });
//           jt.setPath(path, coldReason); await jt.move('swap_in', model, () => runtime.swapIn(...));
//           await jt.phase(SPAN.prefill, {}, ...); jt.firstToken(); await jt.phase(SPAN.decode, {}, ...);
//           jt.end({ outcome, inputTokens, outputTokens });  (records the TTFT / TPOT / duration histograms)
//           startMetricsServer({ port }) for a /metrics endpoint without Fastify.
export { initTelemetry, shutdownTelemetry, telemetryHandle, readTelemetryEnv } from './sdk.ts';
export type { TelemetryOptions, TelemetryHandle } from './sdk.ts';
export {
  tracer,
  withSpan,
  recordSpan,
  setRequestPath,
  requestSpan,
  RequestSpan,
  jobTrace,
  JobTrace,
  tracedMove,
  recordWorkerStart,
} from './traces.ts';
export type { RequestSpanInit, RequestEnd, JobTraceInit, DeliveredLike, WorkerStartPhases } from './traces.ts';
export {
  recordRequest,
  recordRequestError,
  recordTtft,
  recordMove,
  recordEviction,
  recordRestart,
  setLeaderSource,
  setResidency,
  clearResidency,
  setLinkPeak,
  registerQueueSource,
  registerWorkerSource,
  registerResidencySource,
} from './metrics.ts';
export { metricsText, metricsExposition, metricsHandler, PROMETHEUS_CONTENT_TYPE } from './handle.ts';
export { startMetricsServer } from './prometheus.ts';
export type { QueueSample, WorkerSample, ResidencySample, QueueSource, WorkerSource, ResidencySource, RequestMetrics } from './metrics.ts';
export { bullmqTelemetry } from './bullmq.ts';
export { httpTelemetry, requestContext } from './http.ts';
export type { HttpTelemetryOptions } from './http.ts';
export { SPAN, EVENT } from '../../contracts/semconv.ts';
