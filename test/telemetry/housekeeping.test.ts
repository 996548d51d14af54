// BullMQ's housekeeping (stalled-job checks, delayed-job promotion and marker polling, lock renewal, close) never
// reaches the exporter as root spans: a request's trace is the only root exported around a real Queue and Worker
// on real Redis. bullmq-otel's metrics reach this process's /metrics.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { bullmqTelemetry, initTelemetry, metricsText, requestSpan, shutdownTelemetry } from '../../services/telemetry/index.ts';
import { BULLMQ_HOUSEKEEPING_OPERATIONS } from '../../services/telemetry/sdk.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { WaitingSpanExporter } from '../helpers/span-exporter.ts';

describe('BullMQ housekeeping spans', () => {
  const exporter = new WaitingSpanExporter();
  let redis: TestRedis;
  let conn: Redis;
  let workerConn: Redis;
  let prefix: string;
  const queueName = 'hk-model';

  before(async () => {
    initTelemetry({ serviceName: 'swapserve-housekeeping', spanExporter: exporter });
    redis = await startRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    workerConn = new Redis(redis.url, { maxRetriesPerRequest: null });
    prefix = redis.prefix();
  });
  after(async () => {
    conn.disconnect();
    workerConn.disconnect();
    await redis.stop();
    await shutdownTelemetry();
  });

  it('a request trace is the only root exported, through stalled checks, a delayed job, lock renewal and close', async () => {
    const queue = new Queue(queueName, { connection: conn, prefix, telemetry: bullmqTelemetry() });
    const processed: string[] = [];
    let release!: () => void;
    const allDone = new Promise<void>((r) => (release = r));
    const worker = new Worker(
      queueName,
      async (job: Job<{ id: string }>) => {
        // Long enough for a lock renewal (lockRenewTime = lockDuration / 2) while the job runs: wait on Redis
        // until the worker's stalled-check key has been written (the stalled checker ran during the job).
        if (job.data.id === 'slow') while ((await conn.exists(`${prefix}:${queueName}:stalled-check`)) === 0) await conn.ping();
        processed.push(job.data.id);
        if (processed.length === 2) release();
      },
      { connection: workerConn, prefix, telemetry: bullmqTelemetry(), stalledInterval: 200, lockDuration: 400, drainDelay: 1 },
    );
    await worker.waitUntilReady();

    const rs = requestSpan({ operation: 'chat', model: queueName });
    await rs.run(() => queue.add('generate', { id: 'slow' }));
    // A delayed job: promoted by the worker's delayed/marker handling, outside any request.
    await queue.add('generate', { id: 'delayed' }, { delay: 50 });
    await allDone;
    rs.end({ outcome: 'completed' });
    await worker.close();
    await queue.close();

    const spans = exporter.getFinishedSpans();
    const ids = new Set(spans.map((s) => s.spanContext().spanId));
    const roots = spans.filter((s) => !s.parentSpanContext || !ids.has(s.parentSpanContext.spanId) && !s.parentSpanContext.isRemote);
    const housekeeping = new RegExp(`^(${BULLMQ_HOUSEKEEPING_OPERATIONS.join('|')})( |$)`);
    assert.deepEqual(spans.filter((s) => housekeeping.test(s.name)).map((s) => s.name), [], 'no housekeeping span exported');
    // Roots: the request's span, and the delayed job's own producer span (a job enqueued outside any request).
    assert.deepEqual(roots.map((s) => s.name).sort(), ['add hk-model.generate', `chat ${queueName}`]);
    const requestTrace = rs.span.spanContext().traceId;
    const slow = spans.filter((s) => s.spanContext().traceId === requestTrace);
    assert.ok(slow.some((s) => s.name === `process ${queueName}`), 'the job processed under the request trace');
    assert.deepEqual(processed.sort(), ['delayed', 'slow']);
  });

  it("bullmq-otel's metrics are on /metrics", async () => {
    const text = await metricsText();
    assert.match(text, /^bullmq_jobs_completed(_total)?\{[^}]*\} 2$/m, text.slice(0, 2000));
  });
});
