// The MPS daemon's lifecycle and what co-located workers are given (issue 14), without a GPU: a fake
// `nvidia-cuda-mps-control` and a fake `nvidia-smi` (real executables on PATH, shell scripts) record every call with
// its environment; stand-in workers (real processes) write the environment and arguments they were started with.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MpsDaemon, MpsError } from '../../services/scheduler/mps.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { mpsFor, planColocation } from '../../services/scheduler/colocation-setup.ts';
import { parseConfig } from '../../services/config/config.ts';

/** A folder with fake nvidia-cuda-mps-control and nvidia-smi, and the PATH that finds them first. */
function fakeTools(computeModes = '0, Default\n1, Exclusive_Process\n2, Prohibited'): { dir: string; env: NodeJS.ProcessEnv; calls: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-mps-'));
  const log = join(dir, 'calls.log');
  // The control: `-d` "starts" the daemon (a marker in the pipe folder, as the real one makes its pipes there);
  // on stdin, get_server_list answers 0 while the marker exists (the real one fails when no daemon listens), quit
  // removes it. Every call is one line: args, stdin, and the two MPS folders from its environment.
  writeFileSync(join(dir, 'nvidia-cuda-mps-control'), `#!/bin/sh
if [ "$1" = "-d" ]; then
  echo "control -d pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY" >> ${JSON.stringify(log)}
  touch "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0
fi
read cmd
echo "control stdin=$cmd pipe=$CUDA_MPS_PIPE_DIRECTORY" >> ${JSON.stringify(log)}
case "$cmd" in
  get_server_list) [ -e "$CUDA_MPS_PIPE_DIRECTORY/control" ] || { echo "Cannot find MPS control daemon process" >&2; exit 1; } ;;
  quit) rm -f "$CUDA_MPS_PIPE_DIRECTORY/control" ;;
esac
exit 0
`);
  writeFileSync(join(dir, 'nvidia-smi'), `#!/bin/sh\necho "smi $*" >> ${JSON.stringify(log)}\nprintf '${computeModes.replace(/\n/g, '\\n')}\\n'\n`);
  chmodSync(join(dir, 'nvidia-cuda-mps-control'), 0o755);
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
  return { dir, env, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter((l) => !l.startsWith('smi ')) : []) };
}

