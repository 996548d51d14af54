// Liveness and readiness over HTTP for processes without an API port (worker, scheduler): GET /livez, /readyz
// (and /healthz, an alias of /livez), nothing else. The gateway answers the same paths on its own port.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { RequestError } from '../../contracts/errors.ts';

export interface HealthChecks {
  /** False once the process cannot recover by itself (a sticky CUDA error): its supervisor should restart it. */
  live(): boolean;
  /** Null when ready to take work; else why not (draining, Redis unreachable, not started). */
  ready(): Promise<string | null>;
}

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

/** Null when Redis answers a PING; else the readiness reason every service reports. */
export async function redisReason(redis: { ping(): Promise<unknown> }): Promise<string | null> {
  try {
    await redis.ping();
    return null;
  } catch {
    return 'Redis does not answer';
  }
}

/** The 503 body of a probe: the OpenAI error shape of every other refusal. */
export function notReadyBody(reason: string): string {
  return JSON.stringify(new RequestError(reason === 'draining' ? 'draining' : 'not_ready', { detail: reason }).toBody());
}

export async function startHealthServer(port: number, host: string, checks: HealthChecks): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, JSON.stringify(new RequestError('not_found', { detail: `${req.method} ${path}` }).toBody()));
    if (path === '/livez' || path === '/healthz') return checks.live() ? send(200, '{"status":"ok"}') : send(503, notReadyBody('unhealthy'));
    if (path === '/readyz') {
      checks.ready().then(
        (reason) => (reason === null ? send(200, '{"status":"ready"}') : send(503, notReadyBody(reason))),
        (e: unknown) => send(503, notReadyBody(`readiness check failed: ${(e as Error).message}`)),
      );
      return;
    }
    send(404, JSON.stringify(new RequestError('not_found', { detail: `GET ${path}` }).toBody()));
  });
  server.listen(port, host);
  await once(server, 'listening');
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
