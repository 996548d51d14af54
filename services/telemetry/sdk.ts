// Process-wide OpenTelemetry set-up: one tracer provider (OTLP over HTTP when an endpoint is configured by the
// standard OTEL_* variables, or a test exporter) and one meter provider (always a Prometheus reader for
// `/metrics`; OTLP push when configured). Idempotent: the first call wins, later calls return the same handle.
import { diag, DiagLogLevel, metrics, trace, type DiagLogger } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  TraceIdRatioBasedSampler,
  ParentBasedSampler,
  SamplingDecision,
  SimpleSpanProcessor,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { Server } from 'node:http';
import { z } from 'zod';
import { setInstrumentationHandle } from './handle.ts';
import { exposeMetrics, startMetricsServer } from './prometheus.ts';
import { RequestAttributeProcessor } from './request-attributes.ts';
import { ATTR_SERVICE_NAME } from '../../contracts/semconv.ts';

export interface TelemetryOptions {
  /** `service.name` resource attribute. @defaultValue OTEL_SERVICE_NAME, else 'swapserve' */
  serviceName?: string;
  /**
   * Export spans here synchronously (tests: an InMemorySpanExporter). When set, tracing is on whatever the
   * environment says. @defaultValue undefined (OTLP when an endpoint is configured, else tracing off)
   */
  spanExporter?: SpanExporter;
  /** Batch spans to `spanExporter` as production does with OTLP (benchmarks) instead of exporting each at once. @defaultValue false */
  batchSpans?: boolean;
  /** Extra metric reader (tests). @defaultValue undefined */
  metricReader?: IMetricReader;
  /** Environment to read OTEL_* from. @defaultValue process.env */
  env?: Record<string, string | undefined>;
  /**
   * Serve GET /metrics on this port with a bare HTTP server (processes without Fastify: workers, scheduler).
   * @defaultValue env SWAPSERVE_METRICS_PORT, else none
   */
  metricsPort?: number;
}

export interface TelemetryHandle {
  serviceName: string;
  /** Whether spans are recorded (an exporter is configured). */
  tracing: boolean;
  /** Whether metrics are pushed over OTLP (the Prometheus reader is always there). */
  otlpMetrics: boolean;
  meterProvider: MeterProvider;
  prometheus: PrometheusExporter;
  /** Null when tracing is off. */
  requestAttributes: RequestAttributeProcessor | null;
  tracerProvider: NodeTracerProvider | null;
  /** The bare /metrics server when `metricsPort` was given; its listening promise. */
  metricsServer: Promise<Server> | null;
}

/** The OTEL_* variables read, validated once at start-up. Bad values turn telemetry off, never fail start-up. */
const EnvSchema = z.object({
  OTEL_SDK_DISABLED: z.string().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: z.url().optional(),
  OTEL_TRACES_EXPORTER: z.string().optional(),
  OTEL_METRICS_EXPORTER: z.string().optional(),
  OTEL_METRIC_EXPORT_INTERVAL: z.coerce.number().int().positive().optional(),
  OTEL_LOG_LEVEL: z.string().optional(),
  OTEL_TRACES_SAMPLER: z
    .enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'])
    .optional(),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
});
export type TelemetryEnv = z.infer<typeof EnvSchema>;

