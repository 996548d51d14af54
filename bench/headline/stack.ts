// The whole stack the headline runs on, as child processes of the bench: gateway and a scheduler that scales workers
// from zero (one at most), on a private Redis; the bench reads worker states and sends fenced tier commands as the
// scheduler would.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { clusterKeys, commandFields, parseWorkerState, type CommandBody, type WorkerState } from '../../contracts/cluster.ts';
import type { LocalRedis } from '../../services/dev/local-redis.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;
/** The cluster key prefix of the bench's stack. */
export const PREFIX = '{headline}';

export class Stack {
  redis!: LocalRedis;
  conn!: RedisClient;
  gateway!: ChildProcess;
  scheduler!: ChildProcess;
  url = '';
  readonly k = clusterKeys(PREFIX);
  private readonly seenWorkerPids = new Set<number>();

  constructor(private readonly cfgFile: string, private readonly env: NodeJS.ProcessEnv) {}

  async start(): Promise<void> {
    this.conn = connect(this.redisUrl());
    this.gateway = await child(['gateway', '--config', this.cfgFile], 'listening on', this.env, (out) => {
      const m = /listening on (\S+)/.exec(out);
      if (m) this.url = m[1];
    });
    // Scale from zero: no worker until a request waits; the scheduler starts one (one GPU, at most one worker).
    this.scheduler = await child(['scheduler', '--config', this.cfgFile, '--provider', 'local', '--max-workers', '1', '--min-workers', '0', '--worker-idle-ms', '3600000', '--id', 'headline'], 'started', this.env);
  }

  redisUrl(): string {
    return this.redis.url;
  }

  async workers(): Promise<WorkerState[]> {
    const ids = await this.conn.zrange(this.k.workers(), '0', '-1');
    const out: WorkerState[] = [];
    for (const id of ids) {
      const raw = await this.conn.get(this.k.workerState(id));
      if (raw) {
        const s = parseWorkerState(raw);
        this.seenWorkerPids.add(s.pid);
        out.push(s);
      }
    }
    return out;
  }

  /** One tier or lifecycle command to a worker, fenced with the leader's current epoch (as the scheduler sends them). */
  async command(workerId: string, body: CommandBody, timeoutMs = 120_000): Promise<void> {
    const epoch = Number(await this.conn.get(this.k.epoch()) ?? 0);
    const id = `headline-${randomBytes(4).toString('hex')}`;
    const events = this.k.events();
    const last = (await this.conn.xrevrange(events, '+', '-', 'COUNT', 1)) as [string, string[]][];
    let from = last.length ? last[0][0] : '0-0';
    await this.conn.xadd(this.k.commands(workerId), '*', ...commandFields({ ...body, id, epoch, issuedAt: Date.now() } as Parameters<typeof commandFields>[0]));
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const res = (await this.conn.xread('COUNT', '100', 'STREAMS', events, from)) as [string, [string, string[]][]][] | null;
      for (const [eid, fields] of res?.[0]?.[1] ?? []) {
        from = eid;
        const i = fields.indexOf('data');
        if (fields[fields.indexOf('type') + 1] !== 'result' || i < 0) continue;
        const r = JSON.parse(fields[i + 1]) as { commandId: string; ok: boolean; error?: { code: string; message: string } };
        if (r.commandId !== id) continue;
        if (!r.ok) throw new Error(`${body.kind} on ${workerId} failed: ${r.error?.code} ${r.error?.message}`);
        return;
      }
      if (!res) await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${body.kind} on ${workerId}: no result in ${timeoutMs} ms`);
  }

  /** Waits until `pred` holds for the worker list (state keys, as the scheduler reads them). */
  async waitWorkers(pred: (ws: WorkerState[]) => boolean, what: string, timeoutMs = 120_000): Promise<WorkerState[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const ws = await this.workers();
      if (pred(ws)) return ws;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(ws.map((w) => ({ id: w.workerId, models: w.models })))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Drains the running worker (the scheduler's own scale-to-zero command) and waits for its process to exit. */
  async drainWorkers(): Promise<void> {
    for (const w of await this.workers()) {
      await this.command(w.workerId, { kind: 'drain' }).catch(() => {});
    }
    await this.waitWorkers((ws) => ws.length === 0, 'no worker');
    for (const pid of this.seenWorkerPids) {
      const end = Date.now() + 60_000;
      while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    for (const w of await this.workers().catch(() => [])) await this.command(w.workerId, { kind: 'shutdown' }, 5000).catch(() => {});
    await stopChild(this.scheduler);
    await stopChild(this.gateway);
    for (const pid of this.seenWorkerPids) {
      if (!alive(pid)) continue;
      process.kill(pid, 'SIGTERM');
      const end = Date.now() + 20_000;
      while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    this.conn?.disconnect();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

async function child(args: string[], ready: string, env: NodeJS.ProcessEnv, onOut?: (s: string) => void): Promise<ChildProcess> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      process.stderr.write(d);
      onOut?.(out);
      if (out.includes(ready)) {
        p.stdout!.off('data', onData);
        p.stdout!.on('data', (x: Buffer) => process.stderr.write(x));
        resolve();
      }
    };
    p.stdout!.on('data', onData);
    p.once('exit', (c) => reject(new Error(`${args[0]} exited (${c}): ${out.slice(-2000)}`)));
  });
  return p;
}

/** SIGTERM, then SIGKILL after 20 s; resolves when the child has exited (at once if it already has). */
export async function stopChild(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const e = once(p, 'exit');
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
  await e;
  clearTimeout(t);
}
