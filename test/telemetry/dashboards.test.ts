// The observability deployment files: Grafana provisioning parses and is consistent (datasource uids, linked
// both ways; dashboard queries name real metrics), the compose file is valid for docker-compose, the Prometheus
// config for promtool, the Redis config gives BullMQ what it needs — and every PromQL expression of the dashboards
// returns series from a real Prometheus fed each way after warm, swap and cold requests: scraping the real stack's
// /metrics, and over OTLP with the Collector's Prometheus names (`_seconds`, `job` / `instance`).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { parse as parseYaml } from 'yaml';
import { initTelemetry, shutdownTelemetry } from '../../services/telemetry/index.ts';
import * as S from '../../contracts/semconv.ts';
import { startPrometheus, type TestPrometheus } from '../helpers/prometheus.ts';
import { startOtlpPrometheus, type OtlpPrometheus } from '../helpers/otlp-prometheus.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startStack, twoModelConfig, type Stack } from '../spine/stack.ts';
import { needsData, needsTool } from '../helpers/requires.ts';

const INFRA = new URL('../../infra/', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(INFRA, p), 'utf8');

interface Target { datasource?: { uid?: string; type?: string }; expr?: string; query?: string; queryType?: string }
interface Panel { type: string; title: string; datasource?: { uid: string; type: string }; targets?: Target[]; panels?: Panel[] }
const dashboard = JSON.parse(read('grafana/dashboards/swapserve.json')) as { uid: string; panels: Panel[]; templating: { list: { name: string; datasource: { uid: string } }[] } };
const datasources = (parseYaml(read('grafana/provisioning/datasources/datasources.yaml')) as {
  datasources: { uid: string; type: string; url: string; jsonData: Record<string, any> }[];
}).datasources;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const promExprs = panels.flatMap((p) => (p.targets ?? []).filter((t) => t.expr).map((t) => ({ panel: p.title, expr: t.expr! })));
const traceQueries = panels.flatMap((p) => (p.targets ?? []).filter((t) => t.queryType === 'traceql').map((t) => t.query!));
/** Grafana's variables, as the dashboard would expand them with "All" selected. */
const expand = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$model', '.*');

/** Every metric name swapserve exposes, in its Prometheus forms on both paths. */
const KNOWN = new Set<string>();
for (const [name, { kind }] of Object.entries(S.METRICS)) {
  for (const suf of kind === 'histogram' ? ['_bucket', '_count', '_sum'] : ['']) for (const n of S.prometheusNames(name, suf)) KNOWN.add(n);
}

