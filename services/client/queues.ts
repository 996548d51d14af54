// Redis connections and BullMQ queue options (the names of queues and keys are in contracts/queues.ts).
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import type { QueueOptions, Telemetry } from 'bullmq';
import { DEFAULT_PREFIX } from '../../contracts/queues.ts';
import { redisSecurity } from './redis-security.ts';

export type RedisClient = Redis | Cluster;

/**
 * Opens a Redis connection. `redis://` and `rediss://` (TLS) give a single node; `redis-cluster://h1:p1,h2:p2`
 * (or `rediss-cluster://`) a Cluster. Password, ACL user and TLS files: the URL, else env (redis-security.ts).
 * @param blocking true for connections used by BullMQ workers or XREAD BLOCK (no retry limit per command).
 */
export function connect(url: string, opts: { blocking?: boolean; name?: string } = {}): RedisClient {
  const security = redisSecurity(url);
  const base: RedisOptions = {
    maxRetriesPerRequest: opts.blocking ? null : 3,
    enableReadyCheck: true,
    lazyConnect: false,
    ...(opts.name ? { connectionName: opts.name } : {}),
    ...security,
  };
  const cluster = /^rediss?-cluster:\/\/(?:[^@/]*@)?(.*)$/i.exec(url);
  if (cluster) {
    const nodes = cluster[1].split(',').map((hp) => {
      const [host, port] = hp.split(':');
      return { host, port: Number(port || 6379) };
    });
    return quiet(new Cluster(nodes, { redisOptions: base, enableReadyCheck: true, ...(security.tls ? { dnsLookup: (a, cb) => cb(null, a) } : {}) }));
  }
  return quiet(new Redis(url, base));
}

/**
 * ioredis reconnects by itself and fails the commands issued meanwhile (their callers handle that); without an
 * 'error' listener it would also print every failed reconnect attempt as an "Unhandled error event".
 */
function quiet<T extends RedisClient>(c: T): T {
  c.on('error', () => {});
  return c;
}

/**
 * BullMQ options for a model queue's producer side. `telemetry`: producer spans that carry the request's trace to
 * the worker (the caller's telemetry/bullmq.ts `bullmqTelemetry()`; undefined while tracing is off).
 */
export function queueOptions(connection: RedisClient, prefix: string = DEFAULT_PREFIX, telemetry?: Telemetry): QueueOptions {
  return {
    connection,
    prefix,
    telemetry,
    defaultJobOptions: {
      // Finished jobs are not kept: the outcome travels on the request's stream.
      removeOnComplete: true,
      removeOnFail: { age: 3600, count: 1000 },
      attempts: 1,
    },
  };
}
