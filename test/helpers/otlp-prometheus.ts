// The OTLP path to Prometheus for tests: a real OTLP/HTTP (JSON) metrics receiver that serves what it last received
// as a Prometheus text page, named and labelled as the OpenTelemetry Collector's Prometheus exporter does (unit and
// `_total` suffixes, `job` / `instance` from service.name / service.instance.id, `otel_scope_name`), for a real
// Prometheus to scrape. Needed because Debian's prometheus (2.42) predates Prometheus's own OTLP receiver (2.47).
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { prometheusName } from '../../contracts/semconv.ts';

type AnyValue = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean };
type KeyValue = { key: string; value: AnyValue };
interface Point { attributes?: KeyValue[]; asDouble?: number; asInt?: number | string; count?: number | string; sum?: number; bucketCounts?: (number | string)[]; explicitBounds?: number[] }
interface Metric { name: string; unit?: string; sum?: { dataPoints: Point[]; isMonotonic?: boolean }; gauge?: { dataPoints: Point[] }; histogram?: { dataPoints: Point[] } }
interface Export { resourceMetrics: { resource?: { attributes?: KeyValue[] }; scopeMetrics: { scope?: { name?: string; version?: string }; metrics: Metric[] }[] }[] }

export interface OtlpPrometheus {
  /** OTLP metrics endpoint (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`). */
  otlpUrl: string;
  /** `host:port` of the Prometheus page, for scrape targets. */
  target: string;
  /** Resolves after the next OTLP export has arrived. */
  nextExport(): Promise<void>;
  stop(): Promise<void>;
}

const str = (v: AnyValue) => String(v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue ?? '');
const labelName = (k: string) => k.replace(/[^a-zA-Z0-9_]/g, '_');
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>) => `{${Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;

/** The Prometheus text page of one OTLP export (cumulative temporality: each export carries the totals). */
export function otlpToPrometheusText(body: Export): string {
  const out: string[] = [];
  for (const rm of body.resourceMetrics) {
    const res = Object.fromEntries((rm.resource?.attributes ?? []).map((a) => [a.key, str(a.value)]));
    const base: Record<string, string> = { job: res['service.name'] ?? 'unknown_service', instance: res['service.instance.id'] ?? '' };
    for (const sm of rm.scopeMetrics) {
      const scope = { ...base, otel_scope_name: sm.scope?.name ?? '', otel_scope_version: sm.scope?.version ?? '' };
      for (const m of sm.metrics) {
        const kind = m.histogram ? 'histogram' : m.sum?.isMonotonic ? 'counter' : 'gauge';
        const name = prometheusName(m.name, kind, m.unit ?? '', 'otlp');
        out.push(`# TYPE ${name} ${kind}`);
        for (const p of (m.histogram ?? m.sum ?? m.gauge)!.dataPoints) {
          const l = { ...scope, ...Object.fromEntries((p.attributes ?? []).map((a) => [labelName(a.key), str(a.value)])) };
          if (!m.histogram) {
            out.push(`${name}${labels(l)} ${Number(p.asDouble ?? p.asInt ?? 0)}`);
            continue;
          }
          let cum = 0;
          const bounds = [...(p.explicitBounds ?? []), Infinity];
          bounds.forEach((b, i) => {
            cum += Number(p.bucketCounts?.[i] ?? 0);
            out.push(`${name}_bucket${labels({ ...l, le: b === Infinity ? '+Inf' : String(b) })} ${cum}`);
          });
          out.push(`${name}_sum${labels(l)} ${p.sum ?? 0}`, `${name}_count${labels(l)} ${Number(p.count ?? 0)}`);
        }
      }
    }
  }
  return out.join('\n') + '\n';
}

export async function startOtlpPrometheus(): Promise<OtlpPrometheus> {
  let page = '';
  let waiters: (() => void)[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(page);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        page = otlpToPrometheusText(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Export);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        for (const w of waiters.splice(0)) w();
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`bad OTLP/JSON: ${String(err)}\n`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    otlpUrl: `http://127.0.0.1:${port}/v1/metrics`,
    target: `127.0.0.1:${port}`,
    nextExport: () => new Promise<void>((r) => waiters.push(r)),
    async stop() {
      waiters = [];
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
