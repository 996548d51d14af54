// The `telemetry` option for BullMQ's Queue / Worker / FlowProducer (bullmq-otel): producer and consumer spans
// that carry the trace from the gateway's enqueue to the worker's processor through the job's metadata, and
// bullmq-otel's metrics (bullmq.jobs.completed / failed / …, bullmq.job.duration) on the global meter provider.
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { instrumentationHandle } from './handle.ts';

/** One BullMQOtel per initTelemetry() (its meter is bound at construction to that run's meter provider). */
let shared: { telemetry: BullMQOtel; for: object } | null = null;

/**
 * `new Queue(name, { connection, telemetry: bullmqTelemetry() })`. Undefined before initTelemetry() (BullMQ then
 * skips its telemetry entirely); with tracing off its spans go to the no-op tracer while its metrics are kept.
 */
export function bullmqTelemetry(): Telemetry | undefined {
  const h = instrumentationHandle();
  if (!h) return undefined;
  if (shared?.for !== h.meterProvider) {
    shared = { telemetry: new BullMQOtel({ tracerName: 'bullmq', meterName: 'bullmq', enableMetrics: true }), for: h.meterProvider };
  }
  return shared.telemetry as unknown as Telemetry;
}
