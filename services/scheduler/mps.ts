// The NVIDIA MPS control daemon, run by swapserve for co-located workers (issue 14). One daemon per machine, its pipe
// and log folders under dataDir (so it never meets another user's daemon in /tmp/nvidia-mps), started before the
// first co-located worker and told to quit after the last one left. Every effect goes through a ProcessRunner (real
// processes: CI puts a fake `nvidia-cuda-mps-control` script on PATH that records what it is asked).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SwapserveError } from '../../contracts/errors.ts';

export type MpsErrorCode = 'mps_unavailable' | 'mps_compute_mode' | 'mps_failed';

export class MpsError extends SwapserveError<MpsErrorCode> {
  override name = 'MpsError';
}

export interface ExecResult {
  /** Exit code; null when killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** How the daemon module touches the world: run a command to its end (stdin = input). */
export interface ProcessRunner {
  /** Rejects with an error whose `code` is 'ENOENT' when the executable is not found. */
  exec(file: string, args: string[], opts: { env: NodeJS.ProcessEnv; input?: string; timeoutMs: number }): Promise<ExecResult>;
}

/**
 * Runs real processes (child_process.spawn). Resolves at 'close', or 100 ms after 'exit' when a forked child (the
 * daemon `-d` leaves behind) still holds the output pipes, or with code null after timeoutMs.
 */
export const nodeRunner: ProcessRunner = {
  exec(file, args, opts) {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let done = false;
      const finish = (code: number | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.stdout.destroy();
        child.stderr.destroy();
        resolve({ code, stdout, stderr });
      };
      child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        finish(null);
      }, opts.timeoutMs);
      child.once('error', (e) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (code) => setTimeout(() => finish(code), 100).unref());
      child.once('close', (code) => finish(code));
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  },
};

export interface MpsDaemonOptions {
  /** swapserve's data folder: the daemon's folders are `<dataDir>/mps/pipe` and `<dataDir>/mps/log`. */
  dataDir: string;
  /** The control executable. @defaultValue "nvidia-cuda-mps-control" */
  control?: string;
  /** nvidia-smi, for the compute-mode check. @defaultValue "nvidia-smi" */
  smi?: string;
  /** CUDA_MPS_ACTIVE_THREAD_PERCENTAGE given to every client. @defaultValue none */
  activeThreadPercentage?: number;
  /** @defaultValue nodeRunner */
  runner?: ProcessRunner;
  /** Environment the daemon and the commands run with (PATH). @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** One line per start, stop and failure. @defaultValue none */
  log?: (line: string) => void;
  /** Longest wait for the daemon to answer after `-d` (ms). @defaultValue 5000 */
  startTimeoutMs?: number;
}

/** Compute modes under which MPS clients may run (nvidia-smi's spelling). */
const MPS_MODES = new Set(['Default', 'Exclusive_Process']);

