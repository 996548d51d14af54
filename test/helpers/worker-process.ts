// A CPU worker in its own process, as a scheduler would start it: resolves once it prints its ready line.
import { spawn, type ChildProcess } from 'node:child_process';

export const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;

/**
 * Spawns `node <args> --id <id> --threads 1 --backend cpu` (args: e.g. [BIN, 'worker', '--config', file]) and
 * resolves with the process and its ready line; rejects if it exits first. Tracked in `children` until it exits.
 */
export function startWorkerProcess(args: string[], id: string, children: Set<ChildProcess>, env: NodeJS.ProcessEnv = process.env):
  Promise<{ child: ChildProcess; ready: string }> {
  const child = spawn(process.execPath, [...args, '--id', id, '--threads', '1', '--backend', 'cpu'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let text = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      text += d.toString();
      const line = text.split('\n').find((l) => l.startsWith(`worker ${id} ready`));
      if (!line) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve({ child, ready: line });
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker ${id} exited (${code}) before ready: ${text}`)));
  });
}
