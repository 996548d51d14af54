// The gateway's access log: one JSON line per request when its socket side ends (streams included, which Fastify's
// own request logging misses once a reply is hijacked): request id, key, model, path, status, TTFT and duration.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { nowMs } from '../../contracts/clock.ts';

/** TTFT (ms) from the Server-Timing header a completion carries (`ttft;dur=12.34`), or null. */
export function ttftFromServerTiming(header: unknown): number | null {
  const m = typeof header === 'string' ? /(?:^|,\s*)ttft;dur=([0-9.]+)/.exec(header) : null;
  return m ? Number(m[1]) : null;
}

const modelOf = (req: FastifyRequest): string | undefined => {
  const m = (req.body as { model?: unknown } | null | undefined)?.model;
  return typeof m === 'string' ? m.slice(0, 128) : undefined;
};

async function accessLog(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (req, reply) => {
    const start = nowMs();
    // 'close' fires for every response, hijacked SSE streams and clients that went away included.
    reply.raw.once('close', () => {
      const status = reply.raw.headersSent ? reply.raw.statusCode : 499;
      const line = {
        reqId: req.id,
        requestId: reply.getHeader('x-request-id') ?? undefined,
        apiKeyId: req.apiKeyId ?? undefined,
        method: req.method,
        path: req.url.split('?')[0],
        model: modelOf(req),
        status,
        ttftMs: ttftFromServerTiming(reply.getHeader('server-timing')) ?? undefined,
        durationMs: Math.round((nowMs() - start) * 100) / 100,
        completed: reply.raw.writableFinished,
      };
      // Probes and scrapes every few seconds would drown the rest: they log at debug.
      const quiet = line.path === '/healthz' || line.path === '/readyz' || line.path === '/livez' || line.path === '/metrics';
      if (quiet && status < 400) req.log.debug(line, 'request');
      else if (status >= 500) req.log.warn(line, 'request');
      else req.log.info(line, 'request');
    });
  });
}

/** Registered right after auth in buildApp (fastify-plugin: its hook sees every route). */
export const logging = fp(accessLog, { name: 'swapserve-access-log' });
