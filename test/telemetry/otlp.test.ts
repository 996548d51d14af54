// OTLP over HTTP from the standard OTEL_* variables: spans and metrics reach a real HTTP receiver (OTLP/JSON),
// and a collector that goes away fails no call and does not hang shutdown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { initTelemetry, recordRequest, requestSpan, shutdownTelemetry, telemetryHandle } from '../../services/telemetry/index.ts';

interface Received { path: string; contentType: string; body: Buffer }
const received: Received[] = [];
const waiters: { path: string; resolve: (r: Received) => void }[] = [];
let server: Server;

function receive(req: IncomingMessage, body: Buffer): void {
  const r = { path: req.url ?? '', contentType: String(req.headers['content-type']), body };
  received.push(r);
  for (const w of waiters.splice(0)) {
    if (w.path === r.path) w.resolve(r);
    else waiters.push(w);
  }
}
const next = (path: string) => {
  const have = received.find((r) => r.path === path);
  return have ? Promise.resolve(have) : new Promise<Received>((resolve) => waiters.push({ path, resolve }));
};

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receive(req, Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  initTelemetry({
    serviceName: 'swapserve-otlp-test',
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_METRIC_EXPORT_INTERVAL: '200' },
  });
});
after(async () => {
  await shutdownTelemetry();
  server.closeAllConnections();
  server.close();
});

describe('OTLP over HTTP', () => {
  it('is on with an endpoint, and exports spans and metrics to <endpoint>/v1/traces and /v1/metrics', async () => {
    const h = telemetryHandle()!;
    assert.equal(h.tracing, true);
    assert.equal(h.otlpMetrics, true);
    const rs = requestSpan({ operation: 'chat', model: 'otlp-model' });
    rs.setPath('swap');
    rs.firstChunk();
    rs.end({ outcome: 'completed', inputTokens: 3, outputTokens: 5 });
    recordRequest({ model: 'otlp-model', path: 'swap', ttftSeconds: 0.3, durationSeconds: 0.9, outputTokens: 5 });
    await h.tracerProvider!.forceFlush();
    const traces = await next('/v1/traces');
    assert.equal(traces.contentType, 'application/json');
    for (const s of ['chat otlp-model', 'swapserve.path', 'swap', 'swapserve-otlp-test']) assert.ok(traces.body.includes(s), s);
    const metrics = await next('/v1/metrics');
    assert.ok(metrics.body.includes('gen_ai.server.time_to_first_token'));
  });

  it('fails no call and still shuts down when the collector is gone', async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    const rs = requestSpan({ operation: 'text_completion', model: 'otlp-model' });
    rs.setPath('cold', 'worker_start');
    rs.end({ outcome: 'completed' });
    recordRequest({ model: 'otlp-model', path: 'cold', ttftSeconds: 12, durationSeconds: 13, outputTokens: 2 });
    await shutdownTelemetry(); // exports to a closed port: logged, dropped, resolved
    assert.equal(telemetryHandle(), null);
  });
});
