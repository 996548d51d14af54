// POST /v1/chat/completions and POST /v1/completions: validate, enqueue, follow the request's stream to one outcome.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { resolveModel } from '../../config/config.ts';
import { follow, serverTiming, type Delivered } from '../../client/delivery.ts';
import { RequestError } from '../../../contracts/errors.ts';
import { buildJob, chatRequestSchema, completionRequestSchema, refuseUnsupported, zodToError, type RequestBody } from '../../../contracts/job.ts';
import type { DoneEvent, TokenEvent } from '../../../contracts/stream.ts';
import { keys } from '../../../contracts/queues.ts';
import { requestContext } from '../../telemetry/http.ts';
import { requestSpan } from '../../telemetry/traces.ts';
import type { GatewayContext } from '../context.ts';
import { ChoiceCollector, ChunkWriter, fullBody, outputShape, responseId, type Kind } from '../openai-format.ts';
import { wantsClose } from '../edges.ts';
import { idempotencyOf } from '../idempotency.ts';


/** A client's own x-request-id: kept and echoed when it is a short printable token, refused otherwise. */
const CLIENT_REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;
function clientRequestId(req: FastifyRequest): string | undefined {
  const v = req.headers['x-request-id'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !CLIENT_REQUEST_ID_RE.test(v)) {
    throw new RequestError('invalid_request', { detail: 'x-request-id must be 1-128 printable ASCII characters without spaces', param: 'x-request-id' });
  }
  return v;
}

export async function generateRoutes(app: FastifyInstance, gw: GatewayContext): Promise<void> {
  app.post('/v1/chat/completions', (req, reply) => handle(gw, 'chat', req, reply));
  app.post('/v1/completions', (req, reply) => handle(gw, 'completion', req, reply));
}

async function handle(gw: GatewayContext, kind: Kind, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const arrivalMs = gw.arrival(req);
  if (gw.draining()) throw new RequestError('draining', { retryAfterS: 5 });
  const clientId = clientRequestId(req);
  if (clientId) reply.header('x-request-id', clientId);
  const parsed = (kind === 'chat' ? chatRequestSchema : completionRequestSchema).safeParse(req.body ?? undefined);
  if (!parsed.success) throw zodToError(parsed.error);
  const body = parsed.data;
  // The schema was picked by `kind`, so the body is of that kind.
  const request = { kind, body } as RequestBody;
  refuseUnsupported(request);
  const model = resolveModel(gw.config, body.model);
  if (!model) throw new RequestError('model_not_found', { detail: body.model, param: 'model' });
  const idem = idempotencyOf(req);
  const data = buildJob(request, { model: model.id, maxTokensCap: model.maxTokens, arrivalMs, source: 'gateway', ...(clientId ? { clientRequestId: clientId } : {}) });
  const shape = outputShape(request, data.sampling.n ?? 1, data.sampling.logprobs ?? null);
  // The request's inference span: the enqueue runs inside it, so BullMQ carries the trace to the worker.
  const span = requestSpan({ operation: kind === 'chat' ? 'chat' : 'text_completion', model: model.id, maxTokens: data.sampling.maxTokens, temperature: data.sampling.temperature, topP: data.sampling.topP, seed: data.sampling.seed, stream: !!body.stream, startMs: arrivalMs }, requestContext(req));
  const { requestId } = await span.enqueue(() => gw.producer.submit(data, { maxQueued: model.maxQueued, idempotencyKey: idem?.key, idempotencyScope: idem?.scope, idempotencyTtlS: gw.config.gateway.idempotencyTtlS }));
  // The client's own id is echoed as sent; ours (the job's) is always in x-swapserve-request-id.
  if (!clientId) reply.header('x-request-id', requestId);
  reply.header('x-swapserve-request-id', requestId);
  if (clientId) req.log.info({ requestId, clientRequestId: clientId }, 'client request id');
  span.setResponseId(responseId(kind, requestId));

  // A client that goes away cancels its job (removed if waiting, generation stopped if active).
  const ac = new AbortController();
  let finished = false;
  reply.raw.on('close', () => {
    if (finished) return;
    ac.abort();
    gw.producer.cancel(model.id, requestId, gw.config.streams.ttlS).catch(() => {});
  });
  const events = span.follow(follow(gw.pool, keys(gw.config.prefix).stream(requestId), {
    blockMs: gw.config.gateway.keepAliveMs,
    firstTokenTimeoutMs: gw.config.gateway.requestTimeoutMs,
    signal: ac.signal,
    // A worker lost with nothing delivered: the job goes back to its queue and another worker runs it.
    checkJob: (requeue) => gw.producer.checkJob(model.id, requestId, { requeue, maxRequeues: gw.config.worker.maxStalledCount }),
    // Non-streaming: nothing reaches the client before the outcome, so a retry may always replace a lost attempt.
    buffered: !body.stream,
  }));
  const created = Math.floor(arrivalMs / 1000);
  // On worker_lost the client retries itself: the re-run attempt is cancelled rather than computed for no one.
  const onError = (e: RequestError) => {
    if (e.code === 'worker_lost') gw.producer.cancel(model.id, requestId, gw.config.streams.ttlS).catch(() => {});
  };
  try {
    if (body.stream) {
      const writer = new ChunkWriter(shape, requestId, model.id, created, !!body.stream_options?.include_usage);
      await streamResponse(writer, events, reply, onError);
      return reply;
    }
    const collector = new ChoiceCollector(shape);
    for await (const ev of events) {
      if (ev.type === 'token') collector.add(ev);
      else if (ev.type === 'error') {
        onError(ev.error);
        throw ev.error;
      }
      else if (ev.type === 'done') {
        setPathHeaders(reply, ev);
        return fullBody(requestId, model.id, created, collector, ev);
      }
    }
    throw new RequestError('cancelled');
  } finally {
    finished = true;
  }
}

