// The status page as a Fastify plugin the gateway registers: GET / (the page), GET /status/api/state (its data),
// the BullMQ queues browsable at /queues (bull-board), and the queue-depth / worker-count metric sources.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RedisClient } from '../client/queues.ts';
import { registerQueueSource, registerWorkerSource } from '../telemetry/metrics.ts';
import { statusPage } from './page.ts';
import { collectStatus, queueSamples, redactStatus, workerSamples, type StatusDeps } from './state.ts';

export interface StatusOptions {
  /** Deployment key prefix (config `prefix`); not `prefix`, which Fastify takes as a route prefix. */
  keyPrefix: string;
  /** Configured model ids. */
  models: string[];
  /** A non-blocking Redis connection (the gateway's). */
  redis: RedisClient;
  /** A model's BullMQ queue (the gateway's producer queues, so no extra connections). */
  queue(model: string): Queue;
  /** How often the page polls, ms. @defaultValue 1000 */
  refreshMs?: number;
  /** Serve bull-board at this path; null turns it off. @defaultValue '/queues' */
  boardPath?: string | null;
  /** Whether a caller sees hosts, devices, budgets and problems in the status data. @defaultValue every caller */
  isAdmin?: (req: FastifyRequest) => boolean;
  /** Feed swapserve.queue.* and swapserve.workers from this process. @defaultValue true */
  metrics?: boolean;
}

export async function statusPlugin(app: FastifyInstance, opts: StatusOptions): Promise<void> {
  const deps: StatusDeps = { prefix: opts.keyPrefix, models: opts.models, redis: opts.redis, queue: opts.queue };
  const page = statusPage(opts.refreshMs ?? 1000);

  app.get('/', async (_req, reply) => {
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return page;
  });
  app.get('/status/api/state', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const snapshot = await collectStatus(deps);
    return opts.isAdmin && !opts.isAdmin(req) ? redactStatus(snapshot) : snapshot;
  });

  if (opts.metrics ?? true) {
    const offQueues = registerQueueSource(() => queueSamples(deps));
    const offWorkers = registerWorkerSource(() => workerSamples(deps));
    app.addHook('onClose', async () => {
      offQueues();
      offWorkers();
    });
  }

  const boardPath = opts.boardPath === undefined ? '/queues' : opts.boardPath;
  if (boardPath !== null) {
    const adapter = new FastifyAdapter();
    adapter.setBasePath(boardPath);
    createBullBoard({
      queues: opts.models.map((m) => new BullMQAdapter(opts.queue(m), { readOnlyMode: false, displayName: m })),
      // @bull-board/fastify pins its own @bull-board/api patch version; the adapter contract is the same.
      serverAdapter: adapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
      options: { uiConfig: { boardTitle: 'swapserve queues' } },
    });
    await app.register(adapter.registerPlugin(), { prefix: boardPath });
  }
}
