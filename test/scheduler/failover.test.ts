// Scheduler failover over a real Redis: two `swapserve scheduler` processes, one leads; SIGKILL it and the
// standby takes the lease within the lease time and keeps deciding (commands with a higher fencing epoch).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { clusterKeys } from '../../contracts/cluster.ts';
import { connect, queueOptions, type RedisClient } from '../../services/client/queues.ts';
import { queueName } from '../../contracts/queues.ts';
import { LeaderLease } from '../../services/scheduler/lease.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SimWorker } from './sim-worker.ts';

const LEASE_MS = 1000;

let redis: TestRedis;
let dir: string;
before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'swapserve-sched-'));
});
after(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A scheduler process whose log lines (JSON on stdout, anything on stderr) can be awaited. */
class SchedulerProc {
  readonly child: ChildProcess;
  private buf = '';
  private readonly waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  constructor(id: string, config: string) {
    this.child = spawn(process.execPath, [
      'bin/swapserve.js', 'scheduler', '--config', config, '--id', id, '--lease-ms', String(LEASE_MS), '--tick-ms', '200',
      '--poll-ms', '100', '--provider', 'none',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REDIS_URL: '', LOG_LEVEL: 'info' } });
    const onData = (d: Buffer): void => {
      this.buf += d.toString();
      for (const w of [...this.waiters]) {
        const m = this.buf.match(w.re);
        if (m) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
  }
  line(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.buf.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}

describe('leader lease', () => {
  it('one holder at a time; only the holder renews or releases; each term gets a higher epoch', async () => {
    const r: RedisClient = connect(redis.url);
    const prefix = redis.prefix();
    const a = new LeaderLease(r, 'a', { prefix, leaseMs: 60_000 });
    const b = new LeaderLease(r, 'b', { prefix, leaseMs: 60_000 });
    const now = (): number => performance.now();
    try {
      const e1 = await a.tryAcquire(now);
      assert.ok(e1 > 0 && a.isLeader(now()));
      assert.equal(await b.tryAcquire(now), 0);
      assert.equal(b.isLeader(now()), false);
      assert.equal(await b.renew(now), false);
      await b.release(); // not b's: must not drop a's lease
      assert.equal(await r.get(clusterKeys(prefix).leader()), 'a');
      assert.equal(await a.renew(now), true);
      await a.release();
      assert.equal(a.isLeader(now()), false);
      const e2 = await b.tryAcquire(now);
      assert.equal(e2, e1 + 1);
    } finally {
      await r.quit();
    }
  });
});

describe('scheduler failover', () => {
  it('kill the leader: the standby takes over within the lease time and keeps deciding', { timeout: 60_000 }, async () => {
    const prefix = redis.prefix();
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({
      redisUrl: redis.url, prefix, modelRoots: [dir],
      models: [{ id: 'A', path: 'a.gguf' }, { id: 'B', path: 'b.gguf' }],
    }));
    const worker = new SimWorker('sim1', redis.url, prefix, { A: 30_000, B: 30_000 });
    const conn = connect(redis.url);
    const qa = new Queue(queueName('A'), queueOptions(conn, prefix));
    const qb = new Queue(queueName('B'), queueOptions(conn, prefix));
    const procs = [new SchedulerProc('s1', config), new SchedulerProc('s2', config)];
    try {
      await worker.start();
      const [first] = await Promise.race(procs.map((p, i) => p.line(/leader, epoch (\d+)/).then((m) => [i, m] as const)));
      const leader = procs[first];
      const standby = procs[1 - first];
      const keys = clusterKeys(prefix);
      assert.equal(await conn.get(keys.leader()), first === 0 ? 's1' : 's2');

      // The leader places A: it is nowhere, so a disk load (parking a host copy), a swap-in, then consume.
      const loadA = worker.next((c) => c.kind === 'swap_in');
      await qa.add('job', { n: 1 });
      const a = await loadA;
      assert.equal('model' in a && a.model, 'A');
      await worker.next((c) => c.kind === 'consume' && c.model === 'A');
      const epoch1 = a.epoch;

      // Kill the leader without letting it release the lease.
      const killedAt = performance.now();
      await leader.kill('SIGKILL');
      const m = await standby.line(/leader, epoch (\d+)/);
      const takeoverMs = performance.now() - killedAt;
      assert.ok(Number(m[1]) > epoch1, `new epoch ${m[1]} must exceed ${epoch1}`);
      // Renewed every LEASE_MS/3, retried every LEASE_MS/5: the lease lapses within LEASE_MS of the kill.
      assert.ok(takeoverMs <= LEASE_MS * 1.5, `takeover took ${takeoverMs.toFixed(0)} ms (lease ${LEASE_MS} ms)`);

      // The new leader keeps deciding: B gets placed, with the new epoch; A (already on the GPU) is left alone.
      const before = worker.commands.length;
      const loadB = worker.next((c) => c.kind === 'swap_in');
      await qb.add('job', { n: 1 });
      const b = await loadB;
      assert.equal('model' in b && b.model, 'B');
      assert.equal(b.epoch, Number(m[1]));
      await worker.next((c) => c.kind === 'consume' && c.model === 'B');
      const after = worker.commands.slice(before);
      assert.ok(after.every((c) => !('model' in c) || c.model !== 'A'), `A was touched again: ${JSON.stringify(after)}`);
      assert.deepEqual(worker.models.A.residency, 'gpu');
    } finally {
      await Promise.allSettled(procs.map((p) => p.kill('SIGTERM')));
      await worker.stop();
      await Promise.allSettled([qa.close(), qb.close()]);
      await conn.quit();
    }
  });

  it('a paused leader (SIGSTOP past its lease) sends nothing when it resumes; the new leader does', { timeout: 60_000 }, async () => {
    const prefix = redis.prefix();
    const config = join(dir, 'config-pause.json');
    writeFileSync(config, JSON.stringify({
      redisUrl: redis.url, prefix, modelRoots: [dir],
      models: [{ id: 'A', path: 'a.gguf' }, { id: 'B', path: 'b.gguf' }, { id: 'C', path: 'c.gguf' }],
    }));
    const worker = new SimWorker('sim2', redis.url, prefix, { A: 30_000, B: 30_000, C: 30_000 });
    const conn = connect(redis.url);
    const keys = clusterKeys(prefix);
    const procs = [new SchedulerProc('p1', config), new SchedulerProc('p2', config)];
    try {
      await worker.start();
      const [first] = await Promise.race(procs.map((p, i) => p.line(/leader, epoch (\d+)/).then((m) => [i, m] as const)));
      const old = procs[first];
      const standby = procs[1 - first];
      const placedA = worker.next((c) => c.kind === 'consume' && c.model === 'A');
      await conn.lpush(`${prefix}:${queueName('A')}:wait`, 'job-a');
      const epochOld = (await placedA).epoch;

      // Freeze the leader (a long GC pause, a stopped VM): the standby takes over when the lease lapses.
      old.child.kill('SIGSTOP');
      const m = await standby.line(/leader, epoch (\d+)/);
      const epochNew = Number(m[1]);
      assert.ok(epochNew > epochOld);
      const tail = ((await conn.xrevrange(keys.commands('sim2'), '+', '-', 'COUNT', 1)) as [string, string[]][])[0][0];

      // Demand arrives while the old leader is frozen; then it resumes with that demand (and B's) in view.
      await conn.lpush(`${prefix}:${queueName('B')}:wait`, 'job-b');
      await worker.next((c) => c.kind === 'consume' && c.model === 'B');
      old.child.kill('SIGCONT');
      await old.line(/standby/);
      const placedC = worker.next((c) => c.kind === 'consume' && c.model === 'C');
      await conn.lpush(`${prefix}:${queueName('C')}:wait`, 'job-c');
      await placedC;

      // Every command written since the takeover carries the new epoch: the resumed leader sent none.
      const since = (await conn.xrange(keys.commands('sim2'), `(${tail}`, '+')) as [string, string[]][];
      const epochs = since.map(([, f]) => (JSON.parse(f[1]) as { epoch: number }).epoch);
      assert.ok(epochs.length >= 6, `commands since the takeover: ${epochs.length}`);
      assert.deepEqual([...new Set(epochs)], [epochNew]);
    } finally {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGCONT');
      await Promise.allSettled(procs.map((p) => p.kill('SIGTERM')));
      await worker.stop();
      await conn.quit();
    }
  });
});
