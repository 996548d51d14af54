// GET /healthz and /livez (the process is alive) and GET /readyz (Redis answers and the gateway is not draining).
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../../../contracts/errors.ts';
import type { GatewayContext } from '../context.ts';
import { clusterKeys } from '../../../contracts/cluster.ts';

export async function healthRoutes(app: FastifyInstance, gw: GatewayContext): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async () => {
    if (gw.draining()) throw new RequestError('draining', { retryAfterS: 5 });
    try {
      await gw.redis.ping();
    } catch {
      throw new RequestError('not_ready', { detail: 'Redis does not answer', retryAfterS: 1 });
    }
    // A lone scheduler that died (nothing places models) is a readiness failure, not a silent 300 s wait.
    if (gw.requireScheduler && (await gw.redis.exists(clusterKeys(gw.config.prefix).leader()).catch(() => 0)) !== 1) {
      throw new RequestError('not_ready', { detail: 'no scheduler holds the leader lease', retryAfterS: 1 });
    }
    return { status: 'ready' };
  });
}
