// The gateway process side: connections, listen, drain on close (stop accepting -> finish streams -> Redis).
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.ts';
import { Producer } from '../client/producer.ts';
import { connect, type RedisClient } from '../client/queues.ts';
import { BlockingPool } from '../client/stream.ts';
import { bullmqTelemetry } from '../telemetry/bullmq.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { buildApp } from './app.ts';
import { openOnNetwork } from './auth.ts';

export interface Gateway {
  app: FastifyInstance;
  /** The address it listens on, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Readiness fails from now on (new generations get 503 draining); close() drains. */
  beginDrain(): void;
  /** Stops accepting, lets in-flight requests finish (or cuts them off: forceClose), then Redis. Idempotent. */
  close(): Promise<void>;
  /** Ends every open connection now, in-flight streams included (a drain past its timeout). */
  forceClose(): void;
}

export interface GatewayOptions {
  /** The process logger. @defaultValue a pino logger for service "gateway" at config `log.level` */
  log?: Logger;
  /** /readyz fails while no scheduler holds the leader lease (`swapserve up` runs one). @defaultValue false */
  requireScheduler?: boolean;
}

export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  const log = opts.log ?? createLogger({ service: 'gateway', level: config.log.level });
  if (openOnNetwork(config)) {
    log.warn({ host: config.gateway.host }, 'no API keys configured and the gateway binds a non-loopback address: anyone who can reach it can use it, and administer /queues');
  }
  const url = config.redisUrl ?? 'redis://127.0.0.1:6379';
  const redis: RedisClient = connect(url, { name: 'swapserve-gateway' });
  const producer = new Producer(redis, config.prefix, bullmqTelemetry());
  const pool = new BlockingPool(url);
  let draining = false;
  const app = buildApp({ config, redis, producer, pool, draining: () => draining, requireScheduler: opts.requireScheduler ?? false }, { log });
  try {
    await app.listen({ host: config.gateway.host, port: config.gateway.port });
  } catch (e) {
    await Promise.allSettled([pool.close(), producer.close()]);
    redis.disconnect();
    throw e;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.gateway.port;
  let closing: Promise<void> | null = null;
  return {
    app,
    url: `http://${config.gateway.host}:${port}`,
    beginDrain: () => { draining = true; },
    forceClose: () => app.server.closeAllConnections(),
    close: () => {
      closing ??= (async () => {
        draining = true;
        await Promise.allSettled([app.close()]);
        await Promise.allSettled([pool.close(), producer.close()]);
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}