// A stand-in worker: writes {argv, env subset} to <dir>/<id>.json, stays up until SIGTERM (exit 0).
const standIn = (dir: string): string[] => [
  '-e',
  `const a = process.argv; const id = a[a.indexOf('--id') + 1];
   process.on('SIGTERM', () => process.exit(0));
   const e = process.env; const pick = {};
   for (const k of ['CUDA_MPS_PIPE_DIRECTORY', 'CUDA_MPS_LOG_DIRECTORY', 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE', 'SWAPSERVE_GPU_SHARE']) if (e[k] !== undefined) pick[k] = e[k];
   require('node:fs').writeFileSync(require('node:path').join(${JSON.stringify(dir)}, id + '.json'), JSON.stringify({ pid: process.pid, argv: a.slice(a.indexOf('--id')), env: pick }));
   setInterval(() => {}, 1000);`,
  '--',
];

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('MpsDaemon (fake nvidia-cuda-mps-control on PATH)', () => {
  it('starts with its folders under dataDir, answers health checks, and quits after its last client', async () => {
    const t = fakeTools();
    try {
      const data = join(t.dir, 'data');
      const mps = new MpsDaemon({ dataDir: data, env: t.env, activeThreadPercentage: 50 });
      const pipe = join(data, 'mps', 'pipe');
      const logd = join(data, 'mps', 'log');
      assert.equal(await mps.healthy(), false, 'no daemon yet');
      const envA = await mps.acquire('a');
      assert.deepEqual(envA, { CUDA_MPS_PIPE_DIRECTORY: pipe, CUDA_MPS_LOG_DIRECTORY: logd, CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: '50' });
      await mps.acquire('b');
      assert.equal(await mps.healthy(), true);
      await mps.release('a');
      assert.equal(await mps.healthy(), true, 'b still holds it');
      await mps.release('b');
      assert.equal(await mps.healthy(), false, 'quit after the last client');
      // The recorded sequence: probe (none running), -d, probe until it answers, ..., quit.
      const d = t.calls().indexOf(`control -d pipe=${pipe} log=${logd}`);
      assert.ok(d > 0, t.calls().join('\n'));
      assert.equal(t.calls()[d - 1], `control stdin=get_server_list pipe=${pipe}`, 'before -d: is one already running at our pipe?');
      assert.equal(t.calls()[d + 1], `control stdin=get_server_list pipe=${pipe}`, 'after -d: it answers');
      const calls = t.calls();
      assert.equal(calls.filter((c) => c.startsWith('control -d')).length, 1, 'one start for two clients');
      assert.equal(calls.filter((c) => c.includes('stdin=quit')).length, 1, 'one quit, after the last release');
      assert.ok(calls.indexOf(`control -d pipe=${pipe} log=${logd}`) < calls.indexOf(`control stdin=quit pipe=${pipe}`));
      assert.ok(calls.every((c) => c.includes(`pipe=${pipe}`)), 'every call sees our pipe folder');
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('restarts a daemon that stopped answering (ensureHealthy), and adopts one already running', async () => {
    const t = fakeTools();
    try {
      const mps = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env });
      await mps.start();
      rmSync(join(mps.pipeDir, 'control')); // the daemon died
      await mps.ensureHealthy();
      assert.equal(await mps.healthy(), true);
      assert.equal(t.calls().filter((c) => c.startsWith('control -d')).length, 2, 'started again');
      const other = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env });
      await other.start();
      assert.equal(t.calls().filter((c) => c.startsWith('control -d')).length, 2, 'adopted, not started a third time');
      await mps.stop();
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('clear errors: control missing, nvidia-smi missing, a GPU whose compute mode forbids MPS', async () => {
    const t = fakeTools();
    try {
      const missing = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env, control: 'no-such-mps-control-here' });
      await assert.rejects(missing.start(), (e: unknown) => e instanceof MpsError && e.code === 'mps_unavailable' && /no-such-mps-control-here was not found/.test(e.message));
      const mps = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env });
      await mps.checkComputeMode([0, 1]);
      await assert.rejects(mps.checkComputeMode([0, 2]), (e: unknown) => e instanceof MpsError && e.code === 'mps_compute_mode' && /GPU 2 is in compute mode Prohibited/.test(e.message));
      await assert.rejects(mps.checkComputeMode([5]), (e: unknown) => e instanceof MpsError && e.code === 'mps_unavailable' && /GPU 5 is not listed/.test(e.message));
      const noSmi = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env, smi: 'no-such-smi-here' });
      await assert.rejects(noSmi.checkComputeMode([0]), (e: unknown) => e instanceof MpsError && e.code === 'mps_unavailable');
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe('LocalProcessProvider with co-location under MPS', () => {
  it('two workers per GPU with their share and the MPS environment; the daemon starts before the first and quits after the last', async () => {
    const t = fakeTools();
    const out = join(t.dir, 'out');
    try {
      const config = parseConfig({ dataDir: join(t.dir, 'data'), coLocation: { enabled: true, requireGain: false, gpus: [{ device: 1, workersPerGpu: 2 }], mps: { activeThreadPercentage: 60 } } }, {});
      const plan = planColocation(config, 2, []);
      assert.deepEqual(plan.perGpu, [1, 2]);
      const mps = await mpsFor(config, plan, { env: t.env });
      assert.ok(mps);
      require_mkdir(out);
      const provider = new LocalProcessProvider({
        baseArgs: standIn(out), gpus: 2, workersPerGpu: (d) => plan.perGpu[d], mps, stdio: 'ignore', killAfterMs: 3000, env: t.env, log: () => undefined,
      });
      for (const id of ['w0', 'w1', 'w2']) await provider.start(id, { model: null });
      await assert.rejects(provider.start('w3', { model: null }), /all 2 GPUs have their workers/);
      await until('three stand-ins', () => ['w0', 'w1', 'w2'].every((id) => existsSync(join(out, `${id}.json`))));
      const seen = Object.fromEntries(['w0', 'w1', 'w2'].map((id) => [id, JSON.parse(readFileSync(join(out, `${id}.json`), 'utf8')) as { argv: string[]; env: Record<string, string> }]));
      const dev = (id: string) => seen[id].argv[seen[id].argv.indexOf('--device') + 1];
      assert.deepEqual(['w0', 'w1', 'w2'].map(dev), ['0', '1', '1']);
      assert.deepEqual(seen.w0.env, {}, 'GPU 0 is not co-located: no share, no MPS');
      const pipe = join(config.dataDir, 'mps', 'pipe');
      for (const id of ['w1', 'w2']) {
        assert.deepEqual(seen[id].env, { CUDA_MPS_PIPE_DIRECTORY: pipe, CUDA_MPS_LOG_DIRECTORY: join(config.dataDir, 'mps', 'log'), CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: '60', SWAPSERVE_GPU_SHARE: '2' });
      }
      // A worker started with the share gets half the budgets.
      const shared = parseConfig({ budgets: { gpuBytes: '4GiB', hostBytes: '8GiB', scratchBytes: '1GiB' } }, { SWAPSERVE_GPU_SHARE: seen.w1.env.SWAPSERVE_GPU_SHARE });
      assert.deepEqual(shared.budgets, { gpuBytes: 2 * 2 ** 30, hostBytes: 4 * 2 ** 30, scratchBytes: 2 ** 29 });
      assert.equal(t.calls().filter((c) => c.startsWith('control -d')).length, 1);
      await provider.stop('w1');
      assert.equal(await mps!.healthy(), true, 'w2 still a client');
      await provider.stop('w2');
      await until('quit after the last client', () => t.calls().some((c) => c.includes('stdin=quit')));
      assert.equal(await mps!.healthy(), false);
      await provider.stop('w0');
      assert.deepEqual(provider.running(), []);
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('a crash of one co-located worker drains and restarts every worker on that GPU, under the same ids', async () => {
    const t = fakeTools();
    const out = join(t.dir, 'out');
    try {
      require_mkdir(out);
      const mps = new MpsDaemon({ dataDir: join(t.dir, 'data'), env: t.env });
      const exits: string[] = [];
      const lines: string[] = [];
      const provider = new LocalProcessProvider({
        baseArgs: standIn(out), gpus: 2, workersPerGpu: (d) => (d === 0 ? 2 : 1), mps, stdio: 'ignore', killAfterMs: 3000, env: t.env,
        onExit: (id, code, signal) => exits.push(`${id}:${signal ?? code}`), log: (l) => lines.push(l),
      });
      for (const id of ['a', 'b', 'c']) await provider.start(id, { model: null });
      await until('stand-ins', () => ['a', 'b', 'c'].every((id) => existsSync(join(out, `${id}.json`))));
      const pidA = await pidOf(out, 'a');
      for (const id of ['a', 'b']) rmSync(join(out, `${id}.json`));
      rmSync(join(mps.pipeDir, 'control')); // the fatal error took the MPS server down too
      process.kill(pidA, 'SIGKILL');
      await until('a and b restarted', () => ['a', 'b'].every((id) => existsSync(join(out, `${id}.json`))));
      assert.deepEqual(exits.sort(), ['a:SIGKILL', 'b:0'], 'b was drained (SIGTERM, clean exit); c on GPU 1 untouched');
      assert.deepEqual(provider.running().sort(), ['a', 'b', 'c']);
      assert.ok(lines.some((l) => /ERROR co-located worker a on GPU 0 exited \(SIGKILL\)/.test(l)), lines.join('\n'));
      assert.equal(await mps.healthy(), true, 'the daemon was restarted before the group');
      assert.equal(t.calls().filter((c) => c.startsWith('control -d')).length, 2);
      // A clean exit (a scheduler-asked stop) is no fault.
      await provider.stop('a');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(provider.running().sort(), ['b', 'c']);
      await provider.close();
      await Promise.all(['b', 'c'].map((id) => provider.stop(id)));
      // b's exit released the daemon's last client: its quit (fire-and-forget at the exit) ends before the folder goes.
      await until('no client holds the daemon', () => mps.holders().length === 0);
      await mps.stop();
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

function require_mkdir(d: string): void {
  mkdirSync(d, { recursive: true });
}

async function pidOf(out: string, id: string): Promise<number> {
  return (JSON.parse(readFileSync(join(out, `${id}.json`), 'utf8')) as { pid: number }).pid;
}
