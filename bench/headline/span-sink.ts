// An OTLP/HTTP JSON trace receiver in the bench's own process: every service exports its spans here, and the bench
// waits on a trace until the spans it reads its numbers from have arrived.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import * as S from '../../contracts/semconv.ts';

export interface RSpan {
  traceId: string;
  name: string;
  service: string;
  startMs: number;
  endMs: number;
  attrs: Record<string, string | number | boolean>;
  events: { name: string; ms: number }[];
}

type AnyValue = { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
const val = (v: AnyValue): string | number | boolean =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.boolValue ?? '');
const nsToMs = (ns: string | number) => Number(BigInt(String(ns)) / 1000n) / 1000;
const hexId = (id: string) => (/^[0-9a-f]{32}$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex'));

export class SpanSink {
  readonly traces = new Map<string, RSpan[]>();
  /** Re-checked after every export received (see until). */
  private readonly waiters = new Set<() => void>();
  private server!: Server;
  url = '';
  bad = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          this.ingest(Buffer.concat(chunks));
          for (const w of [...this.waiters]) w();
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  private ingest(body: Buffer): void {
    let doc: { resourceSpans?: { resource?: { attributes?: { key: string; value: AnyValue }[] }; scopeSpans?: { spans?: Record<string, unknown>[] }[] }[] };
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      this.bad++;
      return;
    }
    for (const rs of doc.resourceSpans ?? []) {
      const service = String(val(rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value ?? {}));
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const attrs: RSpan['attrs'] = {};
          for (const a of (s.attributes as { key: string; value: AnyValue }[] | undefined) ?? []) attrs[a.key] = val(a.value);
          const span: RSpan = {
            traceId: hexId(String(s.traceId)), name: String(s.name), service,
            startMs: nsToMs(s.startTimeUnixNano as string), endMs: nsToMs(s.endTimeUnixNano as string), attrs,
            events: ((s.events as { name: string; timeUnixNano: string }[] | undefined) ?? []).map((e) => ({ name: e.name, ms: nsToMs(e.timeUnixNano) })),
          };
          const list = this.traces.get(span.traceId) ?? [];
          list.push(span);
          this.traces.set(span.traceId, list);
        }
      }
    }
  }

  /** What `find` returns once it returns something, checked now and after each export received; undefined after the timeout. */
  private until<T>(find: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const now = find();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (v: T | undefined): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const check = (): void => {
        const v = find();
        if (v !== undefined) done(v);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Waits until the trace holds the gateway's inference span and the worker's prefill span. */
  async complete(traceId: string, timeoutMs = 20_000): Promise<RSpan[]> {
    const spansOf = () => this.traces.get(traceId) ?? [];
    const done = await this.until(() => {
      const spans = spansOf();
      const gw = spans.some((s) => s.attrs[S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] !== undefined);
      return gw && spans.some((s) => s.name === S.SPAN.prefill) ? spans : undefined;
    }, timeoutMs);
    if (!done) throw new Error(`trace ${traceId} incomplete after ${timeoutMs} ms (${spansOf().map((s) => s.name).join(', ')})`);
    return done;
  }

  /** The worker that served a trace (its job spans name it; they end after the prefill span), or null after the timeout. */
  async servedBy(traceId: string, timeoutMs = 10_000): Promise<string | null> {
    const w = await this.until(() => {
      const v = (this.traces.get(traceId) ?? []).find((s) => typeof s.attrs[S.ATTR_WORKER] === 'string')?.attrs[S.ATTR_WORKER];
      return typeof v === 'string' ? v : undefined;
    }, timeoutMs);
    return w ?? null;
  }

  /** The swapserve.worker_start span of `worker` (a trace of its own), once exported; null after the timeout. */
  async workerStart(worker: string, timeoutMs = 10_000): Promise<RSpan | null> {
    const s = await this.until(() => {
      for (const spans of this.traces.values()) {
        const x = spans.find((y) => y.name === S.SPAN.workerStart && y.attrs[S.ATTR_WORKER] === worker);
        if (x) return x;
      }
      return undefined;
    }, timeoutMs);
    return s ?? null;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
