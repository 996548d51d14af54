// The stack `swapserve bench multigpu` measures: `swapserve up` itself (one worker per GPU with its split host budget
// and NUMA binding, the gateway, a leader and a standby scheduler) on a private Redis, every service exporting its
// spans to the bench's receiver. The bench reads worker states from Redis as the scheduler does; it sends no commands.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;

export class UpStack {
  private up: ChildProcess | null = null;
  private conn: RedisClient | null = null;
  /** Everything `up` printed (its placement lines among them). */
  out = '';

  constructor(
    private readonly o: {
      cfgFile: string; redisUrl: string; prefix: string; port: number; env: NodeJS.ProcessEnv;
      /** CPU workers (`up --workers N`); null: one per GPU (the config's host.gpus). */
      cpuWorkers: number | null;
      log: (line: string) => void;
    },
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.o.port}`;
  }

  /** Starts `up`; resolves once a scheduler leads and `workers` workers have registered with their host pools pinned. */
  async start(workers: number, timeoutMs = 240_000): Promise<WorkerState[]> {
    this.conn = connect(this.o.redisUrl);
    const args = [BIN, 'up', '--config', this.o.cfgFile, ...(this.o.cpuWorkers === null ? [] : ['--workers', String(this.o.cpuWorkers)])];
    this.up = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.o.env });
    const keep = (d: Buffer) => {
      this.out += d.toString();
      process.stderr.write(d);
    };
    this.up.stdout!.on('data', keep);
    this.up.stderr!.on('data', keep);
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.up.exitCode !== null) throw new Error(`swapserve up exited (${this.up.exitCode}):\n${this.out.slice(-3000)}`);
      const ready = await fetch(`${this.url}/readyz`).then((r) => r.status === 200, () => false);
      const ws = ready ? await this.workers() : [];
      if (ws.length === workers && ws.every((w) => w.hostReady !== false && w.healthy)) return ws;
      if (Date.now() > end) throw new Error(`stack not ready after ${timeoutMs} ms (${ws.length}/${workers} workers ready):\n${this.out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async workers(): Promise<WorkerState[]> {
    const k = clusterKeys(this.o.prefix);
    const ids = await this.conn!.zrange(k.workers(), '0', '-1');
    const raw = await Promise.all(ids.map((id) => this.conn!.get(k.workerState(id))));
    return raw.flatMap((r) => (r ? [parseWorkerState(r)] : [])).sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  /** Waits until `pred` holds for the worker states. */
  async waitWorkers(pred: (ws: WorkerState[]) => boolean, what: string, timeoutMs = 60_000): Promise<WorkerState[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const ws = await this.workers();
      if (pred(ws)) return ws;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(ws.map((w) => [w.workerId, Object.fromEntries(Object.entries(w.models).map(([m, x]) => [m, x.residency]))]))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM to `up` (it drains its workers and schedulers), SIGKILL after 60 s. Idempotent. */
  async stop(): Promise<void> {
    const p = this.up;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = once(p, 'exit');
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(t);
    }
    this.conn?.disconnect();
    this.conn = null;
  }
}