function setPathHeaders(reply: FastifyReply, ev: TokenEvent | DoneEvent): void {
  reply.header('x-swapserve-path', ev.path);
  if (ev.coldReason) reply.header('x-swapserve-cold-reason', ev.coldReason);
  if ('timings' in ev && ev.timings) reply.header('server-timing', serverTiming(ev.timings));
}

/**
 * SSE: headers wait for the first token (then they carry the path and Server-Timing) unless the request has to
 * wait longer than one keep-alive period; then they go out early and comment lines report progress.
 * An error before the headers is a plain HTTP error; after, an OpenAI error event.
 */
async function streamResponse(writer: ChunkWriter, events: AsyncGenerator<Delivered>, reply: FastifyReply, onError: (e: RequestError) => void): Promise<void> {
  let open = false;
  const raw = reply.raw;
  const write = (s: string) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(s);
  };
  const send = (chunks: object[]) => {
    for (const c of chunks) write(`data: ${JSON.stringify(c)}\n\n`);
  };
  const openStream = (first?: TokenEvent) => {
    if (open) return;
    open = true;
    if (first) setPathHeaders(reply, first);
    reply.hijack();
    raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // A client's `Connection: close` holds for streams too (Node closes the socket after the last event).
      connection: wantsClose(raw.req) ? 'close' : 'keep-alive',
      'x-accel-buffering': 'no',
    });
    send(writer.start());
  };
  for await (const ev of events) {
    switch (ev.type) {
      case 'idle':
        openStream();
        write(': waiting\n\n');
        break;
      case 'progress':
        openStream();
        write(`: ${ev.stage}${ev.totalBytes ? ` ${ev.doneBytes ?? 0}/${ev.totalBytes} bytes` : ''}\n\n`);
        break;
      case 'token':
        openStream(ev);
        send(writer.token(ev));
        break;
      case 'done':
        openStream();
        send(writer.end(ev));
        write('data: [DONE]\n\n');
        raw.end();
        return;
      case 'error':
        onError(ev.error);
        if (!open) throw ev.error;
        write(`data: ${JSON.stringify(ev.error.toBody())}\n\n`);
        raw.end();
        return;
    }
  }
  // Aborted by the client: nothing more to send.
  if (open) raw.end();
  else throw new RequestError('cancelled');
}
