// DNS-rebinding guard: a gateway bound to loopback answers only requests whose Host names it (configurable).
import { isIP } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../../contracts/errors.ts';
import type { Config } from '../config/config.ts';

/** Names a loopback gateway answers by default (a browser page on evil.example rebound to 127.0.0.1 sends its own). */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** The Host names allowed, or null for any: `allowedHosts` as configured, else loopback names on a loopback bind. */
export function allowedHosts(gw: Config['gateway']): Set<string> | null {
  const list = gw.allowedHosts ?? (isLoopback(gw.host) ? [...LOOPBACK_NAMES, gw.host] : null);
  if (list === null || list.includes('*')) return null;
  return new Set(list.map((h) => h.replace(/^\[|\]$/g, '').toLowerCase()));
}

/** The name part of a Host header (port and IPv6 brackets removed), lower-cased. */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/**
 * Refuses requests without a Host (400; HTTP/1.1 requires one) and, when a list applies, those whose Host is not
 * on it (403 host_not_allowed), before any route or plugin runs.
 */
export function hostGuard(app: FastifyInstance, gw: Config['gateway']): void {
  const allowed = allowedHosts(gw);
  app.addHook('onRequest', async (req) => {
    const host = req.headers.host;
    if (typeof host !== 'string' || host.trim() === '') {
      if (req.raw.httpVersion === '1.0' && !allowed) return;
      throw new RequestError('invalid_request', { detail: 'the Host header is missing', param: 'Host' });
    }
    if (allowed && !allowed.has(hostName(host))) {
      throw new RequestError('host_not_allowed', { detail: hostName(host).slice(0, 100), param: 'Host' });
    }
  });
}
