// `swapserve worker [--config FILE] [--id ID] [--device N]`: one GPU (or CPU) worker process.
import { unlinkSync } from 'node:fs';
import { HELP, loadCommandConfig, parseCommand } from './args.ts';
import { checkWorkerGroup, ConfigError } from '../config/config.ts';
import { NativeBackend } from '../worker/native-backend.ts';
import { loadAddon, resolveBackend, type BackendChoice } from '../../native/ts/addon.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { warmModels, warmShapes } from '../../native/ts/warm-shapes.ts';
import { SwapWorker } from '../worker/worker.ts';
import { createLogger } from '../config/log.ts';
import { runUntilStopped } from '../health/lifecycle.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';
import { recordWorkerStart } from '../telemetry/worker-start.ts';

const USAGE = `usage: swapserve worker [options]   (env: REDIS_URL, SWAPSERVE_CONFIG, SWAPSERVE_BACKEND)
  --config FILE      config file (YAML or JSON)
  --id ID            worker id (default: <host>-<pid>-<random>)
  --backend B        auto | cpu | cuda (default: env SWAPSERVE_BACKEND, else auto)
  --device N         CUDA device ordinal (default 0)
  --threads N        CPU compute threads, 0 = all cores (default 0)
  --no-self-load     consume only the queues the scheduler assigns
  --group NAME       worker group (config placement.groups): serve only the models placed on it
`;

