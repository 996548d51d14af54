// The gateway's HTTP edges over raw sockets: every answer Node or Fastify would give on their own is an OpenAI
// error body; timeouts cut off trickled and silent clients; a connection cap; the loopback Host guard.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { parseConfig, type Config } from '../../services/config/config.ts';
import { startGateway, type Gateway } from '../../services/gateway/server.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { isOpenAIError, rawHttp, type RawReply } from '../helpers/raw-http.ts';

let redis: TestRedis;
let gw: Gateway;
let port: number;

const GATEWAY = { port: 0, bodyLimitBytes: 4096, keepAliveMs: 200, headersTimeoutMs: 800, bodyTimeoutMs: 1200, keepAliveTimeoutMs: 400, maxConnections: 8 };

function config(gateway: Record<string, unknown> = {}): Config {
  return parseConfig({
    prefix: redis.prefix(), modelRoots: ['/tmp'],
    gateway: { ...GATEWAY, ...gateway },
    models: [{ id: 'tiny', path: '/tmp/none.gguf' }],
  }, { REDIS_URL: redis.url });
}

before(async () => {
  redis = await startRedis();
  gw = await startGateway(config());
  port = Number(new URL(gw.url).port);
});
after(async () => {
  await gw?.close();
  await redis?.stop();
});

const post = (path: string, body: string, headers: string[] = []) =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;

function assertError(r: RawReply, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: status (body ${r.body})`);
  assert.ok(isOpenAIError(r.json), `${what}: OpenAI error body, got ${JSON.stringify(r.body)}`);
  assert.equal((r.json as { error: { code: string } }).error.code, code, what);
}

describe('HTTP edges: OpenAI bodies for the framework\'s own answers', () => {
  const cases: [string, () => string | Buffer, number, string, boolean][] = [
    // name, request bytes, status, code, closes the socket
    ['a request of only \\r\\n\\r\\n', () => '\r\n\r\n', 400, 'invalid_request', true],
    ['a malformed request line', () => 'GARBAGE\r\n\r\n', 400, 'invalid_request', true],
    ['a header block over 16 KiB', () => `GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large', true],
    ['Expect: something-else', () => 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}', 417, 'expectation_failed', true],
    ['no Host header (HTTP/1.1)', () => 'GET /v1/models HTTP/1.1\r\n\r\n', 400, 'invalid_request', false],
    ['an unknown route', () => 'GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n', 404, 'not_found', false],
    ['CONNECT', () => 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 404, 'not_found', true],
    ['a body that is not JSON', () => post('/v1/completions', '{"model":'), 400, 'invalid_request', false],
    ['an empty JSON body', () => post('/v1/completions', ''), 400, 'invalid_request', false],
    ['a body over the limit', () => post('/v1/completions', `{"model":"tiny","prompt":"${'x'.repeat(5000)}"}`), 413, 'body_too_large', false],
    ['application/xml', () => 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/xml\r\nContent-Length: 4\r\n\r\n<a/>', 415, 'unsupported_media_type', false],
    ['text/plain (Fastify parses it as a string: the schema refuses it)', () => 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi', 400, 'invalid_request', false],
    ['a malformed percent-escape in a route parameter', () => 'GET /v1/models/%E0%A4%A HTTP/1.1\r\nHost: localhost\r\n\r\n', 400, 'invalid_request', false],
    ['chunked and Content-Length together', () => 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'invalid_request', true],
  ];
  for (const [name, bytes, status, code, closes] of cases) {
    it(`${name} → ${status} ${code}`, async () => {
      const r = await rawHttp(port, bytes(), { waitMs: closes ? 3000 : 600 });
      assertError(r, status, code, name);
      if (closes) assert.ok(r.closed && r.ms < 1500, `${name}: the socket closes at once (${r.ms.toFixed(0)} ms)`);
    });
  }
});

