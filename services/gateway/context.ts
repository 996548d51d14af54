// What the gateway's routes share: config, Redis, the producer, the stream reader pool, draining and arrival times.
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config/config.ts';
import type { Producer } from '../client/producer.ts';
import type { RedisClient } from '../client/queues.ts';
import type { BlockingPool } from '../client/stream.ts';

export interface GatewayContext {
  config: Config;
  redis: RedisClient;
  producer: Producer;
  pool: BlockingPool;
  draining(): boolean;
  /** Readiness needs a scheduler holding the leader lease. @defaultValue false */
  requireScheduler?: boolean;
  /** Epoch ms at which the request was received (TTFT starts here). */
  arrival(req: FastifyRequest): number;
}
