// Worker providers: how the scheduler scales from zero. The first one spawns local worker processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Starts and stops workers. A started worker announces itself through its heartbeat (cluster.ts). */
export interface WorkerProvider {
  /**
   * Starts a worker that will report as `workerId`; resolves once it is launched (not once it is ready). `group`: the
   * worker group (config placement) it must join, on that group's kind of GPU where the provider has several.
   */
  start(workerId: string, hint: { model: string | null; group?: string }): Promise<void>;
  /** Stops a worker this provider started (SIGTERM, then SIGKILL); a no-op for unknown ids. */
  stop(workerId: string): Promise<void>;
  /** Ids of the workers it started that are still running. */
  running(): string[];
  /** Idempotent. Leaves workers running unless `stopOnClose` was set (a standby scheduler takes them over). */
  close(): Promise<void>;
}

export interface LocalProcessProviderOptions {
  /** Executable. @defaultValue process.execPath */
  command?: string;
  /** Arguments before the worker's own. @defaultValue [<repo>/bin/swapserve.js, "worker"] */
  baseArgs?: string[];
  /** Extra worker arguments (e.g. ["--config", file]). @defaultValue [] */
  extraArgs?: string[];
  /** Environment. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** Time between SIGTERM and SIGKILL (ms). @defaultValue 10000 */
  killAfterMs?: number;
  /** Stop every started worker on close(). @defaultValue false */
  stopOnClose?: boolean;
  /** Where worker stdout/stderr go. @defaultValue "inherit" */
  stdio?: 'inherit' | 'ignore';
  /**
   * GPUs on this machine: each started worker gets `--device <i>`, the lowest index no running worker of this
   * provider holds (a start with every GPU taken is refused). 0: no `--device` (CPU workers). @defaultValue 0
   */
  gpus?: number;
  /** Called when a started worker exits (code, or the signal that ended it). @defaultValue none */
  onExit?: (workerId: string, code: number | null, signal: NodeJS.Signals | null) => void;
}

const BIN = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'swapserve.js');

/** Spawns `node bin/swapserve.js worker --id <id> ...` on this machine. */
export class LocalProcessProvider implements WorkerProvider {
  private readonly children = new Map<string, ChildProcess>();
  /** GPU index per running worker (when `gpus` > 0). */
  private readonly devices = new Map<string, number>();
  private readonly opts: Required<Omit<LocalProcessProviderOptions, 'onExit'>> & Pick<LocalProcessProviderOptions, 'onExit'>;
  private closed = false;

  constructor(options: LocalProcessProviderOptions = {}) {
    this.opts = {
      command: process.execPath, baseArgs: [BIN, 'worker'], extraArgs: [], env: process.env, killAfterMs: 10_000,
      stopOnClose: false, stdio: 'inherit', gpus: 0, ...options,
    };
  }

  start(workerId: string, hint: { model: string | null; group?: string }): Promise<void> {
    if (this.closed) return Promise.reject(new Error('LocalProcessProvider is closed'));
    if (this.children.has(workerId)) return Promise.reject(new Error(`worker ${workerId} is already running`));
    const device: string[] = [];
    if (this.opts.gpus > 0) {
      const taken = new Set(this.devices.values());
      let d = 0;
      while (d < this.opts.gpus && taken.has(d)) d++;
      if (d === this.opts.gpus) return Promise.reject(new Error(`all ${this.opts.gpus} GPUs have a worker`));
      this.devices.set(workerId, d);
      device.push('--device', String(d));
    }
    // One machine, one kind of GPU: the group only tells the worker which models it may serve.
    const group = hint.group === undefined ? [] : ['--group', hint.group];
    const child = spawn(this.opts.command, [...this.opts.baseArgs, '--id', workerId, ...device, ...group, ...this.opts.extraArgs], {
      env: this.opts.env, stdio: ['ignore', this.opts.stdio, this.opts.stdio],
    });
    this.children.set(workerId, child);
    child.once('exit', (code, signal) => {
      this.children.delete(workerId);
      this.devices.delete(workerId);
      this.opts.onExit?.(workerId, code, signal);
    });
    return new Promise((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => {
        this.children.delete(workerId);
        this.devices.delete(workerId);
        reject(e);
      });
    });
  }

  stop(workerId: string): Promise<void> {
    const child = this.children.get(workerId);
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), this.opts.killAfterMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  running(): string[] {
    return [...this.children.keys()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.opts.stopOnClose) await Promise.allSettled(this.running().map((id) => this.stop(id)));
  }
}
