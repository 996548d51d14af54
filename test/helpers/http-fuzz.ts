// A seeded generator of hostile HTTP requests for the gateway fuzzer: bodies, headers, methods, paths, encodings,
// slow and partial sends, oversized inputs, bad JSON and wrong types for every request parameter.
import { prng } from '../../native/ts/model/fill.ts';

export interface FuzzRequest {
  /** What kind of hostility, for the report. */
  kind: string;
  /** Bytes written one piece after another, `delayMs` apart (a trickle when several). */
  pieces: Buffer[];
  delayMs: number;
  /**
   * 'answer': the server must answer (status > 0) and close, within the bound; 'close': the client stops sending
   * mid-request and closes (only the server's survival is checked, by later requests).
   */
  expect: 'answer' | 'close';
  /** The request asked for a stream (its 200 body is SSE). */
  stream: boolean;
}

/** A value of a wrong or edge-case type for any JSON field. */
const HOSTILE_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 64, '', ' ', 'x', '5', 'null', 'NaN', '\u0000', '\ud800',
  '💥'.repeat(50), 'a'.repeat(5000), [], [1], ['a'], [[[]]], {}, { a: 1 }, { __proto__: { polluted: true } }, [null],
];

const PARAMS = ['model', 'prompt', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'stop', 'seed',
  'n', 'stream', 'stream_options', 'presence_penalty', 'frequency_penalty', 'user', 'echo', 'best_of', 'logprobs', 'suffix',
  'tools', 'tool_choice', 'response_format', 'logit_bias', 'unknown_param'];

const METHODS = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'FOO', 'get', 'POST '];
const PATHS = ['/v1/completions', '/v1/chat/completions', '/v1/models', '/v1/models/story-a', '/healthz', '/readyz', '/',
  '/nope', '/v1/models/%E0%A4%A', '/v1/../etc/passwd', '//v1//completions', '/v1/completions?x=1&x=2', '/v1/completions#frag',
  `/v1/${'a'.repeat(10_000)}`, '/v1/models/' + encodeURIComponent('💥'), '/status/api/state', '/metrics', '*', 'http://evil/v1/models'];

export class FuzzGen {
  private readonly next: () => number;

  constructor(seed: number, private readonly models: string[]) {
    this.next = prng(seed);
  }

  private int(n: number): number { return this.next() % n; }
  private pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
  private chance(p: number): boolean { return this.next() / 2 ** 32 < p; }

  /** A valid body that generates little (1..3 tokens), for the mutations to start from. */
  private validBody(chat: boolean): Record<string, unknown> {
    const b: Record<string, unknown> = { model: this.pick(this.models), max_tokens: 1 + this.int(3), temperature: this.chance(0.5) ? 0 : 1 };
    if (chat) b.messages = [{ role: 'user', content: this.pick(['hi', 'Tell me a story', 'Once', '']) }];
    else b.prompt = this.pick(['Once upon a time', 'The', '', 'ü']);
    if (this.chance(0.4)) b.stream = true;
    if (b.stream && this.chance(0.5)) b.stream_options = { include_usage: true };
    if (this.chance(0.2)) b.stop = this.pick(['.', ['\n', 'the'], 'Once']);
    if (this.chance(0.2)) b.seed = this.int(1000);
    return b;
  }

