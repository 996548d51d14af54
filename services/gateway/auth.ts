// Access control for the gateway: API keys (hashed, constant-time), per-key model allowlists and Redis-backed rate
// limits, the admin boundary around /queues, /metrics and the status data, and CORS. No keys: the open local default.
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { resolveModel, type Config } from '../config/config.ts';
import { RequestError } from '../../contracts/errors.ts';
import type { RedisClient } from '../client/queues.ts';
import { decorateCaller } from './caller.ts';

/** A configured key as the gateway holds it: the digest only, never the secret. */
interface HeldKey {
  id: string;
  digest: Buffer;
  models: Set<string> | 'all';
  limit: { max: number; windowMs: number } | null;
  admin: boolean;
}

/** Routes anyone may call even with keys configured (probes, the static status page shell, CORS preflights). */
const PUBLIC = new Set(['/healthz', '/readyz', '/livez', '/']);
/** Routes whose JSON body names a model the key must be allowed to use. */
const MODEL_ROUTES = new Set(['/v1/chat/completions', '/v1/completions']);
/** bull-board's Redis page: server version, memory, clients (admin only). */
const REDIS_STATS = '/queues/api/redis/stats';

const held = new WeakMap<FastifyRequest, HeldKey>();

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The bearer token (`Authorization: Bearer K`), or the password of HTTP Basic (browsers on /queues), or null. */
function presented(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const [scheme, value] = h.split(/\s+/, 2);
  if (!value) return null;
  if (/^bearer$/i.test(scheme)) return value;
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : null;
  }
  return null;
}

/** Compares the token's digest with every key's in constant time (no early exit), so timing says nothing. */
function lookup(keys: HeldKey[], token: string): HeldKey | null {
  const digest = sha256(token);
  let found: HeldKey | null = null;
  for (const k of keys) if (timingSafeEqual(k.digest, digest) && found === null) found = k;
  return found;
}

/** True when this request may see admin-only data: an admin key, or any caller while no keys are configured. */
export function isAdmin(req: FastifyRequest, config: Config): boolean {
  return config.auth.keys.length === 0 || held.get(req)?.admin === true;
}

/** Whether a key (or the open default: null) may use a model. */
export function keyAllows(req: FastifyRequest, model: string): boolean {
  const k = held.get(req);
  return !k || k.models === 'all' || k.models.has(model);
}

/**
 * Answers a refusal from a hook. Sent here rather than thrown: bull-board's routes have their own error handler,
 * which would turn a thrown refusal into a 500.
 */
function refuse(reply: FastifyReply, e: RequestError): FastifyReply {
  // Browsers prompt for Basic credentials on /queues; API clients read the OpenAI error body.
  if (e.status === 401) reply.header('www-authenticate', 'Bearer realm="swapserve", Basic realm="swapserve"');
  return reply.code(e.status).send(e.toBody());
}

const loopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** Whether the gateway binds a non-loopback address with no keys (the caller logs the warning). */
export function openOnNetwork(config: Config): boolean {
  return config.auth.keys.length === 0 && !loopback(config.gateway.host);
}

