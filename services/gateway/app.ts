// The gateway as a Fastify app (no process concerns: see server.ts): OpenAI routes, health, one error mapper.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { nowMs } from '../../contracts/clock.ts';
import { RequestError } from '../../contracts/errors.ts';
import type { GatewayContext } from './context.ts';
import { decorateCaller } from './caller.ts';
import { connectionCapGuard, edgeOptions, installServerEdges, toSwapserveError } from './edges.ts';
import { hostGuard } from './host-guard.ts';
import { createLogger, type Logger } from '../config/log.ts';
import { auth, isAdmin } from './auth.ts';
import { logging } from './logging.ts';
import { generateRoutes } from './routes/generate.ts';
import { healthRoutes } from './routes/health.ts';
import { modelRoutes } from './routes/models.ts';
import { httpTelemetry } from '../telemetry/http.ts';
import { statusPlugin } from '../status/plugin.ts';

const arrivals = new WeakMap<FastifyRequest, number>();

export { toSwapserveError } from './edges.ts';

/** @param opts.log the process logger; none gives a silent app (tests that drive inject()). */
export function buildApp(gw: Omit<GatewayContext, 'arrival'>, opts: { log?: Logger } = {}): FastifyInstance {
  // 'idle': close() ends idle keep-alive sockets at once and lets in-flight requests (streams) finish.
  const app = Fastify({
    loggerInstance: (opts.log ?? createLogger({ service: 'gateway', level: 'silent' })) as FastifyBaseLogger,
    // One access line per request from logging.ts instead of Fastify's two.
    disableRequestLogging: true,
    bodyLimit: gw.config.gateway.bodyLimitBytes, forceCloseConnections: 'idle', ...edgeOptions(gw.config.gateway),
  });
  // Timeouts, connection cap, OpenAI bodies for Node's own answers (edges.ts); Host allow-list (host-guard.ts).
  installServerEdges(app.server, gw.config.gateway, (line) => app.log.warn(line));
  connectionCapGuard(app, gw.config.gateway);
  hostGuard(app, gw.config.gateway);
  if (!app.hasRequestDecorator('apiKeyId')) decorateCaller(app);
  const ctx: GatewayContext = { ...gw, arrival: (req) => arrivals.get(req) ?? nowMs() };
  app.addHook('onRequest', (req, _reply, done) => {
    arrivals.set(req, nowMs());
    done();
  });
  app.setErrorHandler((err, req, reply) => {
    const e = toSwapserveError(err);
    if (e.code === 'body_too_large') (e as { message: string }).message = `Request body is larger than ${gw.config.gateway.bodyLimitBytes} bytes`;
    if (e.status >= 500 && e.code === 'internal_error') req.log.error({ err }, 'internal error');
    if (e.retryAfterS !== undefined) reply.header('retry-after', String(e.retryAfterS));
    if (reply.raw.headersSent) {
      reply.raw.end();
      return;
    }
    reply.code(e.status).send(e.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new RequestError('not_found', { detail: `${req.method} ${req.url.split('?')[0]}` });
    reply.code(e.status).send(e.toBody());
  });
  // API keys, model allowlists, rate limits, the admin boundary and CORS, before any route (auth.ts).
  app.register(auth, { config: gw.config, redis: gw.redis });
  // One access-log line per request (logging.ts).
  app.register(logging);
  // HTTP server spans for every route and GET /metrics (services/telemetry).
  app.register(httpTelemetry);
  // Status page at /, its data at /status/api/state, BullMQ queues at /queues (services/status).
  app.register(statusPlugin, { keyPrefix: gw.config.prefix, models: gw.config.models.map((m) => m.id), redis: gw.redis, queue: (m) => gw.producer.queue(m), isAdmin: (req) => isAdmin(req, gw.config) });
  app.register(async (scope) => {
    await healthRoutes(scope, ctx);
    await modelRoutes(scope, ctx);
    await generateRoutes(scope, ctx);
  });
  return app;
}