  private request(method: string, path: string, headers: [string, string][], body: Buffer | null): Buffer {
    const head = [`${method} ${path} HTTP/1.1`, ...headers.map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)]);
  }

  private jsonHeaders(body: Buffer, extra: [string, string][] = []): [string, string][] {
    return [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Connection', 'close'], ...extra];
  }

  private post(path: string, body: Buffer, extra: [string, string][] = [], kind: string, stream = false): FuzzRequest {
    return { kind, pieces: [this.request('POST', path, this.jsonHeaders(body, extra), body)], delayMs: 0, expect: 'answer', stream };
  }

  /** One request; kinds are drawn with fixed weights so a seed gives the same sequence. */
  generate(): FuzzRequest {
    const r = this.int(100);
    const chat = this.chance(0.5);
    const path = chat ? '/v1/chat/completions' : '/v1/completions';
    if (r < 12) {
      const b = this.validBody(chat);
      return this.post(path, Buffer.from(JSON.stringify(b)), this.chance(0.2) ? [['Idempotency-Key', `k${this.int(20)}`]] : [], 'valid', !!b.stream);
    }
    if (r < 45) {
      // Wrong types: one or more parameters replaced (or added) with hostile values.
      const b = this.validBody(chat);
      for (let i = 0, n = 1 + this.int(3); i < n; i++) b[this.pick(PARAMS)] = this.pick(HOSTILE_VALUES);
      if (this.chance(0.2)) b.messages = [{ role: this.pick(['user', 'tool', 'god', 5]), content: this.pick(HOSTILE_VALUES) }];
      return this.post(path, Buffer.from(JSON.stringify(b)), [], 'wrong-type', b.stream === true);
    }
    if (r < 57) return this.post(path, this.badJson(), [], 'bad-json');
    if (r < 67) return this.hostileHeaders(path);
    if (r < 75) {
      const method = this.pick(METHODS);
      const p = this.pick(PATHS);
      const body = this.chance(0.3) ? Buffer.from('{"model":"story-a","prompt":"x"}') : null;
      const h: [string, string][] = [['Host', 'localhost'], ['Connection', 'close']];
      if (body) h.push(['Content-Type', 'application/json'], ['Content-Length', String(body.length)]);
      return { kind: 'method-path', pieces: [this.request(method, p, h, body)], delayMs: 0, expect: 'answer', stream: false };
    }
    if (r < 83) return this.encodings(path);
    if (r < 89) return this.oversized(path);
    if (r < 95) return this.raw();
    return this.slow(path);
  }

  private badJson(): Buffer {
    switch (this.int(10)) {
      case 0: return Buffer.from('{"model": "story-a", "prompt": "x"');
      case 1: return Buffer.from('['.repeat(20_000));
      case 2: return Buffer.from('{"model": "story-a", "prompt": "x"} trailing');
      case 3: return Buffer.from('{"model": "story-a", "model": "story-b", "prompt": "x", "max_tokens": 1}');
      case 4: return Buffer.from('{"model": "story-a", "prompt": "x", "max_tokens": 1e400}');
      case 5: return Buffer.from('"just a string"');
      case 6: return Buffer.from('null');
      case 7: return Buffer.from([0xff, 0xfe, 0x7b, 0x7d]);
      case 8: return Buffer.from('{"model": "story-a", "prompt": "\\ud800\\udc00\\ud800", "max_tokens": 1}');
      default: return Buffer.from(`{"model": "story-a", "prompt": "x", "max_tokens": 1, "${'k'.repeat(100)}": ${'{"a":'.repeat(500)}1${'}'.repeat(500)}}`);
    }
  }

  private hostileHeaders(path: string): FuzzRequest {
    const body = Buffer.from(JSON.stringify(this.validBody(path.includes('chat'))));
    const variants: [string, string][][] = [
      [['Host', 'evil.example'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Content-Length', String(body.length + 1)], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', '-1'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', 'abc'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json; charset=utf-16'], ['Content-Length', String(body.length)], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Expect', '100-continue'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Expect', 'nonsense'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Idempotency-Key', 'a b\u007f'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['X-Junk', '\u00ff\u00fe'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Transfer-Encoding', 'chunked'], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['X-Big', 'a'.repeat(20_000)], ['Connection', 'close']],
      [['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Connection', 'close']],
      [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(body.length)], ['Connection', 'close, Upgrade'], ['Upgrade', 'websocket']],
    ];
    return { kind: 'headers', pieces: [this.request('POST', path, this.pick(variants), body)], delayMs: 0, expect: 'answer', stream: false };
  }

  private encodings(path: string): FuzzRequest {
    const json = JSON.stringify(this.validBody(path.includes('chat')));
    const body = this.pick([
      Buffer.from(json, 'utf16le'),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]),
      Buffer.from(json.replace('"model"', '"m\u00f6del"'), 'latin1'),
      Buffer.from(json.replace(/}$/, ',"x":"\u0000\u0001\u001f"}')),
    ]);
    const extra: [string, string][] = this.chance(0.4) ? [['Content-Encoding', this.pick(['gzip', 'br', 'identity', 'x'])]] : [];
    return this.post(path, body, extra, 'encoding');
  }

  private oversized(path: string): FuzzRequest {
    if (this.chance(0.5)) {
      const b = { model: 'story-a', prompt: 'x'.repeat(70_000), max_tokens: 1 };
      return this.post(path, Buffer.from(JSON.stringify(b)), [], 'oversized-body');
    }
    // Claims a huge body, sends a little, then stops: the body timeout answers.
    const head = this.request('POST', path, [['Host', 'localhost'], ['Content-Type', 'application/json'], ['Content-Length', String(10 ** 9)], ['Connection', 'close']], null);
    return { kind: 'oversized-claim', pieces: [head, Buffer.from('{"model":')], delayMs: 50, expect: 'answer', stream: false };
  }

  private raw(): FuzzRequest {
    const bytes = this.pick([
      Buffer.from('\r\n\r\n'),
      Buffer.from('GARBAGE\r\n\r\n'),
      Buffer.from('GET / HTTP/9.9\r\nHost: localhost\r\n\r\n'),
      Buffer.from('GET /v1/models HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n'),
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
      Buffer.from('GET /v1/models HTTP/1.0\r\n\r\n'),
      Buffer.from('POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'),
    ]);
    return { kind: 'raw', pieces: [bytes], delayMs: 0, expect: 'answer', stream: false };
  }

  private slow(path: string): FuzzRequest {
    const body = Buffer.from(JSON.stringify(this.validBody(path.includes('chat'))));
    const whole = this.request('POST', path, this.jsonHeaders(body), body);
    const pieces: Buffer[] = [];
    for (let i = 0; i < whole.length; i += 40) pieces.push(whole.subarray(i, i + 40));
    if (this.chance(0.5)) {
      // Stops half-way and closes: nothing to answer; the server must simply let go.
      return { kind: 'partial-close', pieces: pieces.slice(0, Math.max(1, pieces.length >> 1)), delayMs: 5, expect: 'close', stream: false };
    }
    // Trickles the first pieces slowly, then stalls: the header or body timeout answers 408.
    return { kind: 'slow-stall', pieces: pieces.slice(0, Math.max(1, pieces.length - 1)), delayMs: 20, expect: 'answer', stream: false };
  }
}
