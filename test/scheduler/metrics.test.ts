// Scheduler metrics over a real Redis: the leader records each policy decision's latency by event type and counts
// the actions it applied (a placement's commands by kind); a worker that cannot be started counts as a failure.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Queue } from 'bullmq';
import { connect, queueOptions, type RedisClient } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import type { WorkerProvider } from '../../services/scheduler/provider.ts';
import { Scheduler } from '../../services/scheduler/scheduler.ts';
import { initTelemetry, metricsText, shutdownTelemetry } from '../../services/telemetry/index.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { model } from '../helpers/scheduler-fixtures.ts';
import { SimWorker } from './sim-worker.ts';

let redis: TestRedis;
let conn: RedisClient;
before(async () => {
  initTelemetry({ serviceName: 'swapserve-test-scheduler' });
  redis = await startRedis();
  conn = connect(redis.url);
});
after(async () => {
  await conn?.quit();
  await redis?.stop();
  await shutdownTelemetry();
});

/** A provider whose starts always fail (no worker binary here), recording the attempts. */
class FailingProvider implements WorkerProvider {
  attempts = 0;
  async start(): Promise<void> {
    this.attempts++;
    throw new Error('no capacity');
  }
  async stop(): Promise<void> {}
  running(): string[] {
    return [];
  }
  async close(): Promise<void> {}
}

describe('scheduler metrics', () => {
  it('counts decisions by event and actions by type and command kind, and failed worker starts', { timeout: 30_000 }, async () => {
    const prefix = redis.prefix();
    let lead: () => void = () => undefined;
    const leading = new Promise<void>((r) => (lead = r));
    const provider = new FailingProvider();
    const s = new Scheduler({
      redisUrl: redis.url, prefix, id: 'metrics', models: [model('A', { bytes: 1000 }), model('B', { bytes: 1000 })], provider,
      policy: { maxWorkers: 2 }, leaseMs: 1000, tickMs: 100, pollMs: 100,
      log: (m) => { if (m.includes('leader, epoch')) lead(); },
    });
    const worker = new SimWorker('sim', redis.url, prefix, { A: 1000 });
    const qa = new Queue(queueName('A'), queueOptions(conn, prefix));
    const qb = new Queue(queueName('B'), queueOptions(conn, prefix));
    try {
      await s.start();
      await leading;
      await worker.start();
      const placed = worker.next((c) => c.kind === 'consume');
      await qa.add('generate', {}, { jobId: 'r1' });
      await placed;
      // B fits nowhere (the worker serves A only): the scheduler starts a worker for it, which fails.
      await qb.add('generate', {}, { jobId: 'r2' });
      for (let i = 0; i < 100 && provider.attempts === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(provider.attempts > 0, 'the scheduler tried to start a worker for B');
      const text = await metricsText();
      assert.match(text, /swapserve_scheduler_decision_duration_count\{swapserve_scheduler_event="worker-state"\} [1-9]/);
      assert.match(text, /swapserve_scheduler_decision_duration_count\{swapserve_scheduler_event="queue"\} [1-9]/);
      assert.match(text, /swapserve_scheduler_actions_total\{swapserve_scheduler_action="send",swapserve_command_kind="consume"\} [1-9]/);
      assert.match(text, /swapserve_scheduler_actions_total\{swapserve_scheduler_action="start-worker"\} [1-9]/);
      assert.match(text, /swapserve_scheduler_action_failures_total\{swapserve_scheduler_action="start-worker"\} [1-9]/);
    } finally {
      await qa.close();
      await qb.close();
      await worker.stop();
      await s.close();
    }
  });
});
