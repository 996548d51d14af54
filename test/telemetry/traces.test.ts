// Telemetry library: one connected trace per request across an HTTP server span, the inference span, BullMQ's
// producer and consumer spans (real Redis, real BullMQ) and the worker's phase spans, with the serving path on
// every span — for the warm, swap and cold paths. The spine's own end-to-end trace test is in e2e-trace.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Queue, Worker, type Job } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import {
  bullmqTelemetry,
  httpTelemetry,
  initTelemetry,
  jobTrace,
  metricsText,
  readTelemetryEnv,
  requestContext,
  requestSpan,
  shutdownTelemetry,
  SPAN,
  EVENT,
} from '../../services/telemetry/index.ts';
import * as S from '../../contracts/semconv.ts';
import type { ColdReason, ServePath } from '../../contracts/vocab.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { WaitingSpanExporter } from '../helpers/span-exporter.ts';

describe('readTelemetryEnv', () => {
  it('turns tracing off without an endpoint and on with one', () => {
    assert.equal(readTelemetryEnv({}).otlpTraces, false);
    assert.equal(readTelemetryEnv({}).otlpMetrics, false);
    const on = readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });
    assert.equal(on.otlpTraces, true);
    assert.equal(on.otlpMetrics, true);
    const tracesOnly = readTelemetryEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' });
    assert.deepEqual([tracesOnly.otlpTraces, tracesOnly.otlpMetrics], [true, false]);
  });
  it('honours OTEL_SDK_DISABLED and OTEL_*_EXPORTER=none', () => {
    const ep = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    assert.equal(readTelemetryEnv({ ...ep, OTEL_SDK_DISABLED: 'true' }).otlpTraces, false);
    const none = readTelemetryEnv({ ...ep, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'prometheus' });
    assert.deepEqual([none.otlpTraces, none.otlpMetrics], [false, false]);
  });
  it('reads the standard sampler settings', () => {
    assert.deepEqual(readTelemetryEnv({}).sampler, { parentBased: true, root: 'always_on', ratio: 1 });
    assert.deepEqual(readTelemetryEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }).sampler, { parentBased: true, root: 'traceidratio', ratio: 0.1 });
    assert.deepEqual(readTelemetryEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).sampler, { parentBased: false, root: 'always_off', ratio: 1 });
    assert.match(readTelemetryEnv({ OTEL_TRACES_SAMPLER: 'sometimes' }).problems.join(), /OTEL_TRACES_SAMPLER/);
  });
  it('reports an invalid endpoint instead of throwing, and stays off', () => {
    const bad = readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' });
    assert.equal(bad.otlpTraces, false);
    assert.match(bad.problems.join(), /OTEL_EXPORTER_OTLP_ENDPOINT/);
    // One bad variable does not take the others down.
    const mixed = readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_METRIC_EXPORT_INTERVAL: 'soon' });
    assert.deepEqual([mixed.otlpTraces, mixed.otlpMetrics, mixed.metricIntervalMs], [true, true, undefined]);
    assert.match(mixed.problems.join(), /OTEL_METRIC_EXPORT_INTERVAL/);
  });
});

