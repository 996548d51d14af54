// Raw HTTP/1.1 over a real TCP socket: send exact bytes (optionally trickled) and read back what the server says
// and whether it closed the connection. For edge cases no HTTP client library would send.
import { connect } from 'node:net';

export interface RawReply {
  /** HTTP status, or 0 when nothing was answered. */
  status: number;
  headers: Record<string, string>;
  /** Raw body text (chunked bodies are not decoded). */
  body: string;
  /** The body parsed as JSON, or undefined. */
  json: unknown;
  /** Whether the server closed the socket before `waitMs`. */
  closed: boolean;
  /** Time from connect to close (or to giving up), ms. */
  ms: number;
}

export interface RawOptions {
  /** Pieces written one after another, each after `delayMs` (a trickle). @defaultValue one piece */
  pieces?: (string | Buffer)[];
  /** Delay before each piece after the first (ms). @defaultValue 0 */
  delayMs?: number;
  /** Give up waiting for the close after this long (ms). @defaultValue 5000 */
  waitMs?: number;
  /** Half-close the socket after the last piece (a client that gives up mid-request). @defaultValue false */
  endAfterWrite?: boolean;
}

/** The payload of a chunked body (as far as it goes). */
function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const n = parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!(n > 0)) break;
    out.push(b.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

function parse(all: Buffer): Omit<RawReply, 'closed' | 'ms'> {
  // Interim 100 Continue answers (Expect: 100-continue) come before the real one.
  let raw = all;
  while (/^HTTP\/1\.[01] 100 /.test(raw.subarray(0, 16).toString('latin1')) && raw.indexOf('\r\n\r\n') >= 0) raw = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, end < 0 ? raw.length : end).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!m || end < 0) return { status: 0, headers: {}, body: raw.toString('utf8'), json: undefined };
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const rest = raw.subarray(end + 4);
  const body = (/chunked/i.test(headers['transfer-encoding'] ?? '') ? dechunk(rest) : rest).toString('utf8');
  let json: unknown;
  try { json = JSON.parse(body); } catch { json = undefined; }
  return { status: Number(m[1]), headers, body, json };
}

/** Connects to `port` on 127.0.0.1, writes `data` (or `opts.pieces`), and collects the reply until close or `waitMs`. */
export function rawHttp(port: number, data: string | Buffer, opts: RawOptions = {}): Promise<RawReply> {
  const pieces = opts.pieces ?? [data];
  const waitMs = opts.waitMs ?? 5000;
  return new Promise((resolve) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parse(Buffer.concat(chunks)), closed, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (d) => chunks.push(d));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', async () => {
      for (const [i, p] of pieces.entries()) {
        if (i > 0 && opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        if (socket.destroyed) return;
        socket.write(p);
      }
      if (opts.endAfterWrite && !socket.destroyed) socket.end();
    });
  });
}

/** Whether a value is an OpenAI error object: { error: { message: string, type: string, param, code } }. */
export function isOpenAIError(v: unknown): boolean {
  const e = (v as { error?: Record<string, unknown> } | null)?.error;
  return !!e && typeof e === 'object' && typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e;
}
