// One request through the gateway (streamed, with a traceparent the bench chose) and the sample read from its trace:
// the path the system reported, its TTFT and the worker's phase spans (ms).
import { randomBytes } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import * as S from '../../contracts/semconv.ts';
import type { RSpan } from './span-sink.ts';

/** A sample set up as one path that the system reported as another (left out of the cells). */
export interface Mismatch {
  intended: string;
  got: string;
  model: string;
  prompt: number;
}

export interface Sample {
  model: string;
  prompt: number;
  promptTokens: number;
  intended: string;
  path: string;
  /** All from the trace (ms): the gateway span's time to first chunk, and the worker's phase spans. */
  ttftMs: number;
  queueMs: number;
  loadMs: number;
  swapMs: number;
  evictMs: number;
  prefillMs: number;
  loadGBps: number | null;
  swapGBps: number | null;
  /** Client-side stopwatch, for a sanity check only (not reported as a result). */
  clientTtftMs: number;
  cachedBefore: number | null;
  /**
   * A scale from zero (cold:worker_start), from the worker's swapserve.worker_start span and the request's trace (ms):
   * request arrival -> worker process start (scheduling, spawn), process start -> ready (imports, runtime, registration),
   * ready -> the load's start (placement command, model files opened).
   */
  workerStart?: { spawnMs: number; readyMs: number; toLoadMs: number } | null;
}

export function postStream(url: string, body: object, traceId: string): Promise<{ status: number; headers: IncomingMessage['headers']; firstChunkMs: number; text: string }> {
  const data = JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
    }, (res) => {
      let first = -1;
      let text = '';
      res.on('data', (c: Buffer) => {
        const s = c.toString();
        if (first < 0 && s.includes('data:')) first = performance.now() - t0;
        text += s;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, firstChunkMs: first, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Splits a scale from zero's wait before the load with the worker's start span (null without one). */
export function workerStartFrom(spans: RSpan[], ws: RSpan | null): Sample['workerStart'] {
  const gw = spans.find((s) => s.attrs[S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] !== undefined);
  const load = spans.filter((s) => s.name === S.SPAN.load).sort((a, b) => a.startMs - b.startMs)[0];
  if (!ws || !gw || !load) return null;
  return { spawnMs: ws.startMs - gw.startMs, readyMs: ws.endMs - ws.startMs, toLoadMs: load.startMs - ws.endMs };
}

export function sampleFrom(spans: RSpan[], base: Omit<Sample, 'path' | 'ttftMs' | 'queueMs' | 'loadMs' | 'swapMs' | 'evictMs' | 'prefillMs' | 'loadGBps' | 'swapGBps'>): Sample {
  const gw = spans.find((s) => s.attrs[S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] !== undefined)!;
  const sum = (name: string) => spans.filter((s) => s.name === name).reduce((n, s) => n + (s.endMs - s.startMs), 0);
  const gbps = (name: string) => {
    const s = spans.find((x) => x.name === name && typeof x.attrs[S.ATTR_MOVE_GBPS] === 'number');
    return s ? (s.attrs[S.ATTR_MOVE_GBPS] as number) : null;
  };
  const path = String(gw.attrs[S.ATTR_PATH] ?? '?');
  const reason = gw.attrs[S.ATTR_COLD_REASON];
  return {
    ...base,
    path: reason ? `${path}:${reason}` : path,
    ttftMs: Number(gw.attrs[S.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]) * 1000,
    queueMs: sum(S.SPAN.queueWait), loadMs: sum(S.SPAN.load), swapMs: sum(S.SPAN.swapIn), evictMs: sum(S.SPAN.evictWait),
    prefillMs: sum(S.SPAN.prefill), loadGBps: gbps(S.SPAN.load), swapGBps: gbps(S.SPAN.swapIn),
  };
}

