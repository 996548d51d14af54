// Redis AUTH and TLS for every connection swapserve makes: credentials from the URL or env, TLS from `rediss://`
// (or `rediss-cluster://`) with a CA, and optionally a client certificate, from files named in env.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

/**
 * The env variables read here (one place; every service, the SDK and BullMQ connect through `connect()`):
 * - REDIS_USERNAME / REDIS_PASSWORD: ACL user and password when the URL carries none (keeps secrets out of URLs).
 * - REDIS_TLS_CA_FILE: PEM bundle of the CA that signed the server's certificate (self-signed deployments).
 * - REDIS_TLS_CERT_FILE / REDIS_TLS_KEY_FILE: a client certificate, for servers run with `tls-auth-clients yes`.
 * - REDIS_TLS_SERVERNAME: the name to verify the server's certificate against, when it differs from the host.
 */
export interface RedisSecurity {
  username?: string;
  password?: string;
  tls?: ConnectionOptions;
}

export class RedisConfigError extends Error {
  override name = 'RedisConfigError';
}

const files = new Map<string, Buffer>();
function readPem(variable: string, path: string): Buffer {
  let b = files.get(path);
  if (!b) {
    try {
      b = readFileSync(path);
    } catch (e) {
      throw new RedisConfigError(`${variable}: cannot read ${path}: ${(e as Error).message}`);
    }
    files.set(path, b);
  }
  return b;
}

/** Whether a URL asks for TLS. */
export const wantsTls = (url: string): boolean => /^rediss(-cluster)?:\/\//i.test(url);

/** Credentials in a URL's userinfo (`redis://user:pass@host`), URL-decoded; empty parts are absent. */
export function urlCredentials(url: string): { username?: string; password?: string } {
  const m = /^[a-z-]+:\/\/([^@/]*)@/i.exec(url);
  if (!m) return {};
  const [user, ...rest] = m[1].split(':');
  const pass = rest.join(':');
  return { ...(user ? { username: decodeURIComponent(user) } : {}), ...(pass ? { password: decodeURIComponent(pass) } : {}) };
}

/** AUTH and TLS options for a connection to `url`, from the URL and env (URL credentials win). */
export function redisSecurity(url: string, env: NodeJS.ProcessEnv = process.env): RedisSecurity {
  const fromUrl = urlCredentials(url);
  const out: RedisSecurity = {};
  const username = fromUrl.username ?? env.REDIS_USERNAME;
  const password = fromUrl.password ?? env.REDIS_PASSWORD;
  if (username) out.username = username;
  if (password) out.password = password;
  const tlsFiles = ['REDIS_TLS_CA_FILE', 'REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE'].filter((v) => env[v]);
  if (!wantsTls(url)) {
    if (tlsFiles.length) throw new RedisConfigError(`${tlsFiles.join(', ')} set but the Redis URL is not rediss:// (TLS would not be used)`);
    return out;
  }
  const tls: ConnectionOptions = {};
  if (env.REDIS_TLS_CA_FILE) tls.ca = readPem('REDIS_TLS_CA_FILE', env.REDIS_TLS_CA_FILE);
  if (!!env.REDIS_TLS_CERT_FILE !== !!env.REDIS_TLS_KEY_FILE) throw new RedisConfigError('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together');
  if (env.REDIS_TLS_CERT_FILE) {
    tls.cert = readPem('REDIS_TLS_CERT_FILE', env.REDIS_TLS_CERT_FILE);
    tls.key = readPem('REDIS_TLS_KEY_FILE', env.REDIS_TLS_KEY_FILE!);
  }
  if (env.REDIS_TLS_SERVERNAME) tls.servername = env.REDIS_TLS_SERVERNAME;
  out.tls = tls;
  return out;
}