async function authPlugin(app: FastifyInstance, opts: { config: Config; redis: RedisClient }): Promise<void> {
  const { auth } = opts.config;
  if (!app.hasRequestDecorator('apiKeyId')) decorateCaller(app);
  if (auth.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: auth.corsOrigins.includes('*') ? '*' : auth.corsOrigins,
      allowedHeaders: ['authorization', 'content-type', 'idempotency-key'],
      exposedHeaders: ['x-request-id', 'x-swapserve-request-id', 'x-swapserve-path', 'retry-after', 'server-timing'],
    });
  }
  if (auth.keys.length === 0) return;

  const keys: HeldKey[] = auth.keys.map((k) => ({
    id: k.id,
    digest: Buffer.from(k.sha256!, 'hex'),
    models: k.models.includes('*') ? 'all' : new Set(k.models),
    limit: k.rateLimit === undefined ? auth.rateLimit : k.rateLimit,
    admin: k.admin,
  }));

  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0];
    if (req.method === 'OPTIONS') return;
    const open = PUBLIC.has(path) || (path === '/metrics' && auth.metrics === 'open');
    const token = presented(req);
    if (token === null) {
      if (open) return;
      return refuse(reply, new RequestError('invalid_api_key', { detail: 'send `Authorization: Bearer <key>`' }));
    }
    const key = lookup(keys, token);
    if (!key) {
      if (open) return;
      return refuse(reply, new RequestError('invalid_api_key', { detail: 'the key is not valid' }));
    }
    req.apiKeyId = key.id;
    held.set(req, key);
    if (key.admin) return;
    if (path === '/metrics' && auth.metrics === 'admin') return refuse(reply, new RequestError('admin_required', { detail: 'GET /metrics' }));
    if (path === REDIS_STATS) return refuse(reply, new RequestError('admin_required', { detail: `GET ${REDIS_STATS}` }));
    // bull-board changes state with PUT/POST/DELETE (pause, empty, retry, update job data): admin only.
    if ((path === '/queues' || path.startsWith('/queues/')) && req.method !== 'GET' && req.method !== 'HEAD') {
      return refuse(reply, new RequestError('admin_required', { detail: `${req.method} /queues` }));
    }
  });

  // After body parsing: a key limited to some models gets 403 for another (an unknown model still gets the route's 404).
  app.addHook('preValidation', async (req) => {
    const path = req.url.split('?')[0];
    const model = req.method === 'POST' && MODEL_ROUTES.has(path) ? (req.body as { model?: unknown } | null)?.model
      : req.method === 'GET' && path.startsWith('/v1/models/') ? decodeURIComponent(path.slice('/v1/models/'.length)) : undefined;
    // An alias is allowed as the model it names.
    if (typeof model === 'string' && !keyAllows(req, resolveModel(opts.config, model)?.id ?? model)) throw new RequestError('model_not_allowed', { detail: model, param: 'model' });
  });
  // GET /v1/models lists only the models the key may use (an alias entry as the model it names, its root).
  app.addHook('preSerialization', async (req, _reply, payload: unknown) => {
    const list = payload as { object?: string; data?: { id: string; root?: string }[] } | null;
    if (req.url.split('?')[0] !== '/v1/models' || list?.object !== 'list' || !Array.isArray(list.data)) return payload;
    return { ...list, data: list.data.filter((m) => keyAllows(req, m.root ?? m.id)) };
  });

  // Counted per key in Redis (@fastify/rate-limit's Redis store), so the limit holds across gateway replicas.
  await app.register(rateLimit, {
    global: true,
    redis: opts.redis,
    nameSpace: `${opts.config.prefix.replace(/[{}]/g, '')}:ratelimit:`,
    // Unlimited keys, and bull-board (its own error handler would answer the 429 as a 500; it is read-only or admin).
    allowList: (req) => held.get(req)?.limit == null || req.url.startsWith('/queues'),
    keyGenerator: (req) => req.apiKeyId ?? 'anonymous',
    max: (req) => held.get(req)?.limit?.max ?? 1,
    timeWindow: (req) => held.get(req)?.limit?.windowMs ?? 60_000,
    // Redis down: the limit cannot be counted, the request is not refused for it (the route reports Redis itself).
    skipOnError: true,
    errorResponseBuilder: (req, ctx) => new RequestError('rate_limited', {
      detail: `${ctx.max} requests per ${(held.get(req)?.limit?.windowMs ?? 60_000) / 1000} s for key "${req.apiKeyId}"`,
      retryAfterS: Math.max(1, Math.ceil(ctx.ttl / 1000)),
    }),
  });
}

/** Registered first in buildApp, so its hooks run before every route (fastify-plugin: not encapsulated). */
export const auth = fp(authPlugin, { name: 'swapserve-auth' });
