// OpenMetrics 1.0 text for /metrics when the scraper asks for it (Prometheus does), so histogram buckets can
// carry exemplars: the trace id of a request that fell in the bucket. Grafana shows them as points on the TTFT
// panels and opens the trace in Tempo. The OpenTelemetry JS Prometheus exporter writes the 0.0.4 text format,
// which has no exemplars; names and labels here match it, so dashboards work on either.
import type { Attributes } from '@opentelemetry/api';
import { DataPointType, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ExemplarStore } from './exemplars.ts';

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
