// Idempotency-Key scope: whose key it is. A key names a request only within its caller's scope, so two callers
// using the same key never see each other's answers; the body hash (producer.ts) catches a reused key.
import type { FastifyRequest } from 'fastify';
import { RequestError } from '../../contracts/errors.ts';
import './caller.ts';

/** The Idempotency-Key header: printable ASCII, 1..255 characters. */
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;
/**
 * Client-chosen scope of an Idempotency-Key when no API keys are configured (e.g. a user or tenant id): keys are
 * looked up per scope. Same alphabet and length as the key.
 */
export const IDEMPOTENCY_SCOPE_HEADER = 'idempotency-scope';

/** The request's Idempotency-Key and its scope, or null when it sent none; 400 on a malformed header. */
export function idempotencyOf(req: FastifyRequest): { key: string; scope: string } | null {
  const key = req.headers['idempotency-key'];
  if (key === undefined) return null;
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY_RE.test(key)) {
    throw new RequestError('invalid_request', { detail: 'Idempotency-Key must be 1..255 printable ASCII characters', param: 'Idempotency-Key' });
  }
  return { key, scope: callerScope(req) };
}

/**
 * Who the caller is, as an idempotency scope: the API key's id once keys are configured (the client cannot
 * choose it), else the Idempotency-Scope header, else "anonymous" (one shared scope, as before keys existed).
 */
export function callerScope(req: FastifyRequest): string {
  if (req.apiKeyId) return `key:${req.apiKeyId}`;
  const scope = req.headers[IDEMPOTENCY_SCOPE_HEADER];
  if (scope === undefined) return 'anonymous';
  if (typeof scope !== 'string' || !IDEMPOTENCY_KEY_RE.test(scope)) {
    throw new RequestError('invalid_request', { detail: 'Idempotency-Scope must be 1..255 printable ASCII characters', param: 'Idempotency-Scope' });
  }
  return `scope:${scope}`;
}