export class MpsDaemon {
  readonly pipeDir: string;
  readonly logDir: string;
  private readonly o: Required<Omit<MpsDaemonOptions, 'activeThreadPercentage'>> & Pick<MpsDaemonOptions, 'activeThreadPercentage'>;
  private readonly clients = new Set<string>();
  private up = false;
  /** Serialises start/stop: acquire and release may race (a group restart releases and acquires at once). */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: MpsDaemonOptions) {
    this.o = {
      control: 'nvidia-cuda-mps-control', smi: 'nvidia-smi', runner: nodeRunner, env: process.env, log: () => undefined,
      startTimeoutMs: 5000, ...options,
    };
    this.pipeDir = join(options.dataDir, 'mps', 'pipe');
    this.logDir = join(options.dataDir, 'mps', 'log');
  }

  /** The environment a client (a co-located worker) needs to reach this daemon. */
  clientEnv(): Record<string, string> {
    const env: Record<string, string> = { CUDA_MPS_PIPE_DIRECTORY: this.pipeDir, CUDA_MPS_LOG_DIRECTORY: this.logDir };
    if (this.o.activeThreadPercentage !== undefined) env.CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = String(this.o.activeThreadPercentage);
    return env;
  }

  private daemonEnv(): NodeJS.ProcessEnv {
    return { ...this.o.env, CUDA_MPS_PIPE_DIRECTORY: this.pipeDir, CUDA_MPS_LOG_DIRECTORY: this.logDir };
  }

  private async control(args: string[], input?: string, timeoutMs = 5000): Promise<ExecResult> {
    try {
      return await this.o.runner.exec(this.o.control, args, { env: this.daemonEnv(), timeoutMs, ...(input === undefined ? {} : { input }) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new MpsError('mps_unavailable', `MPS is unavailable: ${this.o.control} was not found on PATH (co-location with coLocation.mps.enabled needs the NVIDIA driver's MPS tools; set coLocation.mps.enabled: false to time-slice instead)`);
      }
      throw new MpsError('mps_failed', `MPS: running ${this.o.control} failed: ${(e as Error).message}`);
    }
  }

  /**
   * Checks that every GPU in `devices` allows MPS clients (compute mode Default or Exclusive_Process); throws
   * MpsError naming the GPU and its mode otherwise.
   */
  async checkComputeMode(devices: number[]): Promise<void> {
    if (devices.length === 0) return;
    let r: ExecResult;
    try {
      r = await this.o.runner.exec(this.o.smi, ['--query-gpu=index,compute_mode', '--format=csv,noheader'], { env: this.o.env, timeoutMs: 10_000 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new MpsError('mps_unavailable', `MPS is unavailable: ${this.o.smi} was not found on PATH (no NVIDIA driver here?)`);
      throw e;
    }
    if (r.code !== 0) throw new MpsError('mps_unavailable', `MPS is unavailable: ${this.o.smi} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    const modes = new Map<number, string>();
    for (const line of r.stdout.split('\n')) {
      const [i, mode] = line.split(',').map((s) => s.trim());
      if (i !== undefined && mode !== undefined && /^\d+$/.test(i)) modes.set(Number(i), mode);
    }
    for (const d of devices) {
      const mode = modes.get(d);
      if (mode === undefined) throw new MpsError('mps_unavailable', `MPS: GPU ${d} is not listed by ${this.o.smi} (GPUs: ${[...modes.keys()].join(', ') || 'none'})`);
      if (!MPS_MODES.has(mode)) {
        throw new MpsError('mps_compute_mode', `MPS: GPU ${d} is in compute mode ${mode}, which forbids MPS clients; set it to Default or Exclusive_Process (nvidia-smi -i ${d} -c EXCLUSIVE_PROCESS) or turn co-location off for it`);
      }
    }
  }

  /** Whether the daemon at our pipe folder answers (`get_server_list` exits 0). */
  async healthy(): Promise<boolean> {
    const r = await this.control([], 'get_server_list\n');
    return r.code === 0;
  }

  /** Starts the daemon (adopts one already answering at our pipe folder) and waits until it answers. */
  async start(): Promise<void> {
    await (this.chain = this.chain.catch(() => undefined).then(() => this.startNow()));
  }

  private async startNow(): Promise<void> {
    if (this.up) return;
    mkdirSync(this.pipeDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    if (await this.healthy()) {
      this.up = true;
      this.o.log(`MPS control daemon already running at ${this.pipeDir}: adopted`);
      return;
    }
    const r = await this.control(['-d']);
    if (r.code !== 0) throw new MpsError('mps_failed', `MPS: ${this.o.control} -d exited ${r.code}: ${(r.stderr || r.stdout).trim()} (log: ${this.logDir}/control.log)`);
    const deadline = Date.now() + this.o.startTimeoutMs;
    while (!(await this.healthy())) {
      if (Date.now() > deadline) throw new MpsError('mps_failed', `MPS: the control daemon started but does not answer get_server_list after ${this.o.startTimeoutMs} ms (log: ${this.logDir}/control.log)`);
      await new Promise((res) => setTimeout(res, 50));
    }
    this.up = true;
    this.o.log(`MPS control daemon started (pipe ${this.pipeDir}, log ${this.logDir})`);
  }

  /** Tells the daemon to quit (it stops its server once the clients are gone). */
  async stop(): Promise<void> {
    await (this.chain = this.chain.catch(() => undefined).then(() => this.stopNow()));
  }

  private async stopNow(): Promise<void> {
    if (!this.up) return;
    this.up = false;
    const r = await this.control([], 'quit\n');
    if (r.code !== 0) throw new MpsError('mps_failed', `MPS: quit exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
    this.o.log('MPS control daemon stopped (its last client left)');
  }

  /** Restarts a daemon that stopped answering (after a client's fatal error); a no-op when it answers. */
  async ensureHealthy(): Promise<void> {
    if (this.up && (await this.healthy())) return;
    this.o.log('MPS control daemon does not answer: restarting it');
    this.up = false;
    await this.control([], 'quit\n').catch(() => undefined);
    await this.start();
  }

  /** A client is about to start: starts the daemon if it is the first; returns the client's environment. */
  async acquire(clientId: string): Promise<Record<string, string>> {
    this.clients.add(clientId);
    try {
      await this.start();
    } catch (e) {
      this.clients.delete(clientId);
      throw e;
    }
    return this.clientEnv();
  }

  /** A client exited: the daemon quits after the last one. */
  async release(clientId: string): Promise<void> {
    if (!this.clients.delete(clientId)) return;
    if (this.clients.size === 0) await this.stop();
  }

  /** Client ids holding the daemon. */
  holders(): string[] {
    return [...this.clients];
  }
}
