// `swapserve up`'s supervision of the processes it starts (workers and the scheduler alike): each exit is logged as
// an error and counted, and the process is restarted after an exponential backoff (reset once it has run a while).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { recordRestart } from '../telemetry/metrics.ts';

export interface BackoffOptions {
  /** Delay before the first restart (ms). @defaultValue 250 */
  baseMs?: number;
  /** Longest delay between restarts (ms). @defaultValue 10000 */
  maxMs?: number;
  /** A process that ran this long (ms) before exiting was healthy: its restart waits baseMs again. @defaultValue 30000 */
  healthyAfterMs?: number;
}

const BACKOFF_DEFAULTS: Required<BackoffOptions> = { baseMs: 250, maxMs: 10_000, healthyAfterMs: 30_000 };

/** Delay (ms) before restart number `consecutive` (1 = the first since the process last ran healthily). Pure. */
export function restartDelayMs(consecutive: number, opts: BackoffOptions = {}): number {
  const o = { ...BACKOFF_DEFAULTS, ...opts };
  return Math.min(o.maxMs, o.baseMs * 2 ** Math.max(0, consecutive - 1));
}

interface Child {
  name: string;
  args: string[];
  proc: ChildProcess | null;
  startedAt: number;
  /** Restarts since the process last ran for healthyAfterMs. */
  consecutive: number;
  timer: NodeJS.Timeout | null;
  /** Co-located children sharing one GPU (issue 14): a fault in one restarts them all. */
  group: string | null;
  /** Extra environment of this child (a co-located worker's share and MPS pipe). */
  env: Record<string, string>;
  /** Command this child runs under (e.g. `numactl --cpunodebind=1 --membind=1`, which execs it: same pid). */
  prefix: string[];
}

export class Supervisor {
  private readonly children: Child[] = [];
  private readonly o: Required<BackoffOptions>;
  private stopping = false;
  private readonly onExit: ((name: string) => Promise<void>) | null;
  private readonly beforeGroupRestart: ((group: string) => Promise<void>) | null;
  /** Groups being restarted after a fault: the names still to exit. */
  private readonly regroup = new Map<string, Set<string>>();

  /**
   * @param command the executable and its leading arguments (e.g. [node, bin/swapserve.js])
   * @param env environment of every child
   * @param log where exits and restarts are reported (one line each, on stderr by default)
   */
  constructor(
    private readonly command: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: (line: string) => void = (l) => process.stderr.write(`swapserve up: ${l}\n`),
    opts: BackoffOptions & {
      /** Called when a process exited unasked, before its restart is scheduled (e.g. to release what it held). */
      onExit?: (name: string) => Promise<void>;
      /** Called once every member of a faulted group is down, before they start again (e.g. check the MPS daemon). */
      beforeGroupRestart?: (group: string) => Promise<void>;
    } = {},
  ) {
    this.onExit = opts.onExit ?? null;
    this.beforeGroupRestart = opts.beforeGroupRestart ?? null;
    this.o = { ...BACKOFF_DEFAULTS, ...opts };
  }

  /** Starts `name` (and keeps it running until stop()). */
  start(name: string, args: string[], opts: { group?: string; env?: Record<string, string>; prefix?: string[] } = {}): void {
    const c: Child = { name, args, proc: null, startedAt: 0, consecutive: 0, timer: null, group: opts.group ?? null, env: opts.env ?? {}, prefix: opts.prefix ?? [] };
    this.children.push(c);
    this.spawnChild(c);
  }

  /** The pid of a supervised process now running (null while it is down). */
  pid(name: string): number | null {
    return this.children.find((c) => c.name === name)?.proc?.pid ?? null;
  }

  private spawnChild(c: Child): void {
    const [exe, ...lead] = [...c.prefix, ...this.command];
    const p = spawn(exe, [...lead, ...c.args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...this.env, ...c.env } });
    c.proc = p;
    c.startedAt = Date.now();
    p.once('exit', (code, signal) => {
      c.proc = null;
      if (this.stopping) return;
      const ranMs = Date.now() - c.startedAt;
      c.consecutive = ranMs >= this.o.healthyAfterMs ? 1 : c.consecutive + 1;
      const delay = restartDelayMs(c.consecutive, this.o);
      if (c.group !== null && this.groupExit(c, code, signal, delay)) return;
      this.log(`ERROR ${c.name} exited (${signal ?? `code ${code}`}) after ${(ranMs / 1000).toFixed(1)} s; restarting it in ${delay} ms (restart ${c.consecutive} in a row)`);
      recordRestart(c.name);
      this.onExit?.(c.name).catch((e: unknown) => this.log(`ERROR after ${c.name} exited: ${(e as Error).message}`));
      c.timer = setTimeout(() => {
        c.timer = null;
        if (!this.stopping) this.spawnChild(c);
      }, delay);
      c.timer.unref();
    });
  }

  /**
   * A co-located child exited. A fault (a crash, a kill, a sticky CUDA error's exit 1 — anything but a clean exit) is a
   * fault of the GPU's shared context (under MPS one client's fatal error can take the others down): every other
   * member is told to drain and exit (SIGTERM), and once all are down the group starts again together after `delay`.
   * Returns true when the group restart handles this exit.
   */
  private groupExit(c: Child, code: number | null, signal: NodeJS.Signals | null, delay: number): boolean {
    const group = c.group!;
    const members = this.children.filter((m) => m.group === group);
    let pending = this.regroup.get(group);
    if (!pending) {
      if (signal === null && code === 0) return false;
      const running = members.filter((m) => m !== c && m.proc !== null);
      this.log(`ERROR ${c.name} exited (${signal ?? `code ${code}`}) after ${((Date.now() - c.startedAt) / 1000).toFixed(1)} s; ` +
        `restarting every process on its GPU (${group}): ${members.map((m) => m.name).join(', ')}`);
      recordRestart(c.name);
      pending = new Set(running.map((m) => m.name));
      this.regroup.set(group, pending);
      for (const m of running) m.proc!.kill('SIGTERM');
    } else {
      pending.delete(c.name);
    }
    if (pending.size > 0) return true;
    this.regroup.delete(group);
    const restart = async () => {
      await this.beforeGroupRestart?.(group).catch((e: unknown) => this.log(`ERROR before restarting ${group}: ${(e as Error).message}`));
      for (const m of members) {
        if (m.timer) clearTimeout(m.timer);
        m.timer = null;
        if (!this.stopping && m.proc === null) this.spawnChild(m);
      }
    };
    const t = setTimeout(() => void restart(), delay);
    t.unref();
    for (const m of members) m.timer = t;
    return true;
  }

  /** Stops restarting; SIGTERMs every running process (SIGKILL after `killAfterMs`) and waits for their exits. */
  async stop(killAfterMs = 15_000): Promise<void> {
    this.stopping = true;
    await Promise.all(this.children.map(async (c) => {
      if (c.timer) clearTimeout(c.timer);
      const p = c.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = once(p, 'exit');
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
      await exited;
      clearTimeout(t);
    }));
  }
}
