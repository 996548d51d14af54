// The gateway's HTTP edges: timeouts and a connection cap, and an OpenAI error body for everything Node or Fastify
// would otherwise answer themselves (malformed requests, 408/413/415/417/431, FST_ERR_*), or not at all.
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyHttpOptions, FastifyInstance, FastifyReply } from 'fastify';
import { RequestError } from '../../contracts/errors.ts';
import type { Config } from '../config/config.ts';

/** Node's default cap on all request headers (bytes); above it the parser fails with HPE_HEADER_OVERFLOW (431). */
const MAX_HEADER_BYTES = 16 * 1024;

/** Maps any error to an OpenAI error object with a stable code; 5xx bodies never carry internals. */
export function toSwapserveError(err: unknown): RequestError {
  if (err instanceof RequestError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RequestError('body_too_large', { detail: 'the configured limit' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
    case 'FST_ERR_CTP_EMPTY_TYPE':
      return new RequestError('unsupported_media_type', { detail: 'another content type', param: 'Content-Type' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new RequestError('invalid_request', { detail: 'the body is empty; send a JSON object' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new RequestError('invalid_request', { detail: 'the body is not valid JSON' });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RequestError('invalid_request', { detail: 'Content-Length does not match the body', param: 'Content-Length' });
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new RequestError('invalid_request', { detail: 'the URL is malformed' });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'FST_ERR_REQUEST_TIMEOUT':
      return new RequestError('request_timeout', { detail: 'the configured timeouts' });
  }
  if (e instanceof SyntaxError) return new RequestError('invalid_request', { detail: 'the body is not valid JSON' });
  // Any other client error Fastify or a plugin raises keeps its status class with a registry code.
  switch (e?.statusCode) {
    case 400: return new RequestError('invalid_request', { detail: e.code ? `${e.code}` : 'bad request' });
    case 404: return new RequestError('not_found', { detail: '' });
    case 408: return new RequestError('request_timeout', { detail: 'the configured timeouts' });
    case 413: return new RequestError('body_too_large', { detail: 'the configured limit' });
    case 415: return new RequestError('unsupported_media_type', { detail: 'another content type', param: 'Content-Type' });
    case 431: return new RequestError('headers_too_large', { detail: MAX_HEADER_BYTES });
  }
  return new RequestError('internal_error', { cause: err });
}

/** The raw HTTP/1.1 bytes of an OpenAI error response that closes the connection. */
function rawErrorResponse(e: RequestError): string {
  const body = JSON.stringify(e.toBody());
  return `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Answers on a bare socket (no request object exists) and closes it once the bytes are out. */
function answerSocket(socket: Duplex, e: RequestError): void {
  const busy = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (socket.destroyed || !socket.writable || busy) {
    socket.destroy();
    return;
  }
  socket.end(rawErrorResponse(e), () => socket.destroy());
}

/** Node's parse errors and timeouts (Fastify's `clientErrorHandler`): an OpenAI body instead of Fastify's own. */
function clientErrorHandler(gw: Config['gateway']) {
  const timeouts = `headers within ${gw.headersTimeoutMs} ms, the whole request within ${gw.bodyTimeoutMs} ms`;
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) {
      socket.destroy();
      return;
    }
    const e = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new RequestError('request_timeout', { detail: timeouts })
      : err.code === 'HPE_HEADER_OVERFLOW' ? new RequestError('headers_too_large', { detail: MAX_HEADER_BYTES })
        : new RequestError('invalid_request', { detail: `malformed HTTP request (${err.code ?? 'parse error'})` });
    answerSocket(socket, e);
  };
}

/** Fastify options for the edges: timeouts (Node checks them every second) and the handlers above. */
export function edgeOptions(gw: Config['gateway']): FastifyHttpOptions<Server> {
  return {
    requestTimeout: gw.bodyTimeoutMs,
    keepAliveTimeout: gw.keepAliveTimeoutMs,
    http: {
      headersTimeout: gw.headersTimeoutMs,
      requestTimeout: gw.bodyTimeoutMs,
      keepAliveTimeout: gw.keepAliveTimeoutMs,
      // How often Node looks for sockets past headersTimeout / requestTimeout (ms); its default is 30 s.
      connectionsCheckingInterval: Math.min(1000, gw.headersTimeoutMs),
      // A missing Host gets an OpenAI 400 from host-guard.ts instead of Node's empty 400.
      requireHostHeader: false,
      maxHeaderSize: MAX_HEADER_BYTES,
    },
    clientErrorHandler: clientErrorHandler(gw),
    frameworkErrors: (error: FastifyError, _req, reply) => {
      const e = toSwapserveError(error);
      void (reply as FastifyReply).code(e.status).send(e.toBody());
    },
  };
}

/**
 * A connection whose first bytes are blank lines only: Node's parser skips leading CRLFs (RFC 9112 allows one)
 * and would wait for a request line until headersTimeout. Two blank lines are a request with no request line:
 * answered with a 400 at once. Listening to 'data' hands the socket's bytes to the parser through JavaScript;
 * the listener goes at the first other byte.
 */
function blankRequestGuard(server: Server): void {
  server.on('connection', (socket: Duplex) => {
    let lines = 0;
    const onData = (chunk: Buffer) => {
      for (const b of chunk) {
        if (b === 0x0a) lines++;
        else if (b !== 0x0d) {
          socket.off('data', onData);
          return;
        }
        if (lines >= 2) {
          socket.off('data', onData);
          answerSocket(socket, new RequestError('invalid_request', { detail: 'an empty request (blank lines, no request line)' }));
          return;
        }
      }
    };
    socket.on('data', onData);
  });
}

/** Sockets accepted past gateway.maxConnections: their requests get 503 too_many_connections. */
const overCap = new WeakSet<object>();

/**
 * Answers every request on a socket past the connection cap with 503 too_many_connections (OpenAI body, Connection:
 * close) and a log line, before any route runs.
 */
export function connectionCapGuard(app: FastifyInstance, gw: Config['gateway']): void {
  app.addHook('onRequest', async (req, reply) => {
    if (!overCap.has(req.raw.socket)) return;
    req.log.warn({ maxConnections: gw.maxConnections, remoteAddress: req.raw.socket.remoteAddress }, 'connection cap reached: answered 503 too_many_connections');
    reply.header('connection', 'close');
    throw new RequestError('too_many_connections', { detail: gw.maxConnections });
  });
}

/** Server-level edges Fastify has no option for: the connection cap, Expect, CONNECT, blank requests. */
export function installServerEdges(server: Server, gw: Config['gateway'], onCapLog?: (line: string) => void): void {
  // The connection cap: a socket past gw.maxConnections is accepted and its requests answered 503
  // too_many_connections with Connection: close (connectionCapGuard), so a client learns why; past twice the cap
  // (a backstop for file descriptors) Node closes sockets as they arrive, with a log line ('drop').
  let open = 0;
  server.on('connection', (socket: Socket) => {
    open++;
    if (open > gw.maxConnections) overCap.add(socket);
    socket.once('close', () => { open--; });
  });
  server.maxConnections = 2 * gw.maxConnections;
  server.on('drop', (d?: { remoteAddress?: string }) => {
    onCapLog?.(`connection cap: dropped a connection from ${d?.remoteAddress ?? 'unknown'} past twice gateway.maxConnections (${server.maxConnections} open)`);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const e = new RequestError('expectation_failed', { detail: String(req.headers.expect ?? '').slice(0, 100), param: 'Expect' });
    const body = JSON.stringify(e.toBody());
    res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
  // Without a listener Node destroys a CONNECT request's socket without a word.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    answerSocket(socket, new RequestError('not_found', { detail: `CONNECT ${String(req.url).slice(0, 100)}` }));
  });
  blankRequestGuard(server);
}

/** Whether a response must close its connection: the client asked (`Connection: close`) or HTTP/1.0 without keep-alive. */
export function wantsClose(req: IncomingMessage): boolean {
  const c = String(req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  if (c.includes('close')) return true;
  return req.httpVersion === '1.0' && !c.includes('keep-alive');
}
