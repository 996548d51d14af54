// Worker providers: how the scheduler scales from zero. The first one spawns local worker processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPU_SHARE_ENV } from '../config/config.ts';
import type { MpsDaemon } from './mps.ts';

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
   * GPUs on this machine: each started worker gets `--device <i>`, the lowest index with room (one worker, or
   * workersPerGpu(i) when co-located; a start with every GPU full is refused). 0: no `--device` (CPU workers). @defaultValue 0
   */
  gpus?: number;
  /** Called when a started worker exits (code, or the signal that ended it). @defaultValue none */
  onExit?: (workerId: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /**
   * Co-location (issue 14): workers GPU d takes (each started with SWAPSERVE_GPU_SHARE = that count, so its budgets
   * are its share). @defaultValue one per GPU
   */
  workersPerGpu?: (device: number) => number;
  /** The MPS daemon co-located workers are clients of (started before the first, told to quit after the last). @defaultValue none: time-sliced */
  mps?: MpsDaemon | null;
  /** Group restarts and their failures, one line each. @defaultValue stderr */
  log?: (line: string) => void;
  /**
   * Where a worker on GPU d runs (issue 16, host-layout.ts): a command prefix (`numactl --cpunodebind=N --membind=N`,
   * which execs the worker) and extra environment (its pinned host budget, SWAPSERVE_HOST_BYTES). @defaultValue none
   */
  placement?: ((device: number) => { prefix: string[]; env: Record<string, string> }) | null;
}

const ONE = (): number => 1;

const BIN = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'swapserve.js');

/** Spawns `node bin/swapserve.js worker --id <id> ...` on this machine. */
export class LocalProcessProvider implements WorkerProvider {
  private readonly children = new Map<string, ChildProcess>();
  /** GPU index per running worker (when `gpus` > 0). */
  private readonly devices = new Map<string, number>();
  private readonly opts: Required<Omit<LocalProcessProviderOptions, 'onExit'>> & Pick<LocalProcessProviderOptions, 'onExit'>;
  private closed = false;
  /** What each worker was started for (a group restart starts it again alike). */
  private readonly hints = new Map<string, { model: string | null; group?: string }>();
  /** Ids between start() and spawn (waiting for the MPS daemon). */
  private readonly launching = new Set<string>();
  /** Ids stop() was asked for: their exit is not a fault. */
  private readonly stopping = new Set<string>();
  /** Per GPU under a group restart: its members, and those still to exit. */
  private readonly regroup = new Map<number, { members: Map<string, { model: string | null; group?: string }>; pending: Set<string> }>();
  /** Per GPU: group restarts in a row (each within 30 s of the last) and when the last one was. */
  private readonly faults = new Map<number, { n: number; at: number }>();

  constructor(options: LocalProcessProviderOptions = {}) {
    this.opts = {
      command: process.execPath, baseArgs: [BIN, 'worker'], extraArgs: [], env: process.env, killAfterMs: 10_000,
      stopOnClose: false, stdio: 'inherit', gpus: 0, workersPerGpu: ONE, mps: null, placement: null,
      log: (l) => process.stderr.write(`swapserve scheduler: ${l}\n`), ...options,
    };
  }

  start(workerId: string, hint: { model: string | null; group?: string }): Promise<void> {
    if (this.closed) return Promise.reject(new Error('LocalProcessProvider is closed'));
    if (this.children.has(workerId) || this.launching.has(workerId)) return Promise.reject(new Error(`worker ${workerId} is already running`));
    let device: number | null = null;
    if (this.opts.gpus > 0) {
      const d = this.freeDevice();
      if (d === null) return Promise.reject(new Error(`all ${this.opts.gpus} GPUs have ${this.opts.workersPerGpu === ONE ? 'a worker' : 'their workers'}`));
      device = d;
    }
    return this.launch(workerId, hint, device);
  }

  /** Workers on (or reserved for, by a group restart) GPU d. */
  private occupancy(d: number): number {
    let n = 0;
    for (const v of this.devices.values()) if (v === d) n++;
    for (const id of this.regroup.get(d)?.members.keys() ?? []) if (!this.devices.has(id)) n++;
    return n;
  }

  /** The lowest GPU with room for one more worker (co-location: up to workersPerGpu(d)), or null. */
  private freeDevice(): number | null {
    for (let d = 0; d < this.opts.gpus; d++) if (this.occupancy(d) < Math.max(1, this.opts.workersPerGpu(d))) return d;
    return null;
  }

