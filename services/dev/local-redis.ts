// A private redis-server for `swapserve up` (no REDIS_URL): found on the PATH, on a free loopback port, stopped with us.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { SwapserveError } from '../../contracts/errors.ts';
import { freePort } from './free-port.ts';

export const REDIS_INSTALL_HINT = [
  'redis-server was not found on the PATH. Install Redis 7+ or point swapserve at one with REDIS_URL:',
  '  Debian/Ubuntu: sudo apt-get install redis-server',
  '  macOS:         brew install redis',
  '  Docker:        docker run -p 6379:6379 redis:7 && export REDIS_URL=redis://127.0.0.1:6379',
].join('\n');

export class RedisNotFoundError extends SwapserveError<'redis_not_found'> {
  override name = 'RedisNotFoundError';
  constructor() {
    super('redis_not_found', REDIS_INSTALL_HINT);
  }
}

export interface LocalRedis {
  url: string;
  stop(): Promise<void>;
}

/** The redis-server to run: SWAPSERVE_REDIS_SERVER (a path, e.g. a carried binary) if set, else the one on the PATH. */
export function findRedisServer(): string | null {
  const bin = process.env.SWAPSERVE_REDIS_SERVER || 'redis-server';
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? bin : null;
}


/** Starts redis-server in `dir` (no persistence: queues and streams are transient). */
export async function startLocalRedis(dir: string): Promise<LocalRedis> {
  const bin = findRedisServer();
  if (!bin) throw new RedisNotFoundError();
  mkdirSync(dir, { recursive: true });
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const child: ChildProcess = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const ready = await new Promise<boolean>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve(true);
      });
      child.once('exit', () => resolve(false));
      child.once('error', () => resolve(false));
    });
    if (!ready) {
      if (tries < 3) continue;
      throw new Error(`redis-server did not start:\n${out.slice(-2000)}`);
    }
    child.stdout!.removeAllListeners('data');
    child.stdout!.resume();
    child.stderr!.resume();
    return {
      url: `redis://127.0.0.1:${port}`,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      },
    };
  }
}