describe('Grafana provisioning', () => {
  it('has the Prometheus and Tempo datasources, linked both ways', () => {
    const prom = datasources.find((d) => d.type === 'prometheus');
    const tempo = datasources.find((d) => d.type === 'tempo');
    assert.ok(prom && tempo);
    assert.equal(prom.uid, 'prometheus');
    assert.equal(tempo.uid, 'tempo');
    assert.deepEqual(prom.jsonData.exemplarTraceIdDestinations.map((d: { datasourceUid: string }) => d.datasourceUid), [tempo.uid]);
    assert.equal(tempo.jsonData.tracesToMetrics.datasourceUid, prom.uid);
    assert.equal(tempo.jsonData.serviceMap.datasourceUid, prom.uid);
    // Hosts are compose service names.
    const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, unknown> };
    for (const d of [prom, tempo]) assert.ok(new URL(d.url).hostname in compose.services, `${d.url} is a compose service`);
  });

  it('every panel queries a provisioned datasource, and every PromQL names a swapserve metric', () => {
    const uids = new Set(datasources.map((d) => d.uid));
    assert.ok(panels.length >= 15);
    for (const p of panels) {
      assert.ok(p.datasource && uids.has(p.datasource.uid), `${p.title}: datasource ${p.datasource?.uid}`);
      assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, p.datasource.uid, `${p.title}: target datasource`);
    }
    for (const v of dashboard.templating.list) assert.ok(uids.has(v.datasource.uid));
    for (const { panel, expr } of promExprs) {
      const names = expr.match(/\b(gen_ai_[a-z_]+|swapserve_[a-z_]+)\b(?=\{|\[|\)|\s|\||"|$)/g) ?? [];
      const metrics = names.filter((n) => !/^(gen_ai_(request_model|response_model|operation_name|provider_name|token_type)|error_type|swapserve_(path|tier|move_kind|queue_state|worker_state|worker|cold_reason))$/.test(n));
      assert.ok(metrics.length > 0, `${panel}: names a metric`);
      for (const m of metrics) assert.ok(KNOWN.has(m), `${panel}: ${m} is exported by swapserve`);
    }
    // Trace tables use TraceQL on attributes from semconv.ts.
    assert.ok(traceQueries.some((q) => q.includes(`span.${S.ATTR_PATH} = "cold"`)));
    for (const q of traceQueries) for (const attr of q.match(/span\.([a-z_.]+)/g) ?? []) {
      assert.ok(Object.values(S).includes(attr.slice('span.'.length) as never), `${attr} is a swapserve attribute`);
    }
    // The dashboards' provider mounts the folder compose mounts.
    const provider = (parseYaml(read('grafana/provisioning/dashboards/dashboards.yaml')) as { providers: { options: { path: string } }[] }).providers[0];
    assert.match(read('docker-compose.yml'), new RegExp(`\\./grafana/dashboards:${provider.options.path}:ro`));
  });
});

describe('deployment files', () => {
  it('the committed dashboard is what infra/grafana/build-dashboards.ts writes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-dash-'));
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(INFRA, 'grafana/build-dashboards.ts'), join(dir, 'd.json')], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(dir, 'd.json'), 'utf8'), read('grafana/dashboards/swapserve.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('docker-compose parses the compose file, with the GPU reserved for workers only', { skip: needsTool('docker-compose') }, () => {
    const r = spawnSync('docker-compose', ['-f', join(INFRA, 'docker-compose.yml'), 'config'], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'docker-compose is installed (infra/ci-deps.sh)');
    assert.equal(r.status, 0, r.stderr);
    const cfg = parseYaml(r.stdout) as { services: Record<string, { deploy?: { resources?: { reservations?: { devices?: { capabilities: string[] }[] } } } }> };
    for (const s of ['redis', 'otel-collector', 'tempo', 'prometheus', 'grafana', 'gateway', 'scheduler', 'worker']) assert.ok(cfg.services[s], s);
    const gpu = Object.entries(cfg.services).filter(([, s]) => s.deploy?.resources?.reservations?.devices?.some((d) => d.capabilities.includes('gpu')));
    assert.deepEqual(gpu.map(([n]) => n), ['worker']);
  });

  it('promtool accepts the Prometheus config', { skip: needsTool('promtool') }, () => {
    const r = spawnSync('promtool', ['check', 'config', '--syntax-only', join(INFRA, 'prometheus/prometheus.yml')], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'promtool is installed (infra/ci-deps.sh)');
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('the Redis config runs and gives BullMQ noeviction and an append-only file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-redisconf-'));
    const srv = createServer().listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const child = spawn('redis-server', [join(INFRA, 'redis/redis.conf'), '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      const ready = await new Promise<boolean>((resolve) => {
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('Ready to accept connections')) resolve(true);
        });
        child.once('exit', () => resolve(false));
      });
      assert.ok(ready, out);
      const c = new Redis(port, '127.0.0.1');
      try {
        assert.deepEqual(await c.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
        assert.deepEqual(await c.config('GET', 'appendonly'), ['appendonly', 'yes']);
        assert.deepEqual(await c.config('GET', 'appendfsync'), ['appendfsync', 'everysec']);
      } finally {
        c.disconnect();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dashboard queries against a real Prometheus', { skip: needsTool('prometheus') || needsData() }, () => {
  let redis: TestRedis;
  let stack: Stack;
  /** Prometheus scraping swapserve's /metrics. */
  let prom: TestPrometheus;
  /** Prometheus fed over OTLP, with the Collector's names. */
  let promOtlp: TestPrometheus;
  let otlp: OtlpPrometheus;
  let client: OpenAI;
  const spans = new InMemorySpanExporter();
  before(async () => {
    otlp = await startOtlpPrometheus();
    initTelemetry({
      serviceName: 'swapserve-dashboards',
      spanExporter: spans,
      env: { ...process.env, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: otlp.otlpUrl, OTEL_METRIC_EXPORT_INTERVAL: '1000' },
    });
    process.env.SWAPSERVE_LINK_PEAK_GBPS = '55';
    redis = await startRedis();
    stack = await startStack(twoModelConfig(redis));
    client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    prom = await startPrometheus([new URL(stack.gateway.url).host]);
    promOtlp = await startPrometheus([otlp.target], { honorLabels: true });
  });
  after(async () => {
    await prom?.stop();
    await promOtlp?.stop();
    await otlp?.stop();
    await stack?.close();
    await redis?.stop();
    await shutdownTelemetry();
  });

  const complete = (model: string) => client.completions.create({ model, prompt: 'Once', max_tokens: 4 });

  /** Both Prometheus servers hold everything recorded so far (an OTLP export after it, then a scrape of each). */
  const settle = async () => {
    await otlp.nextExport();
    await Promise.all([prom.nextScrape(), promOtlp.nextScrape()]);
  };

  it('every PromQL expression returns series after warm, swap and cold requests, on both paths', async () => {
    await settle();
    // Round 1: cold a, warm a, cold b (evicts a), swap a, a failure. Round 2 after a scrape, so rates see increases.
    const tooLong = () => assert.rejects(client.completions.create({ model: 'story-a', prompt: 'Once upon a time '.repeat(600), max_tokens: 4 }), (e: { status?: number }) => e.status === 400);
    for (const m of ['story-a', 'story-a', 'story-b', 'story-a']) await complete(m);
    await tooLong(); // one that fails: a prompt longer than the model's context (a typed 400 from the worker)
    await settle();
    for (const m of ['story-a', 'story-b', 'story-a', 'story-a']) await complete(m);
    await tooLong();
    await settle();

    const tempo = datasources.find((d) => d.type === 'tempo')!;
    for (const [path, p] of [['direct /metrics', prom], ['OTLP', promOtlp]] as const) {
      const empty: string[] = [];
      for (const { panel, expr } of promExprs) {
        const series = await p.query(expand(expr));
        if (series.length === 0) empty.push(`${panel}: ${expr}`);
      }
      assert.deepEqual(empty, [], `${path}: queries without series`);
      // The same for the Tempo datasource's span -> metrics links, with a span's tags substituted.
      for (const q of tempo.jsonData.tracesToMetrics.queries as { query: string }[]) {
        const series = await p.query(q.query.replace('$__tags', 'gen_ai_request_model="story-a",swapserve_path="warm"'));
        assert.ok(series.length > 0, `${path}: ${q.query}`);
      }
    }
    // The OTLP side has the Collector's names (unit words, _total), its job label from service.name, and no
    // direct-path name: the dashboards matched it by those names, not by a name both paths share.
    for (const name of ['gen_ai_server_time_to_first_token_seconds_bucket', 'gen_ai_server_request_duration_seconds_count', 'gen_ai_client_token_usage_bucket', 'swapserve_move_bandwidth_gigabytes_per_second_bucket', 'swapserve_move_bytes_total', 'swapserve_request_errors_total']) {
      const series = await promOtlp.query(name);
      assert.ok(series.length > 0 && series.every((x) => x.metric.job === 'swapserve-dashboards' && x.metric.otel_scope_name === 'swapserve'), `OTLP: ${name}`);
    }
    assert.deepEqual(await promOtlp.query('gen_ai_server_time_to_first_token_bucket'), [], 'OTLP: no unsuffixed name');
    // Every GenAI series names its provider; a gateway failure's duration carries its error.type.
    for (const p of [prom, promOtlp]) {
      const genAi = await p.query('{__name__=~"gen_ai_.*_count"}');
      assert.ok(genAi.length > 0 && genAi.every((x) => x.metric.gen_ai_provider_name === 'swapserve'), JSON.stringify(genAi.map((x) => x.metric)).slice(0, 400));
      const failed = await p.query('sum by (error_type) ({__name__=~"gen_ai_server_request_duration(_seconds)?_count", error_type!=""})');
      assert.deepEqual(failed.map((x) => [x.metric.error_type, x.value[1]]), [['context_length_exceeded', '2']]);
      const tokens = await p.query('sum by (gen_ai_token_type) ({__name__="gen_ai_client_token_usage_count"})');
      assert.deepEqual(tokens.map((x) => x.metric.gen_ai_token_type).sort(), ['input', 'output']);
    }

    // The headline panel has a real TTFT for every path, ordered as the paths promise.
    const p50 = await prom.query(expand(promExprs.find((e) => e.expr.startsWith('histogram_quantile(0.5') && e.expr.includes('time_to_first_token'))!.expr));
    const byPath = Object.fromEntries(p50.map((s) => [s.metric.swapserve_path, Number(s.value[1])]));
    for (const path of ['warm', 'swap', 'cold']) assert.ok(path in byPath, `TTFT p50 has a ${path} series`);
    for (const path of ['warm', 'swap']) assert.ok(Number.isFinite(byPath[path]) && byPath[path] > 0, `${path} p50 = ${byPath[path]}`);
    // Prometheus scraped OpenMetrics with exemplars: TTFT buckets link to the requests' traces.
    const ex = await prom.exemplars('gen_ai_server_time_to_first_token_bucket');
    const traceIds = new Set(spans.getFinishedSpans().map((s) => s.spanContext().traceId));
    const linked = ex.flatMap((e) => e.exemplars.map((x) => x.labels.trace_id));
    assert.ok(linked.length >= 3, `exemplars: ${JSON.stringify(ex).slice(0, 300)}`);
    for (const id of linked) assert.ok(traceIds.has(id), `exemplar trace ${id} is a request's trace`);
    const errors = await prom.query('swapserve_request_errors_total');
    assert.deepEqual(errors.map((e) => [e.metric.gen_ai_request_model, e.metric.error_type, e.value[1]]), [['story-a', 'context_length_exceeded', '2']]);
    const variable = await prom.query('count by (gen_ai_request_model) (gen_ai_server_request_duration_count)');
    assert.deepEqual(variable.map((s) => s.metric.gen_ai_request_model).sort(), ['story-a', 'story-b'], 'the $model variable finds both models');
  });
});
