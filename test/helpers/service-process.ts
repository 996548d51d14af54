// A swapserve service (`gateway`, `scheduler`, `worker`) in its own process: waits for its ready line, keeps its output.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { BIN } from './worker-process.ts';

export interface ServiceProcess {
  child: ChildProcess;
  /** The ready line it printed. */
  ready: string;
  /** Every stdout line so far (JSON log lines included). */
  lines: string[];
  /** SIGTERM (or `signal`), then resolves with the exit code once it exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Spawns `node bin/swapserve.js <args>` and resolves once a stdout line matches `readyLine`; rejects with its output
 * if it exits first or takes longer than `timeoutMs` (ms).
 */
export async function startService(args: string[], env: NodeJS.ProcessEnv, readyLine: RegExp, timeoutMs = 120_000): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = once(child, 'exit');
    child.kill(signal);
    const [code] = await exited;
    return code as number | null;
  };
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { void stop('SIGKILL'); reject(new Error(`${args[0]} not ready after ${timeoutMs} ms:\n${lines.join('\n')}\n${stderr}`)); }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        if (readyLine.test(l)) {
          clearTimeout(timer);
          resolve(l);
        }
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${args[0]} exited (${code}) before ready:\n${lines.join('\n')}\n${stderr}`)); });
  });
  return { child, ready, lines, stop };
}

/** The JSON objects among a process's stdout lines (log lines), in order. */
export function jsonLines(lines: string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    if (!l.startsWith('{')) return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}