export async function run(argv: string[]): Promise<number> {
  // Start-up phases (ms since the process started), printed in the ready line: a scale-from-zero start waits on all.
  const t = { imported: performance.now(), backend: 0, opened: 0 };
  const parsed = parseCommand('worker', USAGE, {
    args: argv,
    options: {
      config: { type: 'string', short: 'c' }, id: { type: 'string' }, backend: { type: 'string' }, device: { type: 'string' },
      threads: { type: 'string' }, 'no-self-load': { type: 'boolean' }, group: { type: 'string' }, ...HELP,
    },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const config = loadCommandConfig('worker', values.config, { needsRedis: true });
  if (typeof config === 'number') return config;
  if (values.group !== undefined) {
    try {
      config.worker.group = checkWorkerGroup(config, values.group, '--group');
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      process.stderr.write(`swapserve worker: ${e.message}\n`);
      return 2;
    }
  }
  const backend = values.backend as 'auto' | 'cpu' | 'cuda' | undefined;
  if (backend !== undefined && !['auto', 'cpu', 'cuda'].includes(backend)) {
    process.stderr.write(`swapserve worker: --backend must be auto, cpu or cuda, received "${backend}"\n`);
    return 2;
  }
  const device = values.device === undefined ? 0 : Number(values.device);
  const threads = values.threads === undefined ? 0 : Number(values.threads);
  if (!Number.isInteger(device) || device < 0 || !Number.isInteger(threads) || threads < 0) {
    process.stderr.write('swapserve worker: --device and --threads take integers >= 0\n');
    return 2;
  }
  const warmEngine = process.env.SWAPSERVE_WARM_ENGINE;
  if (warmEngine !== undefined && warmEngine !== '' && warmEngine !== '0' && warmEngine !== '1') {
    process.stderr.write(`swapserve worker: SWAPSERVE_WARM_ENGINE must be 0 or 1, received "${warmEngine}"\n`);
    return 2;
  }
  // Before the worker: its BullMQ consumers take the telemetry option at creation. /metrics: SWAPSERVE_METRICS_PORT.
  initTelemetry({ serviceName: 'swapserve-worker' });
  t.backend = performance.now();
  // The first models of the config only: reading a header costs up to ~0.1 s (a GGUF's tokenizer arrays), and the
  // registration reads it again.
  const warmMs = await warmUpEngine(backend, device, config.models.slice(0, WARM_MODEL_FILES).map((m) => m.path), warmEngine === '1');
  const log = createLogger({ service: 'worker', level: config.log.level });
  const native = new NativeBackend(config, { backend, device, threads, log });
  await injectStickyOnce(native);
  t.opened = performance.now();
  const worker = new SwapWorker({
    config, backend: native, log,
    ...(values.id ? { workerId: values.id } : {}),
    ...(values['no-self-load'] ? { consumeAll: false } : {}),
  });
  await worker.start();
  const ready = performance.now();
  recordWorkerStart({
    worker: worker.workerId, backend: native.kind, gpu: native.kind === 'cuda' ? device : null,
    importedMs: t.imported, runtimeOpenMs: t.opened, readyMs: ready,
  });
  const ms = (a: number, b: number): string => (b - a).toFixed(0);
  process.stdout.write(`worker ${worker.workerId} ready (${config.models.length} models) ${ms(0, ready)} ms after process start: ` +
    `node + imports ${ms(0, t.imported)}, config + telemetry ${ms(t.imported, t.backend)}, ${native.kind} runtime ${ms(t.backend, t.opened)}${warmMs === null ? '' : ` (engine warm-up ${warmMs.toFixed(0)})`}, ` +
    `redis + registration ${ms(t.opened, ready)}\n`);
  const code = await runUntilStopped({
    log, beginDrain: () => worker.beginDrain(), close: () => worker.close(), exitRequested: worker.exitRequested,
    health: config.health.port === null ? null : { port: config.health.port, host: config.health.host, checks: worker },
    onHealth: (h) => log.info({ url: h.url }, 'health endpoints listening'),
    graceMs: config.shutdown.graceMs, timeoutMs: config.shutdown.timeoutMs,
  });
  await shutdownTelemetry();
  if (code !== 0) process.exit(code);
  return code;
}

/** Model files whose shapes the CUDA warm-up reads (the config's first ones). */
const WARM_MODEL_FILES = 8;

/**
 * CUDA only: the process's first library matrix products cost about 0.16 s (the fleet replay on an H100 saw a
 * worker's first prefill take 170 ms against 4 ms later), and each new model width its own kernels (32 ms against
 * 5 ms, run 15), so the worker pays them here for its configured models' shapes (read from the files' headers),
 * before its pools are allocated and before it reports ready, not its first request. A failure only costs that time
 * back: logged, not fatal; a model whose header cannot be read is left to its own registration to report.
 */
async function warmUpEngine(choice: BackendChoice | undefined, device: number, modelPaths: string[], enginePass: boolean): Promise<number | null> {
  if (resolveBackend(choice) !== 'cuda') return null;
  try {
    const addon = loadAddon('cuda');
    if (!addon.warmUp) return null;
    const sources = await Promise.all(modelPaths.map((p) => openModel(p).catch(() => null)));
    const models = sources.filter((s) => s !== null).map((s) => ({ config: s.config, dtype: s.dtype }));
    // The engine pass per shape is opt-in until a GPU run shows what it saves (bench/device/s6c.sh).
    return await addon.warmUp(device, warmShapes(models), enginePass ? warmModels(models) : []);
  } catch (e) {
    process.stderr.write(`swapserve worker: engine warm-up failed, the first request will pay it: ${(e as Error).message}\n`);
    return null;
  }
}

/**
 * Chaos tests and the GPU proof only (issue 11): with SWAPSERVE_TEST_STICKY_ONCE=<file>, the first worker process
 * that removes that file arms the runtime's test hook, so its next move fails with a sticky device error (CUDA and
 * CPU alike); with SWAPSERVE_TEST_STICKY_PASS_ONCE=<file>, so its next engine pass does (on CUDA a genuine one: a
 * kernel that traps inside the pass). Removing the file makes it once only: the process its supervisor restarts
 * runs normally.
 */
async function injectStickyOnce(native: NativeBackend): Promise<void> {
  const take = (file: string | undefined): string | null => {
    if (!file) return null;
    try {
      unlinkSync(file);
      return file;
    } catch {
      return null; // already used by an earlier process
    }
  };
  const move = take(process.env.SWAPSERVE_TEST_STICKY_ONCE);
  const pass = take(process.env.SWAPSERVE_TEST_STICKY_PASS_ONCE);
  if (!move && !pass) return;
  // Loaded only here: production paths never load the addon's testing hooks.
  const { failNextMove, failNextPass } = await import('../../native/ts/testing.ts');
  if (move) {
    process.stderr.write(`swapserve worker: TEST HOOK armed (${move}): the next move fails with cuda_sticky\n`);
    failNextMove(native.runtimeForTest, 'cuda_sticky');
  }
  if (pass) {
    process.stderr.write(`swapserve worker: TEST HOOK armed (${pass}): the next engine pass fails with cuda_sticky\n`);
    failNextPass(native.runtimeForTest, 'cuda_sticky');
  }
}
