// A Fastify plugin for the HTTP server span of every request (`{method} {route}`, HTTP semconv attributes) and
// an optional GET /metrics route. Registered without encapsulation so its hooks see every route of the app.
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { metricsHandler } from './handle.ts';
import { tracer } from './traces.ts';
import * as S from '../../contracts/semconv.ts';

export interface HttpTelemetryOptions {
  /** Serve GET /metrics (Prometheus text) from this app. @defaultValue true */
  metricsRoute?: boolean;
  /** URL path prefixes that get no span (static assets, polling). @defaultValue ['/metrics', '/status/', '/queues'] */
  ignorePrefixes?: string[];
}
const DEFAULTS: Required<HttpTelemetryOptions> = {
  metricsRoute: true,
  ignorePrefixes: ['/metrics', '/status/', '/queues'],
};

interface ReqTelemetry {
  span: Span;
  ctx: Context;
}
const byRequest = new WeakMap<FastifyRequest, ReqTelemetry>();

/** The context of the request's HTTP server span (for starting children by hand). */
export function requestContext(req: FastifyRequest): Context {
  return byRequest.get(req)?.ctx ?? context.active();
}

async function httpTelemetry(app: FastifyInstance, opts: HttpTelemetryOptions): Promise<void> {
  const o = { ...DEFAULTS, ...opts };
  app.addHook('onRequest', (req, reply, done) => {
    const path = req.url.split('?')[0] ?? req.url;
    if (o.ignorePrefixes.some((p) => path === p || path.startsWith(p)) || path === '/') {
      done();
      return;
    }
    // Continue a trace the client started (traceparent header), else start one.
    const parent = propagation.extract(context.active(), req.headers);
    const route = req.routeOptions.url;
    const span = tracer().startSpan(
      S.httpSpanName(req.method, route),
      {
        kind: SpanKind.SERVER,
        attributes: {
          [S.ATTR_HTTP_REQUEST_METHOD]: req.method,
          [S.ATTR_URL_PATH]: path,
          [S.ATTR_URL_SCHEME]: req.protocol,
          ...(route ? { [S.ATTR_HTTP_ROUTE]: route } : {}),
        },
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    byRequest.set(req, { span, ctx });
    // End on the raw response's close: it fires for replies, hijacked SSE streams and aborted clients alike
    // (Fastify's onResponse does not run for hijacked replies).
    const res = reply.raw;
    res.once('close', () => {
      span.setAttribute(S.ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
      if (!res.writableFinished) span.setAttribute(S.ATTR_ERROR_TYPE, 'client_abort');
      else if (res.statusCode >= 500) {
        span.setAttribute(S.ATTR_ERROR_TYPE, String(res.statusCode));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
      byRequest.delete(req);
    });
    // Run the rest of the request's lifecycle (handlers included) inside the span's context.
    context.with(ctx, done);
  });
  if (o.metricsRoute) app.get('/metrics', metricsHandler());
}

// Skip Fastify's encapsulation (what fastify-plugin does) so the hooks apply to the whole app.
(httpTelemetry as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
export default httpTelemetry;
export { httpTelemetry };
