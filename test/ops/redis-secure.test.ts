// Redis with a password (requirepass) and Redis over TLS (a CA and server certificate made here with openssl):
// a request is answered through the whole stack in both — worker and gateway processes, BullMQ, token streams,
// the rate limiter — and through the SDK; a connection without the password or the CA is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { connect } from '../../services/client/queues.ts';
import { redisSecurity } from '../../services/client/redis-security.ts';
import { Client } from '../../services/sdk/client.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';
import { DATA_MODELS, STORIES } from '../spine/stack.ts';

const dir = mkdtempSync(join(tmpdir(), 'swapserve-redis-tls-'));
const started: { redis: TestRedis[]; procs: ServiceProcess[] } = { redis: [], procs: [] };

after(async () => {
  await Promise.allSettled(started.procs.map((p) => p.stop()));
  await Promise.allSettled(started.redis.map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** A CA and a server certificate it signed for 127.0.0.1 (subjectAltName IP), as PEM files in `dir`. */
function makeCertificates(): { caFile: string; certFile: string; keyFile: string } {
  const f = (n: string) => join(dir, n);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=swapserve test CA');
  ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ossl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('ext.cnf'));
  return { caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

/** Worker + gateway processes on `redis` (env carries the rest), one chat completion through them, and one via the SDK. */
async function answerThroughStack(redis: TestRedis, env: Record<string, string>, label: string): Promise<void> {
  const file = join(dir, `${label}.yaml`);
  const prefix = redis.prefix();
  writeFileSync(file, stringify({
    prefix, modelRoots: [DATA_MODELS], gateway: { port: 0 }, worker: { concurrency: 2 },
    budgets: { hostBytes: '16MiB', gpuBytes: '8MiB', scratchBytes: '64MiB' },
    models: [{ id: 'story', path: STORIES }],
    // A rate-limited key: the limiter's counters live in the same (secured) Redis.
    auth: { keys: [{ id: 'k', keyEnv: 'TEST_KEY', rateLimit: { max: 100, windowMs: 60_000 } }] },
  }));
  const all = { ...env, REDIS_URL: redis.url, TEST_KEY: 'sk-test-key-123', LOG_LEVEL: 'warn' };
  started.procs.push(await startService(['worker', '--config', file, '--id', `w-${label}`, '--threads', '1', '--backend', 'cpu'], all, new RegExp(`^worker w-${label} ready`)));
  const gw = await startService(['gateway', '--config', file], all, /^gateway listening on /);
  started.procs.push(gw);
  const url = gw.ready.replace('gateway listening on ', '').trim();
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-key-123' },
    body: JSON.stringify({ model: 'story', messages: [{ role: 'user', content: 'Once' }], max_tokens: 6, temperature: 0 }),
  });
  const body = await r.json() as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.usage.completion_tokens, 6);
  assert.equal(r.headers.get('x-ratelimit-remaining'), '99');

  // The SDK in this process connects the same way (URL + env).
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const sdk = new Client({ redisUrl: redis.url, prefix });
    try {
      const out = await sdk.complete({ model: 'story', prompt: 'Once', max_tokens: 4, temperature: 0 });
      assert.equal(out.usage.completionTokens, 4);
    } finally {
      await sdk.close();
    }
  } finally {
    process.env = saved;
  }
}

/** Whether a PING on a fresh connection to `url` (with `env`) succeeds before `ms`. */
async function pings(url: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const saved = { ...process.env };
  process.env = { ...saved, ...env };
  const c = connect(url);
  process.env = saved;
  try {
    return (await Promise.race([c.ping(), new Promise((r) => setTimeout(() => r('timeout'), 3000))])) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

describe('Redis with a password', () => {
  it('answers a request through the stack, and refuses a connection without the password', async () => {
    const redis = await startRedis({ password: 'pa:ss w@rd' });
    started.redis.push(redis);
    assert.match(redis.url, /^redis:\/\/:pa%3Ass%20w%40rd@127\.0\.0\.1:\d+$/);
    assert.equal(await pings(redis.url.replace(/:\/\/[^@]*@/, '://'), {}), false);
    // The password may come from env instead of the URL (a Secret, not a URL in a config file).
    assert.equal(await pings(redis.url.replace(/:\/\/[^@]*@/, '://'), { REDIS_PASSWORD: 'pa:ss w@rd' }), true);
    await answerThroughStack(redis, {}, 'auth');
  });
});

describe('Redis over TLS with a self-signed CA', () => {
  it('answers a request through the stack, and refuses to trust the server without the CA', async () => {
    const certs = makeCertificates();
    const redis = await startRedis({ tls: certs, password: 'tls-secret' });
    started.redis.push(redis);
    assert.match(redis.url, /^rediss:\/\//);
    assert.equal(await pings(redis.url, {}), false, 'an unknown CA is not trusted');
    assert.equal(await pings(redis.url, { REDIS_TLS_CA_FILE: certs.caFile }), true);
    await answerThroughStack(redis, { REDIS_TLS_CA_FILE: certs.caFile }, 'tls');
  });

  it('says which setting is wrong instead of connecting without TLS', () => {
    assert.throws(() => redisSecurity('redis://127.0.0.1:1', { REDIS_TLS_CA_FILE: '/x' }), /not rediss:\/\//);
    assert.throws(() => redisSecurity('rediss://127.0.0.1:1', { REDIS_TLS_CA_FILE: join(dir, 'missing.pem') }), /REDIS_TLS_CA_FILE: cannot read/);
  });
});