/** What the environment asks for: which signals go out over OTLP. Pure, for tests. */
export function readTelemetryEnv(env: Record<string, string | undefined>): {
  disabled: boolean;
  serviceName: string | undefined;
  otlpTraces: boolean;
  otlpMetrics: boolean;
  metricIntervalMs: number | undefined;
  /** OTEL_TRACES_SAMPLER / _ARG. @defaultValue parentbased_always_on */
  sampler: { parentBased: boolean; root: 'always_on' | 'always_off' | 'traceidratio'; ratio: number };
  /** Where traces / metrics go (the signal endpoint as given, else the base endpoint + /v1/traces|metrics). */
  tracesUrl: string | undefined;
  metricsUrl: string | undefined;
  problems: string[];
} {
  // Each variable on its own: an invalid one is reported and ignored, the others still apply.
  const problems: string[] = [];
  const valid: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(EnvSchema.shape)) {
    const raw = env[key];
    if (raw === undefined || raw === '') continue;
    const r = (schema as z.ZodType).safeParse(raw);
    if (r.success) valid[key] = r.data;
    else problems.push(`${key}=${JSON.stringify(raw)}: ${r.error.issues[0]?.message ?? 'invalid'}`);
  }
  const e = valid as TelemetryEnv;
  const disabled = (e.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true';
  const list = (v: string | undefined, dflt: string) => (v ?? dflt).split(',').map((s) => s.trim().toLowerCase());
  const traceExporters = list(e.OTEL_TRACES_EXPORTER, 'otlp');
  const metricExporters = list(e.OTEL_METRICS_EXPORTER, 'otlp');
  return {
    disabled,
    serviceName: e.OTEL_SERVICE_NAME,
    otlpTraces:
      !disabled && traceExporters.includes('otlp') && !!(e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT),
    otlpMetrics:
      !disabled &&
      metricExporters.includes('otlp') &&
      !!(e.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT),
    metricIntervalMs: e.OTEL_METRIC_EXPORT_INTERVAL,
    sampler: {
      parentBased: (e.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').startsWith('parentbased_'),
      root: (e.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').replace('parentbased_', '') as 'always_on' | 'always_off' | 'traceidratio',
      ratio: e.OTEL_TRACES_SAMPLER_ARG ?? 1,
    },
    tracesUrl: e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? signalUrl(e.OTEL_EXPORTER_OTLP_ENDPOINT, 'traces'),
    metricsUrl: e.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? signalUrl(e.OTEL_EXPORTER_OTLP_ENDPOINT, 'metrics'),
    problems,
  };
}

/** The spec's rule: a base endpoint gets `/v1/<signal>` appended. */
function signalUrl(base: string | undefined, signal: 'traces' | 'metrics'): string | undefined {
  return base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/${signal}`;
}

let handle: TelemetryHandle | null = null;

/** The whole handle if initTelemetry ran, else null (instrumentation sees the smaller handle.ts one). */
export function telemetryHandle(): TelemetryHandle | null {
  return handle;
}

/** Start telemetry for this process. Idempotent; never throws (a broken exporter must not fail requests). */
export function initTelemetry(options: TelemetryOptions = {}): TelemetryHandle {
  if (handle) return handle;
  const env = options.env ?? process.env;
  const cfg = readTelemetryEnv(env);
  installDiagLogger(env.OTEL_LOG_LEVEL);
  for (const p of cfg.problems) diag.warn(`swapserve telemetry: ignoring invalid OTEL setting ${p}`);
  const serviceName = options.serviceName ?? cfg.serviceName ?? 'swapserve';
  // OTEL_RESOURCE_ATTRIBUTES (envDetector), then the service name, which wins.
  const resource: Resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }));

  let tracerProvider: NodeTracerProvider | null = null;
  let requestAttributes: RequestAttributeProcessor | null = null;
  const inner: SpanProcessor[] = [];
  if (options.spanExporter) {
    inner.push(options.batchSpans ? new BatchSpanProcessor(options.spanExporter) : new SimpleSpanProcessor(options.spanExporter));
  }
  if (cfg.otlpTraces) inner.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: cfg.tracesUrl })));
  if (inner.length > 0) {
    requestAttributes = new RequestAttributeProcessor(inner.length === 1 ? inner[0] : fanOut(inner));
    tracerProvider = new NodeTracerProvider({
      resource,
      spanProcessors: [requestAttributes],
      sampler: buildSampler(cfg.sampler),
    });
    // Registers the AsyncLocalStorage context manager and the W3C trace-context propagator that bullmq-otel
    // uses to carry the trace from the producer to the consumer through the job's metadata.
    tracerProvider.register();
  }

  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const readers: IMetricReader[] = [prometheus];
  if (cfg.otlpMetrics) {
    const interval = cfg.metricIntervalMs ?? 15_000;
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: cfg.metricsUrl }),
        exportIntervalMillis: interval,
        exportTimeoutMillis: Math.min(30_000, interval),
      }),
    );
  }
  if (options.metricReader) readers.push(options.metricReader);
  const meterProvider = new MeterProvider({ resource, readers });
  // The global meter provider: bullmq-otel's metrics (bullmq.jobs.*, bullmq.job.duration) find their meter there.
  metrics.disable();
  metrics.setGlobalMeterProvider(meterProvider);

  const portRaw = options.metricsPort ?? env.SWAPSERVE_METRICS_PORT;
  const port = portRaw === undefined || portRaw === '' ? null : Number(portRaw);
  let metricsServer: Promise<Server> | null = null;
  if (port !== null && Number.isInteger(port) && port >= 0 && port < 65536) {
    metricsServer = startMetricsServer({ port });
    metricsServer.catch((err) => diag.error(`swapserve telemetry: /metrics server on port ${port}: ${String(err)}`));
  } else if (port !== null) {
    diag.warn(`swapserve telemetry: ignoring invalid SWAPSERVE_METRICS_PORT ${String(portRaw)}`);
  }

  handle = {
    metricsServer,
    serviceName,
    tracing: tracerProvider !== null,
    otlpMetrics: cfg.otlpMetrics,
    meterProvider,
    prometheus,
    requestAttributes,
    tracerProvider,
  };
  const attrs = requestAttributes;
  setInstrumentationHandle({
    tracing: handle.tracing,
    meterProvider,
    setTraceAttributes: attrs ? (traceId, a) => attrs.setTraceAttributes(traceId, a) : null,
    exposition: (accept) => exposeMetrics(prometheus, accept),
  });
  return handle;
}

/** Flush and stop exporters. Idempotent; runs every step even when one fails. Last in the shutdown order. */
export async function shutdownTelemetry(): Promise<void> {
  const h = handle;
  if (!h) return;
  handle = null;
  setInstrumentationHandle(null);
  const steps: Promise<unknown>[] = [h.meterProvider.shutdown()];
  if (h.metricsServer) {
    steps.push(h.metricsServer.then((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))));
  }
  if (h.tracerProvider) steps.push(h.tracerProvider.shutdown());
  const results = await Promise.allSettled(steps);
  for (const r of results) if (r.status === 'rejected') diag.warn(`swapserve telemetry: shutdown: ${String(r.reason)}`);
  if (h.tracerProvider) trace.disable();
  metrics.disable();
}

/**
 * BullMQ traces its own polling (`getNextJob`, every few seconds per worker) and housekeeping (stalled-job checks,
 * lock renewal, delayed-job promotion, event trimming, queue maintenance) as root spans; they would bury the
 * request traces in Tempo. Root spans named `{operation} {queue}` with one of these operations (every BullMQ
 * operation but a job's own: add, addBulk, process, complete, fail, retry, delay) are dropped; children follow
 * their parent. test/telemetry/housekeeping.test.ts checks no such root reaches the exporter.
 */
export const BULLMQ_HOUSEKEEPING_OPERATIONS = [
  'getNextJob', 'moveStalledJobsToWait', 'startStalledCheckTimer', 'extendLocks', 'promoteJobs', 'rateLimit', 'pause',
  'resume', 'close', 'trimEvents', 'drain', 'clean', 'obliterate', 'retryJobs', 'remove', 'removeDebounceKey',
  'removeDeduplicationKey', 'updateJobProgress',
] as const;
const HOUSEKEEPING = new RegExp(`^(${BULLMQ_HOUSEKEEPING_OPERATIONS.join('|')})( |$)`);
class HousekeepingFilter implements Sampler {
  constructor(private readonly inner: Sampler = new AlwaysOnSampler()) {}
  shouldSample(...args: Parameters<Sampler['shouldSample']>): ReturnType<Sampler['shouldSample']> {
    return HOUSEKEEPING.test(args[2]) ? { decision: SamplingDecision.NOT_RECORD } : this.inner.shouldSample(...args);
  }
  toString(): string {
    return 'SwapserveHousekeepingFilter';
  }
}

/** The standard samplers, with BullMQ's housekeeping root spans dropped in front of the root decision. */
function buildSampler(c: ReturnType<typeof readTelemetryEnv>['sampler']): Sampler {
  const inner = c.root === 'always_off' ? new AlwaysOffSampler() : c.root === 'traceidratio' ? new TraceIdRatioBasedSampler(c.ratio) : new AlwaysOnSampler();
  const root = new HousekeepingFilter(inner);
  return c.parentBased ? new ParentBasedSampler({ root }) : root;
}

function fanOut(processors: SpanProcessor[]): SpanProcessor {
  return {
    onStart: (span, ctx) => processors.forEach((p) => p.onStart(span, ctx)),
    onEnding: (span) => processors.forEach((p) => p.onEnding?.(span)),
    onEnd: (span) => processors.forEach((p) => p.onEnd(span)),
    forceFlush: async () => void (await Promise.all(processors.map((p) => p.forceFlush()))),
    shutdown: async () => void (await Promise.all(processors.map((p) => p.shutdown()))),
  };
}

function installDiagLogger(level: string | undefined): void {
  const lv = (level ?? 'warn').toUpperCase();
  const map: Record<string, DiagLogLevel> = {
    NONE: DiagLogLevel.NONE,
    ERROR: DiagLogLevel.ERROR,
    WARN: DiagLogLevel.WARN,
    INFO: DiagLogLevel.INFO,
    DEBUG: DiagLogLevel.DEBUG,
    VERBOSE: DiagLogLevel.VERBOSE,
    ALL: DiagLogLevel.ALL,
  };
  const write = (prefix: string) => (msg: string, ...args: unknown[]) =>
    process.stderr.write(`[otel ${prefix}] ${msg}${args.length ? ' ' + args.map(String).join(' ') : ''}\n`);
  const logger: DiagLogger = {
    error: write('error'),
    warn: write('warn'),
    info: write('info'),
    debug: write('debug'),
    verbose: write('verbose'),
  };
  diag.setLogger(logger, { logLevel: map[lv] ?? DiagLogLevel.WARN, suppressOverrideMessage: true });
}
