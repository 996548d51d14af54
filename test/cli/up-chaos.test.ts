// Chaos under `swapserve up` (issue 11): its leading scheduler SIGKILLed, the standby leads within the lease TTL
// (5 s), the dead one is restarted, with an error line and a restart counted on /metrics; models still get placed.
// A sticky device error (test hooks) in a move or in an engine pass: the worker drains, exits 1, is restarted, and
// the requests it had accepted complete.
// Real processes (up, its worker and scheduler), real Redis, real sockets, stories260K.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterKeys } from '../../contracts/cluster.ts';
import { connect } from '../../services/client/queues.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { STORIES260K_GGUF } from '../helpers/data.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { BIN } from '../helpers/worker-process.ts';
import { parseConfig } from '../../services/config/config.ts';
import { startGateway } from '../../services/gateway/server.ts';
import { restartDelayMs } from '../../services/cli/supervise.ts';

let redis: TestRedis;
let dir: string;
let up: ChildProcess | null = null;
before(async () => {
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'swapserve-up-chaos-'));
});
after(async () => {
  await stopUp();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The pid of the process whose command line holds `needle` (Linux /proc). */
async function pidOf(needle: string): Promise<number | null> {
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    if (cmd.split('\0').includes(needle)) return Number(d);
  }
  return null;
}

async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function complete(url: string, model: string): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: 4 }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Starts `swapserve up` on a fresh prefix with two stories260K models; resolves once /readyz is 200. */
async function startUp(env: NodeJS.ProcessEnv = {}): Promise<{ url: string; prefix: string; pid: number; stderr: () => string }> {
  const prefix = redis.prefix();
  const port = await freePort();
  const file = join(dir, `config-${prefix.replace(/\W/g, '')}.json`);
  await writeFile(file, JSON.stringify({
    prefix, dataDir: dir, modelRoots: [join(STORIES260K_GGUF, '..')],
    gateway: { port }, budgets: { hostBytes: '16MiB', gpuBytes: '4MiB', scratchBytes: '64MiB' },
    models: [{ id: 'story-a', path: STORIES260K_GGUF }, { id: 'story-b', path: STORIES260K_GGUF }],
  }));
  let err = '';
  up = spawn(process.execPath, [BIN, 'up', '--config', file, '--workers', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, REDIS_URL: redis.url, SWAPSERVE_BACKEND: 'cpu', ...env },
  });
  up.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const url = `http://127.0.0.1:${port}`;
  // Ready once a scheduler leads.
  await until('readiness', 300_000, async () => (await fetch(`${url}/readyz`)).status === 200);
  return { url, prefix, pid: up.pid!, stderr: () => err };
}

async function stopUp(): Promise<void> {
  if (!up || up.exitCode !== null || up.signalCode !== null) return;
  const exited = once(up, 'exit');
  up.kill('SIGTERM');
  await exited;
}

