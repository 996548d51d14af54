// `swapserve bench spine`: the serving spine's own overhead on this machine, CPU backend, stories260K, max_tokens 1.
//  1. enqueue -> worker start: SDK enqueue call to the worker's processor picking the job (from the worker's
//     timings), against the floors measured in the same run: a Redis PING round trip and a bare BullMQ job
//     (Queue.add -> no-op processor start, same Redis, same process layout).
//  2. gateway requests/s with 64 concurrent HTTP clients (keep-alive), against GET /healthz on the same gateway.
// The worker and the gateway run as separate processes; Redis is a private loopback redis-server.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Client } from '../../services/sdk/index.ts';
import { nowMs } from '../../contracts/clock.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';
import { freePort } from '../../services/dev/free-port.ts';
import { startLocalRedis } from '../../services/dev/local-redis.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;
/** The model root holding stories260K/stories260K.gguf: the shared data's models folder unless --models-dir. */
const MODELS = new URL('../../../shared/data/models/', import.meta.url).pathname;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const f = (x: number, d = 2) => x.toFixed(d);

async function child(args: string[], ready: string, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(ready)) resolve();
    });
    p.once('exit', (c) => reject(new Error(`${args[0]} exited (${c}): ${out}`)));
  });
  p.stdout!.resume();
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const e = once(p, 'exit');
  p.kill('SIGTERM');
  await e;
}

/** Closed-loop HTTP load: `clients` connections each sending requests back to back for `seconds`. */
async function load(url: string, method: 'GET' | 'POST', body: string | null, clients: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number; n: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const lat: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const one = () => new Promise<void>((resolve) => {
    const t0 = performance.now();
    const req = request(url, { method, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      res.on('data', () => {});
      res.on('end', () => {
        if (res.statusCode === 200) lat.push(performance.now() - t0);
        else errors++;
        resolve();
      });
    });
    req.on('error', () => { errors++; resolve(); });
    req.end(body ?? undefined);
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => { while (Date.now() < end) await one(); }));
  const wall = (performance.now() - t0) / 1000;
  agent.destroy();
  return { rps: lat.length / wall, p50: pct(lat, 50), p99: pct(lat, 99), errors, n: lat.length };
}

interface SpineArgs {
  /** Samples of enqueue -> worker start (and of each floor). */
  requests: number;
  /** Gateway load duration (s). */
  seconds: number;
  /** Concurrent HTTP clients. */
  clients: number;
  /** Folder holding stories260K/stories260K.gguf. */
  modelsDir: string;
  out?: string;
  json: boolean;
}

const USAGE = `usage: swapserve bench spine [--requests N] [--seconds S] [--clients C] [--models-dir DIR] [--out FILE] [--json]
  --requests N   samples of enqueue -> worker start and of each floor (default 1000)
  --seconds S    gateway load duration in seconds (default 10)
  --clients C    concurrent HTTP clients (default 64)
  --models-dir DIR  the folder holding stories260K/stories260K.gguf (default ../shared/data/models)
  --out FILE     the markdown table
  --json         also print the numbers as JSON
`;

