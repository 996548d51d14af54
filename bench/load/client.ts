// One streamed request in the OpenAI wire format (SSE `chat/completions` or `completions`, as the official client
// sends them), timed at the client: TTFT at the first token chunk, TPOT over the rest.
import { Agent, request } from 'node:http';
import { request as requestTls, Agent as TlsAgent } from 'node:https';
import type { Endpoint } from './prompts.ts';

export interface RequestSpec {
  model: string;
  endpoint: Endpoint;
  text: string;
  maxTokens: number;
  ignoreEos: boolean;
  temperature: number;
  seed?: number;
}

export type Outcome = 'ok' | 'failed' | 'lost';

export interface RequestResult {
  outcome: Outcome;
  /** HTTP status (0: no response). */
  status: number;
  /** Error code of an OpenAI error body or event, or a transport error's code. */
  error?: string;
  /** The error's `param`, when the gateway named one. */
  param?: string;
  sentMs: number;
  /** ms from send to the first token chunk (−1: none). */
  ttftMs: number;
  /** ms from send to the end of the stream. */
  e2eMs: number;
  /** Token chunks received. */
  chunks: number;
  promptTokens: number;
  completionTokens: number;
  finishReason: string | null;
  text: string;
}

const agents = new Map<string, Agent>();
function agentFor(url: URL): Agent {
  let a = agents.get(url.protocol);
  if (!a) {
    a = url.protocol === 'https:' ? new TlsAgent({ keepAlive: true, maxSockets: Infinity }) : new Agent({ keepAlive: true, maxSockets: Infinity });
    agents.set(url.protocol, a);
  }
  return a;
}

/** Closes the keep-alive sockets (so a finished bench exits at once). */
export function closeAgents(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

export function body(spec: RequestSpec): Record<string, unknown> {
  return {
    model: spec.model,
    ...(spec.endpoint === 'chat' ? { messages: [{ role: 'user', content: spec.text }] } : { prompt: spec.text }),
    max_tokens: spec.maxTokens,
    temperature: spec.temperature,
    ...(spec.seed !== undefined ? { seed: spec.seed } : {}),
    stream: true,
    stream_options: { include_usage: true },
    ...(spec.ignoreEos ? { ignore_eos: true } : {}),
  };
}

/**
 * Sends one streaming request and reads it to its end. 'failed': an HTTP error, an error event, or a transport
 * error before any response; 'lost': the stream was accepted (200) but ended without a finish_reason (a cut
 * stream), or nothing ended it within `timeoutMs`.
 */
export function stream(baseUrl: string, spec: RequestSpec, timeoutMs: number, headers: Record<string, string> = {}): Promise<RequestResult> {
  const url = new URL(spec.endpoint === 'chat' ? 'v1/chat/completions' : 'v1/completions', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  const data = JSON.stringify(body(spec));
  const t0 = performance.now();
  const sentMs = Date.now();
  const res: RequestResult = {
    outcome: 'lost', status: 0, sentMs, ttftMs: -1, e2eMs: 0, chunks: 0, promptTokens: 0, completionTokens: 0, finishReason: null, text: '',
  };
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      res.outcome = outcome;
      if (error !== undefined && res.error === undefined) res.error = error;
      res.e2eMs = performance.now() - t0;
      if (!res.completionTokens) res.completionTokens = res.chunks;
      resolve(res);
    };
    const send = url.protocol === 'https:' ? requestTls : request;
    const req = send(url, {
      method: 'POST', agent: agentFor(url),
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), accept: 'text/event-stream', ...headers },
    }, (r) => {
      res.status = r.statusCode ?? 0;
      let buf = '';
      r.setEncoding('utf8');
      if (res.status !== 200) {
        r.on('data', (s: string) => { buf += s; });
        r.on('end', () => {
          try {
            const e = (JSON.parse(buf) as { error?: { code?: string; param?: string } }).error;
            if (e?.param) res.param = e.param;
            finish('failed', e?.code ?? `http_${res.status}`);
          } catch {
            finish('failed', `http_${res.status}`);
          }
        });
        return;
      }
      const onEvent = (payload: string) => {
        if (payload === '[DONE]') {
          finish(res.finishReason ? 'ok' : 'lost', res.finishReason ? undefined : 'no_finish_reason');
          return;
        }
        let ev: {
          error?: { code?: string; message?: string };
          choices?: { delta?: { content?: string; role?: string }; text?: string; finish_reason?: string | null }[];
          usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
        };
        try {
          ev = JSON.parse(payload);
        } catch {
          return;
        }
        if (ev.error) {
          finish('failed', ev.error.code ?? 'stream_error');
          return;
        }
        if (ev.usage) {
          res.promptTokens = ev.usage.prompt_tokens ?? 0;
          res.completionTokens = ev.usage.completion_tokens ?? 0;
        }
        const c = ev.choices?.[0];
        if (!c || c.delta?.role !== undefined) return; // the role chunk opens a chat stream (maybe before any token)
        const piece = spec.endpoint === 'chat' ? c.delta?.content : c.text;
        // Each token event of the worker is one chunk (its text may be '' mid-character); the role chunk has none.
        if (piece !== undefined && !c.finish_reason) {
          if (res.ttftMs < 0) res.ttftMs = performance.now() - t0;
          res.chunks++;
          res.text += piece;
        } else if (piece) {
          res.text += piece;
        }
        if (c.finish_reason) res.finishReason = c.finish_reason;
      };
      r.on('data', (s: string) => {
        buf += s;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of block.split('\n')) if (line.startsWith('data: ')) onEvent(line.slice(6));
        }
      });
      r.on('end', () => finish('lost', 'stream_cut'));
      r.on('error', (e) => finish('lost', (e as NodeJS.ErrnoException).code ?? 'stream_error'));
    });
    const timer = setTimeout(() => { finish('lost', 'timeout'); req.destroy(); }, timeoutMs);
    req.on('error', (e) => finish(res.status ? 'lost' : 'failed', (e as NodeJS.ErrnoException).code ?? 'transport'));
    req.end(data);
  });
}