describe('one trace per request through HTTP, BullMQ and the worker', () => {
  const exporter = new WaitingSpanExporter();
  let redis: TestRedis;
  let conn: Redis;
  let workerConn: Redis;
  let queue: Queue;
  let worker: Worker;
  const app = Fastify();
  const queueName = 'm.stories260K';
  /** What the fake placement decides per request (the real one is the scheduler's). */
  const plan = new Map<string, { path: ServePath; coldReason?: ColdReason; byScheduler?: boolean }>();
  const done = new Map<string, (r: { path: ServePath; coldReason?: ColdReason; tokens: number }) => void>();

  before(async () => {
    initTelemetry({ serviceName: 'swapserve-test', spanExporter: exporter });
    redis = await startRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    const prefix = redis.prefix();
    workerConn = new Redis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue(queueName, { connection: conn, prefix, telemetry: bullmqTelemetry() });
    worker = new Worker(
      queueName,
      async (job: Job<{ id: string }>) => {
        // What the worker does, phase by phase, through the telemetry API.
        const jt = jobTrace({ operation: 'chat', model: 'stories260K', enqueuedMs: job.timestamp, jobId: job.id, worker: 'w0', gpu: 0 });
        const p = plan.get(job.data.id)!;
        jt.setPath(p.path, p.coldReason);
        if (p.byScheduler) {
          // The scheduler swapped the model in while the job waited: recorded after the fact.
          jt.waitedFor({ load: null, swap: { startMs: job.timestamp + 1, endMs: job.timestamp + 3 } }, 2_000_000);
        } else if (p.path === 'cold') await jt.move('load', 'stories260K', async () => 1_056_540);
        if (p.path !== 'warm' && !p.byScheduler) {
          await jt.phase(SPAN.evictWait, { [S.ATTR_EVICTED_MODEL]: 'other' }, async () => undefined);
          await jt.move('swap_in', 'stories260K', async () => 1_056_540);
        }
        await jt.phase(SPAN.prefill, {}, async () => jt.firstToken());
        await jt.phase(SPAN.decode, {}, async () => undefined);
        jt.end({ outcome: 'completed', inputTokens: 5, outputTokens: 8 });
        done.get(job.data.id)!({ ...p, tokens: 8 });
      },
      { connection: workerConn, prefix, telemetry: bullmqTelemetry() },
    );
    await worker.waitUntilReady();
    await app.register(httpTelemetry);
    app.post<{ Body: { id: string } }>('/v1/chat/completions', async (req) => {
      const rs = requestSpan({ operation: 'chat', model: 'stories260K', maxTokens: 8 }, requestContext(req));
      const result = new Promise<{ path: ServePath; coldReason?: ColdReason; tokens: number }>((r) => done.set(req.body.id, r));
      await rs.run(() => queue.add('generate', { id: req.body.id }));
      const r = await result;
      rs.setPath(r.path, r.coldReason);
      rs.firstChunk();
      rs.end({ outcome: 'completed', inputTokens: 5, outputTokens: r.tokens });
      return { ok: true };
    });
  });

  after(async () => {
    await app.close();
    await worker.close();
    await queue.close();
    conn.disconnect();
    workerConn.disconnect();
    await redis.stop();
    await shutdownTelemetry();
  });

  const cases: { id: string; path: ServePath; coldReason?: ColdReason; byScheduler?: boolean; phases: string[] }[] = [
    { id: 'warm-1', path: 'warm', phases: [SPAN.queueWait, SPAN.prefill, SPAN.decode] },
    { id: 'swap-1', path: 'swap', phases: [SPAN.queueWait, SPAN.evictWait, SPAN.swapIn, SPAN.prefill, SPAN.decode] },
    {
      id: 'cold-1',
      path: 'cold',
      coldReason: 'disk_load',
      phases: [SPAN.queueWait, SPAN.load, SPAN.evictWait, SPAN.swapIn, SPAN.prefill, SPAN.decode],
    },
    { id: 'swap-2', path: 'swap', byScheduler: true, phases: [SPAN.queueWait, SPAN.swapIn, SPAN.prefill, SPAN.decode] },
  ];
  for (const c of cases) {
    it(`${c.path}: one connected trace, path on every span`, async () => {
      plan.set(c.id, { path: c.path, coldReason: c.coldReason, byScheduler: c.byScheduler });
      exporter.reset();
      const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { id: c.id } });
      assert.equal(res.statusCode, 200);
      const http = await exporter.waitFor((s) => s.kind === SpanKind.SERVER);
      const traceId = http.spanContext().traceId;
      // The consumer span ends after the processor returns, which may be after the HTTP reply.
      await exporter.waitFor((s) => s.kind === SpanKind.CONSUMER && s.spanContext().traceId === traceId);
      const spans = exporter.getFinishedSpans().filter((s) => !s.name.startsWith('getNextJob'));
      const trace = spans.filter((s) => s.spanContext().traceId === traceId);
      const names = trace.map((s) => s.name);
      for (const n of ['POST /v1/chat/completions', 'chat stories260K', `add ${queueName}.generate`, `process ${queueName}`, ...c.phases]) {
        assert.ok(names.includes(n), `span ${n} in ${JSON.stringify(names)}`);
      }
      assertConnected(trace);
      for (const s of trace) {
        assert.equal(s.attributes[S.ATTR_PATH], c.path, `${s.name} carries swapserve.path`);
        assert.equal(s.attributes[S.ATTR_COLD_REASON], c.coldReason, `${s.name} cold reason`);
      }
      const chat = trace.find((s) => s.name === 'chat stories260K')!;
      assert.equal(chat.attributes[S.ATTR_GEN_AI_OPERATION_NAME], 'chat');
      assert.equal(chat.attributes[S.ATTR_GEN_AI_REQUEST_MODEL], 'stories260K');
      assert.equal(chat.attributes[S.ATTR_GEN_AI_USAGE_INPUT_TOKENS], 5);
      assert.equal(chat.attributes[S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS], 8);
      assert.equal(typeof chat.attributes[S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], 'number');
      assert.ok(chat.events.some((e) => e.name === EVENT.firstToken));
      const prefill = trace.find((s) => s.name === SPAN.prefill)!;
      assert.ok(prefill.events.some((e) => e.name === EVENT.firstToken), 'first-token event on prefill');
      const producer = trace.find((s) => s.kind === SpanKind.PRODUCER)!;
      const consumer = trace.find((s) => s.kind === SpanKind.CONSUMER)!;
      assert.equal(producer.parentSpanContext?.spanId, chat.spanContext().spanId, 'producer under the chat span');
      assert.equal(consumer.parentSpanContext?.spanId, producer.spanContext().spanId, 'consumer under the producer');
      if (c.path !== 'warm') {
        const swap = trace.find((s) => s.name === SPAN.swapIn)!;
        assert.equal(swap.attributes[S.ATTR_MOVE_BYTES], c.byScheduler ? 2_000_000 : 1_056_540);
        assert.ok((swap.attributes[S.ATTR_MOVE_GBPS] as number) > 0);
        assert.equal(swap.attributes[S.ATTR_MOVE_BY_OTHER], c.byScheduler ? true : undefined);
        if (c.byScheduler) assert.equal(swap.attributes[S.ATTR_MOVE_GBPS], 1, '2 MB in 2 ms');
      }
    });
  }

  it('records the GenAI histograms per path with the cold-start buckets', async () => {
    const text = await metricsText();
    for (const [path, n] of [['warm', 1], ['swap', 2], ['cold', 1]]) {
      assert.match(text, new RegExp(`gen_ai_server_time_to_first_token_count\\{[^}]*swapserve_path="${path}"[^}]*\\} ${n}`));
      assert.match(text, new RegExp(`gen_ai_server_request_duration_count\\{[^}]*swapserve_path="${path}"`));
      assert.match(text, new RegExp(`gen_ai_server_time_per_output_token_count\\{[^}]*swapserve_path="${path}"`));
    }
    assert.match(text, /gen_ai_server_time_to_first_token_bucket\{[^}]*le="640"/);
    assert.match(text, /swapserve_move_bytes_total\{swapserve_move_kind="swap_in"\} 2113080/);
    assert.match(text, /swapserve_move_bytes_total\{swapserve_move_kind="load"\} 1056540/);
  });
});

/** Every span's parent is in the trace, except the one root. */
function assertConnected(trace: ReadableSpan[]): void {
  const ids = new Set(trace.map((s) => s.spanContext().spanId));
  const roots = trace.filter((s) => !s.parentSpanContext || !ids.has(s.parentSpanContext.spanId));
  assert.deepEqual(roots.map((s) => s.name), ['POST /v1/chat/completions'], 'one root: the HTTP server span');
}
