// OpenMetrics 1.0 text for /metrics when the scraper asks for it (Prometheus does), so histogram buckets can
// carry exemplars: the trace id of a request that fell in the bucket. Grafana shows them as points on the TTFT
// panels and opens the trace in Tempo. The OpenTelemetry JS Prometheus exporter writes the 0.0.4 text format,
// which has no exemplars; names and labels here match it, so dashboards work on either.
import type { Attributes } from '@opentelemetry/api';
import { DataPointType, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export interface Exemplar {
  /** The observed value (seconds for the latency histograms). */
  value: number;
  traceId: string;
  spanId: string;
  /** When it was observed, epoch ms. */
  atMs: number;
}

/** Latest exemplar per histogram series and bucket. */
export class ExemplarStore {
  private readonly byKey = new Map<string, Exemplar>();
  /** Series (metric + label set) kept at most; the oldest is dropped beyond (bounded memory). */
  constructor(private readonly maxSeries = 4096) {}

  /** Remember `ex` for the bucket of `metric{attrs}` its value falls in. */
  offer(metric: string, attrs: Attributes, boundaries: readonly number[], ex: Exemplar): void {
    let bucket = boundaries.findIndex((b) => ex.value <= b);
    if (bucket < 0) bucket = boundaries.length;
    const key = `${metric}\u0000${attrsKey(attrs)}\u0000${bucket}`;
    this.byKey.delete(key);
    this.byKey.set(key, ex);
    if (this.byKey.size > this.maxSeries) this.byKey.delete(this.byKey.keys().next().value as string);
  }

  get(metric: string, attrs: Attributes, bucket: number): Exemplar | undefined {
    return this.byKey.get(`${metric}\u0000${attrsKey(attrs)}\u0000${bucket}`);
  }
}

function attrsKey(attrs: Attributes): string {
  return Object.keys(attrs)
    .sort()
    .map((k) => `${k}=${String(attrs[k])}`)
    .join('\u0001');
}

const sanitize = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/_{2,}/g, '_');
const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labels(attrs: Attributes, extra?: [string, string]): string {
  const parts = Object.entries(attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${sanitize(k)}="${escapeLabel(Array.isArray(v) ? v.join(',') : String(v))}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function metricText(m: MetricData, exemplars: ExemplarStore): string {
  const base = sanitize(m.descriptor.name);
  const lines: string[] = [];
  if (m.dataPointType === DataPointType.SUM && m.isMonotonic) {
    // OpenMetrics counters: the family has no suffix, the sample ends in _total.
    const family = base.endsWith('_total') ? base.slice(0, -'_total'.length) : base;
    lines.push(`# TYPE ${family} counter`, `# HELP ${family} ${escapeHelp(m.descriptor.description)}`);
    for (const dp of m.dataPoints) lines.push(`${family}_total${labels(dp.attributes)} ${num(dp.value)}`);
  } else if (m.dataPointType === DataPointType.SUM || m.dataPointType === DataPointType.GAUGE) {
    lines.push(`# TYPE ${base} gauge`, `# HELP ${base} ${escapeHelp(m.descriptor.description)}`);
    for (const dp of m.dataPoints) lines.push(`${base}${labels(dp.attributes)} ${num(dp.value as number)}`);
  } else if (m.dataPointType === DataPointType.HISTOGRAM) {
    lines.push(`# TYPE ${base} histogram`, `# HELP ${base} ${escapeHelp(m.descriptor.description)}`);
    for (const dp of m.dataPoints) {
      const { boundaries, counts } = dp.value.buckets;
      let cumulative = 0;
      for (let i = 0; i <= boundaries.length; i++) {
        cumulative += counts[i] ?? 0;
        const le = i < boundaries.length ? num(boundaries[i]) : '+Inf';
        const ex = exemplars.get(m.descriptor.name, dp.attributes, i);
        const exText = ex ? ` # {trace_id="${ex.traceId}",span_id="${ex.spanId}"} ${num(ex.value)} ${(ex.atMs / 1000).toFixed(3)}` : '';
        lines.push(`${base}_bucket${labels(dp.attributes, ['le', le])} ${cumulative}${exText}`);
      }
      lines.push(`${base}_count${labels(dp.attributes)} ${dp.value.count}`, `${base}_sum${labels(dp.attributes)} ${num(dp.value.sum ?? 0)}`);
    }
  }
  return lines.join('\n');
}

/** The OpenMetrics exposition of collected metrics, with the exemplars known for their buckets. */
export function toOpenMetrics(rm: ResourceMetrics, exemplars: ExemplarStore): string {
  const out: string[] = [];
  const info = labels(rm.resource.attributes as Attributes);
  out.push('# TYPE target info', '# HELP target Target metadata', `target_info${info} 1`);
  for (const scope of rm.scopeMetrics) {
    for (const m of scope.metrics) if (m.dataPoints.length > 0) out.push(metricText(m, exemplars));
  }
  out.push('# EOF');
  return out.join('\n') + '\n';
}

/** Whether an Accept header asks for OpenMetrics (Prometheus sends it first when it scrapes). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return !!accept && accept.includes('application/openmetrics-text');
}
