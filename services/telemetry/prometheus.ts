// SDK side: this process's /metrics page from the Prometheus reader (0.0.4 text, or OpenMetrics with exemplars),
// and the bare /metrics HTTP server for processes without Fastify. Loaded by sdk.ts, never by instrumentation.
import { createServer, type Server } from 'node:http';
import { PrometheusSerializer, type PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { metricsExposition, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, wantsOpenMetrics, type MetricsPage } from './handle.ts';
import { exemplars } from './metrics.ts';
import { toOpenMetrics } from './openmetrics.ts';

const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);

/** Collects `prometheus` once and writes it as the scraper asks: OpenMetrics when `accept` names it. */
export async function exposeMetrics(prometheus: PrometheusExporter, accept?: string): Promise<MetricsPage> {
  const { resourceMetrics, errors } = await prometheus.collect();
  for (const e of errors) process.stderr.write(`swapserve telemetry: metric collection: ${String(e)}\n`);
  return wantsOpenMetrics(accept)
    ? { body: toOpenMetrics(resourceMetrics, exemplars), contentType: OPENMETRICS_CONTENT_TYPE }
    : { body: serializer.serialize(resourceMetrics), contentType: PROMETHEUS_CONTENT_TYPE };
}

/**
 * A bare HTTP server with only GET /metrics, for processes without Fastify (workers, scheduler).
 * Resolves once listening; `port: 0` picks a free port (read `address()`).
 */
export async function startMetricsServer(opts: { port: number; host?: string }): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metricsExposition(req.headers.accept).then(
      ({ body, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err) => {
        process.stderr.write(`swapserve telemetry: /metrics: ${String(err)}\n`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
