// What instrumentation sees of the process's telemetry set-up: a small handle that the SDK side (sdk.ts, loaded
// by entry points alone) installs at initTelemetry. Depends on @opentelemetry/api only, so code that records spans
// and metrics (and the SDK package) never pulls in the OpenTelemetry SDK or its exporters.
import type { Attributes, MeterProvider } from '@opentelemetry/api';

/** A /metrics page: its body and the content type the scraper asked for. */
export interface MetricsPage {
  body: string;
  contentType: string;
}

export interface InstrumentationHandle {
  /** Whether spans are recorded (an exporter is configured). */
  tracing: boolean;
  /** Where instruments are created (the SDK's meter provider). */
  meterProvider: MeterProvider;
  /** Stamps attributes on every span of a trace in this process (null when tracing is off). */
  setTraceAttributes: ((traceId: string, attrs: Attributes) => void) | null;
  /** This process's metrics, OpenMetrics when `accept` asks for it, else Prometheus 0.0.4 text. */
  exposition: (accept?: string) => Promise<MetricsPage>;
}

let handle: InstrumentationHandle | null = null;
const initListeners: ((h: InstrumentationHandle) => void)[] = [];

/** The handle if initTelemetry ran, else null (telemetry calls are then no-ops). */
export function instrumentationHandle(): InstrumentationHandle | null {
  return handle;
}

/** Run `fn` now if telemetry is up, else when it comes up (instruments are created this way). */
export function onTelemetryInit(fn: (h: InstrumentationHandle) => void): void {
  if (handle) fn(handle);
  else initListeners.push(fn);
}

/** Installed by sdk.ts (initTelemetry) and cleared by shutdownTelemetry (null). */
export function setInstrumentationHandle(h: InstrumentationHandle | null): void {
  handle = h;
  if (h) for (const fn of initListeners.splice(0)) fn(h);
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** Whether an Accept header asks for OpenMetrics (Prometheus sends it first when it scrapes). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return !!accept && accept.includes('application/openmetrics-text');
}

/** This process's metrics as the scraper asks (empty before initTelemetry). */
export async function metricsExposition(accept?: string): Promise<MetricsPage> {
  if (handle) return handle.exposition(accept);
  const om = wantsOpenMetrics(accept);
  return { body: om ? '# EOF\n' : '', contentType: om ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE };
}

/** The Prometheus 0.0.4 text of this process's metrics ('' before initTelemetry). */
export async function metricsText(): Promise<string> {
  return (await metricsExposition()).body;
}

/** A Fastify route handler for GET /metrics: `app.get('/metrics', metricsHandler())`. */
export function metricsHandler() {
  return async (
    req: { headers: Record<string, string | string[] | undefined> },
    reply: { type(t: string): unknown; send(b: string): unknown },
  ): Promise<void> => {
    const accept = req.headers.accept;
    const { body, contentType } = await metricsExposition(Array.isArray(accept) ? accept.join(',') : accept);
    reply.type(contentType);
    reply.send(body);
  };
}
