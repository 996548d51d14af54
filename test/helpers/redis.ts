// Test Redis: a real redis-server on a free port (no persistence), a unique BullMQ prefix per test, stopped after.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort } from '../../services/dev/free-port.ts';
import { once } from 'node:events';

export interface TestRedis {
  url: string;
  port: number;
  /** A fresh hash-tagged prefix (one per call), so tests sharing a server never see each other's queues. */
  prefix(): string;
  stop(): Promise<void>;
}


export interface TestRedisOptions {
  /** `requirepass`: clients must AUTH with it (the URL carries it). */
  password?: string;
  /** Serve TLS only (`--tls-port`), with these PEM files; the URL is rediss://. */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** Starts redis-server on a free port; resolves once it accepts connections ("Ready to accept" on stdout). */
export async function startRedis(opts: TestRedisOptions = {}): Promise<TestRedis> {
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const listen = opts.tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile, '--tls-ca-cert-file', opts.tls.caFile, '--tls-auth-clients', 'no']
      : ['--port', String(port)];
    const auth = opts.password ? ['--requirepass', opts.password] : [];
    const child: ChildProcess = spawn('redis-server', [...listen, ...auth, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const ready = await new Promise<boolean>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`cannot start redis-server (is it installed? apt-get install redis-server): ${e.message}`)));
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) resolve(true);
      });
      child.once('exit', () => resolve(false));
    });
    if (!ready) {
      if (tries < 3) continue; // port taken between probe and bind
      throw new Error(`redis-server failed to start:\n${out}`);
    }
    child.stdout!.removeAllListeners('data');
    child.stdout!.resume();
    child.stderr!.resume();
    let n = 0;
    const tag = randomBytes(4).toString('hex');
    return {
      url: `${opts.tls ? 'rediss' : 'redis'}://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${port}`,
      port,
      prefix: () => `{t${tag}${n++}}`,
      stop: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      },
    };
  }
}
