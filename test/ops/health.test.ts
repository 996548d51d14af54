// Liveness, readiness and SIGTERM over real sockets with real processes: each service answers /livez and /readyz;
// on SIGTERM readiness fails first (while the process still lives and answers), then it drains and exits — 0 when
// the drain finished, 1 when the drain timeout cut off a request that would not end.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../../services/dev/free-port.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startService, type ServiceProcess } from '../helpers/service-process.ts';
import { DATA_MODELS, STORIES } from '../spine/stack.ts';

let redis: TestRedis;
const dir = mkdtempSync(join(tmpdir(), 'swapserve-health-'));
const procs: ServiceProcess[] = [];
const GRACE_MS = 1500;

function configFile(name: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({
    prefix: redis.prefix(), modelRoots: [DATA_MODELS], gateway: { port: 0, requestTimeoutMs: 120_000 },
    budgets: { hostBytes: '16MiB', gpuBytes: '8MiB', scratchBytes: '64MiB' },
    models: [{ id: 'story', path: STORIES }],
    shutdown: { graceMs: GRACE_MS, timeoutMs: 1500 },
    ...extra,
  }));
  return file;
}

const status = async (url: string): Promise<number> => (await fetch(url)).status;

/** Polls `url` until it answers `want` (each answer is a real HTTP exchange); fails after `ms`. */
async function until(url: string, want: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await status(url).catch(() => -1) === want) return;
    if (Date.now() > deadline) throw new Error(`${url} never answered ${want}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** SIGTERM, then: readiness 503 while liveness is still 200 (the grace period), then the exit code. */
async function terminate(p: ServiceProcess, base: string): Promise<number | null> {
  const exited = once(p.child, 'exit');
  p.child.kill('SIGTERM');
  await until(`${base}/readyz`, 503);
  const r = await fetch(`${base}/readyz`);
  assert.equal((await r.json() as { error: { code: string } }).error.code, 'draining');
  assert.equal(await status(`${base}/livez`), 200, 'alive while readiness fails');
  const [code] = await exited;
  return code as number | null;
}

before(async () => { redis = await startRedis(); });
after(async () => {
  await Promise.allSettled(procs.map((p) => p.stop('SIGKILL')));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('health and SIGTERM', () => {
  it('worker: /livez and /readyz on its health port; SIGTERM fails readiness first, then drains and exits 0', async () => {
    const port = await freePort();
    const file = configFile('worker');
    const env = { REDIS_URL: redis.url, SWAPSERVE_HEALTH_PORT: String(port), LOG_LEVEL: 'info' };
    const w = await startService(['worker', '--config', file, '--id', 'hw', '--threads', '1', '--backend', 'cpu'], env, /^worker hw ready/);
    procs.push(w);
    const base = `http://127.0.0.1:${port}`;
    await until(`${base}/readyz`, 200);
    assert.equal(await status(`${base}/livez`), 200);
    assert.equal(await status(`${base}/nope`), 404);
    assert.equal(await terminate(w, base), 0);
  });

  it('scheduler: the same, on its health port', async () => {
    const port = await freePort();
    const file = configFile('scheduler');
    const env = { REDIS_URL: redis.url, SWAPSERVE_HEALTH_PORT: String(port), LOG_LEVEL: 'info' };
    const s = await startService(['scheduler', '--config', file, '--provider', 'none'], env, /^scheduler .* started/);
    procs.push(s);
    const base = `http://127.0.0.1:${port}`;
    await until(`${base}/readyz`, 200);
    assert.equal(await terminate(s, base), 0);
  });

  it('gateway: readiness fails first, and a request that never ends is cut off at the drain timeout (exit 1)', async () => {
    const file = configFile('gateway');
    const gw = await startService(['gateway', '--config', file], { REDIS_URL: redis.url, LOG_LEVEL: 'info' }, /^gateway listening on /);
    procs.push(gw);
    const base = gw.ready.replace('gateway listening on ', '').trim();
    assert.equal(await status(`${base}/readyz`), 200);
    assert.equal(await status(`${base}/livez`), 200);
    // No worker: this request waits for a first token that never comes.
    const pending = fetch(`${base}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'story', prompt: 'x', max_tokens: 2 }),
    }).then(async (r) => `${r.status} ${await r.text()}`, (e: Error) => `failed: ${e.message}`);
    await until(`${base}/status/api/state`, 200);
    const started = Date.now();
    assert.equal(await terminate(gw, base), 1);
    const tookMs = Date.now() - started;
    assert.ok(tookMs >= GRACE_MS && tookMs < GRACE_MS + 1500 + 5000, `exited after ${tookMs} ms`);
    const outcome = await pending;
    assert.doesNotMatch(outcome, /^200/, outcome);
    assert.ok(gw.lines.some((l) => l.includes('drain timed out')), gw.lines.join('\n'));
  });
});