describe('swapserve up supervises its scheduler', () => {
  it('a scheduler SIGKILL is healed within the lease TTL: logged, counted, models placed again', { timeout: 420_000 }, async (t) => {
    const { url, prefix, pid: upPid, stderr } = await startUp();
    const conn = connect(redis.url);
    const k = clusterKeys(prefix);
    try {
      assert.equal(await complete(url, 'story-a'), 200);
      const epoch0 = Number(await conn.get(k.epoch()));
      const holder = await conn.get(k.leader());
      assert.match(holder ?? '', new RegExp(`^up-${upPid}-scheduler-[01]$`));
      const name = holder!.slice(`up-${upPid}-`.length);

      const pid = await until('the scheduler process', 10_000, () => pidOf(holder!));
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();
      // A new term (the standby took the lease up released for its dead holder) within the lease TTL.
      await until('a new leader', 30_000, async () => Number(await conn.get(k.epoch())) > epoch0);
      const healedMs = Date.now() - killedAt;
      t.diagnostic(`scheduler SIGKILL healed (new leader term) ${healedMs} ms after the kill`);
      assert.ok(healedMs < 5000, `healed ${healedMs} ms after the kill (lease TTL 5000 ms)`);
      assert.notEqual(await conn.get(k.leader()), holder, 'the standby leads');
      // Visible: an error line and a counted restart; the dead one is restarted (as the new standby).
      assert.match(stderr(), new RegExp(`ERROR ${name} exited \\(SIGKILL\\)`));
      const again = await until('the restarted scheduler', 60_000, () => pidOf(holder!));
      assert.notEqual(again, pid);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, new RegExp(`swapserve_supervisor_restarts_total\\{[^}]*swapserve_process="${name}"[^}]*\\} 1`));
      assert.match(metrics, /swapserve_scheduler_leader(\{[^}]*\})? 1/);
      // The new leader places a model that is not on the worker's GPU tier yet.
      assert.equal(await complete(url, 'story-b'), 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    } finally {
      conn.disconnect();
      await stopUp();
    }
  });

  it('a sticky device error: the worker puts its job back, exits 1, is restarted, and the request completes', { timeout: 420_000 }, async () => {
    const marker = join(dir, 'sticky-once');
    await writeFile(marker, '');
    const { url, stderr } = await startUp({ SWAPSERVE_TEST_STICKY_ONCE: marker });
    try {
      // The first move (this request's load) fails sticky on worker-0: it drains and exits 1; up restarts it; the
      // job it put back is run by the restarted worker (the only one), so the client gets its answer.
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'story-a', prompt: 'Once upon a time', max_tokens: 4 }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = await res.json() as { usage: { completion_tokens: number } };
      assert.equal(body.usage.completion_tokens, 4);
      assert.match(stderr(), /TEST HOOK armed/);
      assert.match(stderr(), /a sticky device error made the cpu backend unusable; draining, then exiting 1/);
      assert.match(stderr(), /ERROR worker-0 exited \(code 1\)/);
    } finally {
      await stopUp();
    }
  });

  it('a sticky device error in an engine pass: 4 concurrent requests all 200, the worker exits 1, is restarted, serves again', { timeout: 420_000 }, async () => {
    const marker = join(dir, 'sticky-pass-once');
    await writeFile(marker, '');
    const { url, stderr } = await startUp({ SWAPSERVE_TEST_STICKY_PASS_ONCE: marker });
    try {
      // The first engine pass on worker-0 (the prefill of whichever of these requests comes first) fails with a
      // sticky error: the runtime is unusable, every job worker-0 accepted is put back, it exits 1, up restarts it,
      // and the restarted worker (the only one) answers all four. None had received anything, so none sees an error.
      const ask = async (i: number) => {
        const res = await fetch(`${url}/v1/completions`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'story-a', prompt: `Once upon a time ${i}`, max_tokens: 4 }),
        });
        const text = await res.text();
        return { status: res.status, text };
      };
      const results = await Promise.all([1, 2, 3, 4].map(ask));
      for (const r of results) {
        assert.equal(r.status, 200, r.text);
        assert.equal((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 4);
      }
      const err = stderr();
      assert.match(err, /TEST HOOK armed \(.*sticky-pass-once\): the next engine pass fails with cuda_sticky/);
      assert.match(err, /a sticky device error made the cpu backend unusable; draining, then exiting 1/);
      assert.match(err, /ERROR worker-0 exited \(code 1\)/);
      assert.equal(err.match(/TEST HOOK armed/g)?.length, 1, 'armed in the first worker process only');
      // The restarted worker serves a new request too.
      const again = await ask(5);
      assert.equal(again.status, 200, again.text);
    } finally {
      await stopUp();
    }
  });
});

describe('readiness without a scheduler', () => {
  it('/readyz is 503 not_ready while no scheduler holds the lease (when one is required), 200 once one does', async () => {
    const prefix = redis.prefix();
    const gw = await startGateway(parseConfig({ prefix, modelRoots: ['/tmp'], gateway: { port: 0 } }, { REDIS_URL: redis.url }), { requireScheduler: true });
    const conn = connect(redis.url);
    try {
      const r = await fetch(`${gw.url}/readyz`);
      assert.equal(r.status, 503);
      const body = await r.json() as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'not_ready');
      assert.match(body.error.message, /no scheduler holds the leader lease/);
      await conn.set(clusterKeys(prefix).leader(), 'some-scheduler', 'PX', 5000);
      assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
    } finally {
      conn.disconnect();
      await gw.close();
    }
  });
});

describe('restart backoff', () => {
  it('doubles from 250 ms per restart in a row, capped at 10 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((i) => restartDelayMs(i)), [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert.equal(restartDelayMs(3, { baseMs: 100, maxMs: 300 }), 300);
  });
});
