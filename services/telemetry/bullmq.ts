// The `telemetry` option for BullMQ's Queue / Worker / FlowProducer (bullmq-otel): producer and consumer spans
// that carry the trace from the gateway's enqueue to the worker's processor through the job's metadata.
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { instrumentationHandle } from './handle.ts';

let shared: BullMQOtel | null = null;

/**
 * `new Queue(name, { connection, telemetry: bullmqTelemetry() })`. Undefined while tracing is off (no OTLP
 * endpoint, no test exporter), so BullMQ skips its span work entirely. Call initTelemetry() first.
 */
export function bullmqTelemetry(): Telemetry | undefined {
  if (!instrumentationHandle()?.tracing) return undefined;
  shared ??= new BullMQOtel({ tracerName: 'bullmq' });
  return shared as unknown as Telemetry;
}