  private async launch(workerId: string, hint: { model: string | null; group?: string }, device: number | null): Promise<void> {
    const share = device === null ? 1 : Math.max(1, this.opts.workersPerGpu(device));
    const extraEnv: Record<string, string> = {};
    if (device !== null) this.devices.set(workerId, device);
    this.hints.set(workerId, hint);
    this.launching.add(workerId);
    try {
      if (share > 1) {
        extraEnv[GPU_SHARE_ENV] = String(share);
        // Under MPS every co-located worker is a client of the one daemon; it is started before the first.
        if (this.opts.mps) Object.assign(extraEnv, await this.opts.mps.acquire(workerId));
      }
    } catch (e) {
      this.devices.delete(workerId);
      this.launching.delete(workerId);
      throw e;
    }
    this.launching.delete(workerId);
    if (this.closed) {
      this.devices.delete(workerId);
      await this.opts.mps?.release(workerId).catch(() => undefined);
      throw new Error('LocalProcessProvider is closed');
    }
    const deviceArgs = device === null ? [] : ['--device', String(device)];
    // One machine, one kind of GPU: the group only tells the worker which models it may serve.
    const group = hint.group === undefined ? [] : ['--group', hint.group];
    const place = device !== null && this.opts.placement ? this.opts.placement(device) : { prefix: [], env: {} };
    const [exe, ...lead] = [...place.prefix, this.opts.command];
    const child = spawn(exe, [...lead, ...this.opts.baseArgs, '--id', workerId, ...deviceArgs, ...group, ...this.opts.extraArgs], {
      env: { ...this.opts.env, ...place.env, ...extraEnv }, stdio: ['ignore', this.opts.stdio, this.opts.stdio],
    });
    this.children.set(workerId, child);
    child.once('exit', (code, signal) => this.exited(workerId, share > 1, code, signal));
    return new Promise((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => {
        this.children.delete(workerId);
        this.devices.delete(workerId);
        reject(e);
      });
    });
  }

  /**
   * A worker exited. On a co-located GPU, an exit nobody asked for that is not clean (a crash, a kill, a sticky CUDA
   * error's exit 1) is a fault of the GPU's shared context (under MPS one client's fatal error can take the others
   * down): every worker on that GPU is told to drain and exit (SIGTERM; their unfinished jobs go back to the queue,
   * the dead one's are recovered by BullMQ's stalled check), the MPS daemon is checked (restarted if it does not
   * answer), then the whole group is started again under the same ids.
   */
  private exited(workerId: string, colocated: boolean, code: number | null, signal: NodeJS.Signals | null): void {
    const device = this.devices.get(workerId);
    this.children.delete(workerId);
    this.devices.delete(workerId);
    const asked = this.stopping.delete(workerId);
    this.opts.onExit?.(workerId, code, signal);
    if (colocated) this.opts.mps?.release(workerId).catch((e: unknown) => this.opts.log(`ERROR ${(e as Error).message}`));
    if (device === undefined) return;
    const group = this.regroup.get(device);
    if (group) {
      group.pending.delete(workerId);
      if (asked) group.members.delete(workerId);
      if (group.pending.size === 0) void this.restartGroup(device);
      return;
    }
    const fault = !asked && !this.closed && colocated && (signal !== null || code !== 0);
    if (!fault) return;
    const siblings = [...this.devices].filter(([, d]) => d === device).map(([id]) => id);
    this.opts.log(`ERROR co-located worker ${workerId} on GPU ${device} exited (${signal ?? `code ${code}`}): draining and restarting every worker on that GPU (${[workerId, ...siblings].join(', ')})`);
    const members = new Map<string, { model: string | null; group?: string }>();
    for (const id of [workerId, ...siblings]) members.set(id, this.hints.get(id) ?? { model: null });
    this.regroup.set(device, { members, pending: new Set(siblings) });
    if (siblings.length === 0) void this.restartGroup(device);
    for (const id of siblings) this.signal(id);
  }

  private async restartGroup(device: number): Promise<void> {
    const group = this.regroup.get(device);
    if (!group || this.closed) {
      this.regroup.delete(device);
      return;
    }
    // Backoff: a GPU whose group keeps faulting (a worker that cannot start) waits longer each time: 250 ms doubling
    // up to 10 s, back to 250 ms once the group ran 30 s.
    const now = Date.now();
    const f = this.faults.get(device);
    const n = f && now - f.at < 30_000 ? f.n + 1 : 1;
    this.faults.set(device, { n, at: now });
    const delay = Math.min(10_000, 250 * 2 ** (n - 1));
    await new Promise((r) => setTimeout(r, delay).unref());
    if (this.closed) {
      this.regroup.delete(device);
      return;
    }
    if (this.opts.mps) {
      try {
        await this.opts.mps.ensureHealthy();
      } catch (e) {
        this.opts.log(`ERROR GPU ${device}: ${(e as Error).message}`);
      }
    }
    this.regroup.delete(device);
    for (const [id, hint] of group.members) {
      if (this.closed || this.children.has(id)) continue;
      this.launch(id, hint, device).then(
        () => this.opts.log(`worker ${id} restarted on GPU ${device}`),
        (e: unknown) => this.opts.log(`ERROR restarting worker ${id} on GPU ${device}: ${(e as Error).message}`),
      );
    }
  }

  /** SIGTERM (the worker drains), SIGKILL after killAfterMs; resolves at its exit. */
  private signal(workerId: string): Promise<void> {
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

  stop(workerId: string): Promise<void> {
    for (const g of this.regroup.values()) if (!this.children.has(workerId)) g.members.delete(workerId);
    if (!this.children.has(workerId)) return Promise.resolve();
    this.stopping.add(workerId);
    return this.signal(workerId);
  }

  running(): string[] {
    return [...this.children.keys()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.opts.stopOnClose) {
      await Promise.allSettled(this.running().map((id) => this.stop(id)));
      await this.opts.mps?.stop().catch((e: unknown) => this.opts.log(`ERROR ${(e as Error).message}`));
    }
  }
}
