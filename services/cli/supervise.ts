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
}

export class Supervisor {
  private readonly children: Child[] = [];
  private readonly o: Required<BackoffOptions>;
  private stopping = false;
  private readonly onExit: ((name: string) => Promise<void>) | null;

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
    } = {},
  ) {
    this.onExit = opts.onExit ?? null;
    this.o = { ...BACKOFF_DEFAULTS, ...opts };
  }

  /** Starts `name` (and keeps it running until stop()). */
  start(name: string, args: string[]): void {
    const c: Child = { name, args, proc: null, startedAt: 0, consecutive: 0, timer: null };
    this.children.push(c);
    this.spawnChild(c);
  }

  /** The pid of a supervised process now running (null while it is down). */
  pid(name: string): number | null {
    return this.children.find((c) => c.name === name)?.proc?.pid ?? null;
  }

  private spawnChild(c: Child): void {
    const [exe, ...lead] = this.command;
    const p = spawn(exe, [...lead, ...c.args], { stdio: ['ignore', 'inherit', 'inherit'], env: this.env });
    c.proc = p;
    c.startedAt = Date.now();
    p.once('exit', (code, signal) => {
      c.proc = null;
      if (this.stopping) return;
      const ranMs = Date.now() - c.startedAt;
      c.consecutive = ranMs >= this.o.healthyAfterMs ? 1 : c.consecutive + 1;
      const delay = restartDelayMs(c.consecutive, this.o);
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