describe('HTTP edges: timeouts and the connection cap', () => {
  it('a body trickled at 1 byte / 100 ms is cut off with 408 by bodyTimeoutMs', async () => {
    const head = 'POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n';
    const r = await rawHttp(port, '', { pieces: [head, ...'{"model":"tiny","prompt":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'.split('')], delayMs: 100, waitMs: 6000 });
    assertError(r, 408, 'request_timeout', 'trickled body');
    assert.ok(r.closed && r.ms < GATEWAY.bodyTimeoutMs + 1500, `closed after ${r.ms.toFixed(0)} ms`);
  });

  it('a connection that sends half a header block is closed with 408 by headersTimeoutMs', async () => {
    const r = await rawHttp(port, 'GET /v1/models HTTP/1.1\r\nHost: local', { waitMs: 6000 });
    assertError(r, 408, 'request_timeout', 'half headers');
    assert.ok(r.closed && r.ms < GATEWAY.headersTimeoutMs + 1500, `closed after ${r.ms.toFixed(0)} ms`);
  });

  it('an idle keep-alive socket is closed after keepAliveTimeoutMs', async () => {
    const r = await rawHttp(port, 'GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n', { waitMs: 4000 });
    assert.equal(r.status, 200);
    assert.ok(r.closed && r.ms < GATEWAY.keepAliveTimeoutMs + 1500, `closed after ${r.ms.toFixed(0)} ms`);
  });

  it('requests on sockets beyond maxConnections get 503 too_many_connections and a closed socket; the ones inside keep working', async () => {
    const open: Socket[] = [];
    for (let i = 0; i < GATEWAY.maxConnections; i++) {
      const s = connect(port, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      open.push(s);
    }
    try {
      // The server accepts asynchronously: let it count the held sockets before the next one arrives.
      await new Promise((r) => setImmediate(r));
      const over = await rawHttp(port, 'GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n', { waitMs: 2000 });
      assertError(over, 503, 'too_many_connections', 'past the cap');
      assert.match((over.json as { error: { message: string } }).error.message, new RegExp(`maximum of ${GATEWAY.maxConnections} open connections`));
      assert.ok(over.closed, 'closed by the server');
      // A socket inside the cap is still served.
      open[0].write('GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      const inside = await new Promise<string>((r) => {
        let got = '';
        open[0].on('data', (d: Buffer) => { got += d.toString(); });
        open[0].once('close', () => r(got));
      });
      assert.match(inside, /^HTTP\/1\.1 200 /);
    } finally {
      for (const s of open) s.destroy();
      // Later tests need the slots back: wait until the server has seen the closes.
      const count = () => new Promise<number>((r) => gw.app.server.getConnections((_e, n) => r(n)));
      while (await count() > 0) await new Promise((r) => setImmediate(r));
    }
  });
});

describe('HTTP edges: the Host guard (DNS rebinding)', () => {
  it('a loopback gateway answers localhost and 127.0.0.1 with a port, and refuses other names with 403', async () => {
    for (const host of ['localhost', `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
      assert.equal((await rawHttp(port, `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).status, 200, host);
    }
    for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example', '127.0.0.1.nip.io']) {
      const r = await rawHttp(port, `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assertError(r, 403, 'host_not_allowed', host);
    }
  });

  it('allowedHosts is configurable: a listed name passes, ["*"] allows any', async () => {
    for (const [allowed, host, status] of [[['api.internal'], 'api.internal:80', 200], [['api.internal'], 'localhost', 403], [['*'], 'evil.example', 200]] as const) {
      const g = await startGateway(config({ allowedHosts: [...allowed] }));
      try {
        const r = await rawHttp(Number(new URL(g.url).port), `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.equal(r.status, status, `${allowed.join(',')} / ${host}`);
      } finally {
        await g.close();
      }
    }
  });
});

describe('HTTP edges: Connection: close on a stream', () => {
  it('a streamed response to a Connection: close request says close and closes the socket', async () => {
    // No worker: the stream opens after one keep-alive period with ": waiting" comments; the request times out.
    const g = await startGateway(parseConfig({
      prefix: redis.prefix(), modelRoots: ['/tmp'], gateway: { ...GATEWAY, port: 0, requestTimeoutMs: 600 },
      models: [{ id: 'tiny', path: '/tmp/none.gguf' }],
    }, { REDIS_URL: redis.url }));
    try {
      const body = JSON.stringify({ model: 'tiny', prompt: 'hi', max_tokens: 2, stream: true });
      const r = await rawHttp(Number(new URL(g.url).port), post('/v1/completions', body, ['Connection: close']), { waitMs: 5000 });
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, 'close');
      assert.match(r.body, /"code":"timeout"/, 'the stream ends with its error event');
      assert.ok(r.closed, 'the server closed the socket after the stream');
    } finally {
      await g.close();
    }
  });
});