/** The arguments, or the exit code after printing the usage (2 on a bad one, 0 for --help). */
function parseSpine(argv: string[]): SpineArgs | number {
  try {
    const { values } = parseArgs({ args: argv, options: { requests: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' }, clients: { type: 'string', default: '64' }, 'models-dir': { type: 'string', default: MODELS }, out: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const int = (name: 'requests' | 'seconds' | 'clients') => {
      const n = Number(values[name]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`Expected an integer >= 1 for --${name} but received "${values[name]}"`);
      return n;
    };
    return { requests: int('requests'), seconds: int('seconds'), clients: int('clients'), modelsDir: values['models-dir'], out: values.out, json: !!values.json };
  } catch (e) {
    process.stderr.write(`swapserve bench spine: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
}

/** Enqueue -> worker start and TTFT through the SDK (ms per request), after a cold load and 50 warm-ups. */
async function sdkTimings(redisUrl: string, prefix: string, n: number): Promise<{ queueMs: number[]; ttftMs: number[] }> {
  const sdk = new Client({ redisUrl, prefix });
  try {
    await sdk.complete({ model: 'stories260K', prompt: 'Once', max_tokens: 1 }); // cold load, not measured
    for (let i = 0; i < 50; i++) await sdk.complete({ model: 'stories260K', prompt: 'Once', max_tokens: 1 }); // warm-up
    const queueMs: number[] = [];
    const ttftMs: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await sdk.complete({ model: 'stories260K', prompt: 'Once', max_tokens: 1 });
      if (r.path !== 'warm') throw new Error(`expected warm, got ${r.path}`);
      queueMs.push(r.timings.queueMs);
      ttftMs.push(r.timings.ttftMs);
    }
    return { queueMs, ttftMs };
  } finally {
    await sdk.close();
  }
}

/** Redis PING round trips (ms). */
async function pingRtt(conn: RedisClient, n: number): Promise<number[]> {
  const rtt: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = nowMs();
    await conn.ping();
    rtt.push(nowMs() - t0);
  }
  return rtt;
}

/**
 * Bare BullMQ add -> no-op processor start (ms), same Redis. Bare BullMQ in another process would need a second
 * worker binary; the same-process bare worker is the tighter floor (no cross-process clock), so it is the one
 * reported. BullMQ never closes a connection it was given, so both are closed here: an open blocking connection
 * would keep the process alive after the bench.
 */
async function bareBullmq(redisUrl: string, prefix: string, n: number): Promise<number[]> {
  const queueConn = connect(redisUrl);
  const workerConn = connect(redisUrl, { blocking: true });
  const bareQ = new Queue('bare', { connection: queueConn, prefix });
  let resolveJob: ((v: number) => void) | null = null;
  const bareW = new Worker('bare', async (job) => { resolveJob?.(nowMs() - (job.data as { t: number }).t); }, { connection: workerConn, prefix, concurrency: 1 });
  try {
    await bareW.waitUntilReady();
    const bare: number[] = [];
    for (let i = 0; i < n + 50; i++) {
      const p = new Promise<number>((r) => { resolveJob = r; });
      await bareQ.add('j', { t: nowMs() }, { removeOnComplete: true });
      const d = await p;
      if (i >= 50) bare.push(d);
    }
    return bare;
  } finally {
    await bareW.close();
    await bareQ.close();
    workerConn.disconnect();
    queueConn.disconnect();
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseSpine(argv);
  if (typeof args === 'number') return args;
  const { requests: N, seconds, clients } = args;
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-bench-spine-'));
  const redis = await startLocalRedis(join(dir, 'redis'));
  const procs: ChildProcess[] = [];
  const conn = connect(redis.url);
  try {
    const prefix = '{bench}';
    const cfgFile = join(dir, 'config.json');
    writeFileSync(cfgFile, JSON.stringify({
      redisUrl: redis.url, prefix, modelRoots: [args.modelsDir], gateway: { port: 0 },
      budgets: { hostBytes: '16MiB', gpuBytes: '16MiB', scratchBytes: '256MiB' },
      worker: { concurrency: 64 },
      models: [{ id: 'stories260K', path: 'stories260K/stories260K.gguf', maxQueued: 100000 }],
    }));
    process.stderr.write('starting worker (CPU backend) ...\n');
    procs.push(await child(['worker', '--config', cfgFile, '--id', 'bench-w', '--backend', 'cpu', '--threads', '1'], 'ready', {}));

    // --- 1. enqueue -> worker start ---
    const { queueMs, ttftMs } = await sdkTimings(redis.url, prefix, N);
    const rtt = await pingRtt(conn, N);
    const bare = await bareBullmq(redis.url, prefix, N);

    // --- 2. gateway requests/s ---
    process.stderr.write('starting gateway ...\n');
    const port = await freePort();
    procs.push(await child(['gateway', '--config', cfgFile], 'listening', { PORT: String(port) }));
    const base = `http://127.0.0.1:${port}`;
    const body = JSON.stringify({ model: 'stories260K', prompt: 'Once', max_tokens: 1 });
    await load(`${base}/v1/completions`, 'POST', body, clients, 2); // warm-up
    process.stderr.write(`gateway load: ${clients} clients x ${seconds}s ...\n`);
    const gen = await load(`${base}/v1/completions`, 'POST', body, clients, seconds);
    const health = await load(`${base}/healthz`, 'GET', null, clients, Math.max(3, seconds / 2));
    const rows = [
      ['enqueue -> worker start (SDK, warm)', `${f(pct(queueMs, 50))} ms`, `${f(pct(queueMs, 99))} ms`, `target p50 <= 2 ms, p99 <= 10 ms; n=${N}`],
      ['  floor: bare BullMQ add -> processor start', `${f(pct(bare, 50))} ms`, `${f(pct(bare, 99))} ms`, 'same Redis, no-op processor, same process'],
      ['  floor: Redis PING round trip', `${f(pct(rtt, 50), 3)} ms`, `${f(pct(rtt, 99), 3)} ms`, 'loopback'],
      ['TTFT, warm, max_tokens 1 (SDK)', `${f(pct(ttftMs, 50))} ms`, `${f(pct(ttftMs, 99))} ms`, 'enqueue -> first token written'],
      [`gateway POST /v1/completions, ${clients} clients`, `${f(gen.p50)} ms`, `${f(gen.p99)} ms`, `**${f(gen.rps, 0)} req/s**, ${gen.n} ok, ${gen.errors} errors, ${seconds}s`],
      [`  floor: gateway GET /healthz, ${clients} clients`, `${f(health.p50)} ms`, `${f(health.p99)} ms`, `${f(health.rps, 0)} req/s (HTTP only, no Redis)`],
    ];
    const md = [
      `| measure | p50 | p99 | notes |`, `| --- | ---: | ---: | --- |`,
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ].join('\n');
    const header = `device: ${cpus().length}x ${cpus()[0]?.model ?? 'cpu'}, CPU backend, stories260K, max_tokens 1; ${new Date().toISOString()}\ncommand: npx swapserve bench spine ${argv.join(' ')}`.trim();
    process.stdout.write(`${header}\n\n${md}\n`);
    if (args.json) process.stdout.write(JSON.stringify({ queueMs: { p50: pct(queueMs, 50), p99: pct(queueMs, 99) }, bare: { p50: pct(bare, 50), p99: pct(bare, 99) }, gateway: gen, health }) + '\n');
    if (args.out) writeFileSync(args.out, `${header}\n\n${md}\n`);
    return 0;
  } finally {
    for (const p of procs.reverse()) await stop(p).catch(() => {});
    conn.disconnect();
    await redis.stop();
  }
}
