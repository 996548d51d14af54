// `swapserve scheduler [--config FILE] [options]`: one leader-elected scheduler (run two or more for failover).
import { readFileSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { createLogger, type Logger } from '../config/log.ts';
import { runUntilStopped } from '../health/lifecycle.ts';
import { HELP, parseCommand } from './args.ts';
import { isModelFileError, openModel } from '../../native/ts/model/index.ts';
import { ConfigError, HOST_BYTES_ENV, groupWorkerCaps, loadConfig, placementGroupsOf, type Config, type ModelEntry } from '../config/config.ts';
import { modelSettings, POLICY_DEFAULTS, type PolicyConfig } from '../scheduler/policy.ts';
import { LocalProcessProvider, type WorkerProvider } from '../scheduler/provider.ts';
import { KubernetesProvider } from '../scheduler/kubernetes-provider.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { mpsFor, planColocation } from '../scheduler/colocation-setup.ts';
import { observedFor } from '../fleet/observed-workload.ts';
import { MpsError } from '../scheduler/mps.ts';
import { gpusToUse, planHostLayout } from '../scheduler/host-layout.ts';
import { probeHost } from '../scheduler/host-probe.ts';
import { cudaDeviceCount } from './gpus.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';
import type { ModelSettings } from '../scheduler/state.ts';

const USAGE = `usage: swapserve scheduler [--config FILE] [options]   (env: REDIS_URL, SWAPSERVE_CONFIG)

  --id ID                 this scheduler's lease holder id (default: random)
  --lease-ms MS           leader lease; a standby takes over within it (default 5000)
  --tick-ms MS            policy tick: idle demotion, scale-in, retries (default 1000)
  --poll-ms MS            longest wait for a queue event before looking again (default 500)
  --full-poll-ms MS       every model's queue counts re-read this often, events or not (default 2000)
  --max-workers N         most workers the local provider starts (default: one per GPU, else 1)
  --gpus N                GPUs the local provider hands out, one per worker as --device, each with its split host
                          budget and NUMA binding (default: config host.gpus, else nvidia-smi's count; 0 under
                          SWAPSERVE_BACKEND=cpu)
  --min-workers N         workers kept when idle (default ${POLICY_DEFAULTS.minWorkers}; with --provider none: all,
                          since workers it drains could not be started again)
  --worker-idle-ms MS     drain a worker idle this long (default ${POLICY_DEFAULTS.workerIdleMs})
  --starvation-ms MS      a model waiting this long may reclaim a busy GPU (default ${POLICY_DEFAULTS.starvationMs})
  --max-replicas N        GPU replicas per model (default 64)
  --provider local|none|kubernetes
                          start workers as local processes (\`swapserve worker --id <id> --config FILE
                          --no-self-load\`), never start any, or create worker pods (default local)
  --pod-template FILE     kubernetes: the worker pod (YAML or JSON; the Helm chart mounts one)
  --namespace NS          kubernetes: where worker pods go (default: env POD_NAMESPACE, else "default")
  --worker-arg=ARG        extra argument for started workers (repeatable; e.g. --worker-arg=--threads --worker-arg=2)
`;


/**
 * A model's arena bytes from its validated files: the same `openModel` as `inspect` and the worker (bounded headers,
 * non-blocking opens, deadlines), so a hostile or blocking file is reported here, at registration, and never
 * stalls the scheduler. A rejected model is logged (one line) and registered with 0 bytes: its workers refuse it
 * with the same error.
 */
export async function validatedBytes(m: ModelEntry, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  try {
    return (await openModel(m.path)).layout.totalBytes;
  } catch (e) {
    log(`swapserve scheduler: model "${m.id}" rejected: ${isModelFileError(e) ? `${e.code} ${e.message}` : (e as Error).message}`);
    return 0;
  }
}

/** The worker pod template for --provider kubernetes (YAML or JSON), checked for a container. */
function readPodTemplate(file: string | undefined): V1Pod {
  if (!file) throw new ConfigError('--provider kubernetes needs --pod-template FILE');
  let pod: V1Pod;
  try {
    pod = parseYaml(readFileSync(file, 'utf8')) as V1Pod;
  } catch (e) {
    throw new ConfigError(`cannot read the pod template ${file}: ${(e as Error).message}`);
  }
  if (!pod?.spec?.containers?.length) throw new ConfigError(`the pod template ${file} has no spec.containers`);
  return pod;
}

export async function settingsFromConfig(cfg: Config, maxReplicas: number): Promise<ModelSettings[]> {
  const bytes = await Promise.all(cfg.models.map((m) => validatedBytes(m)));
  return cfg.models.map((m: ModelEntry, i) => {
    const groups = placementGroupsOf(cfg, m.id);
    return modelSettings(m, { bytes: bytes[i], maxReplicas, concurrency: cfg.worker.concurrency, ...(groups ? { groups } : {}) });
  });
}

function positiveInt(name: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`Expected an integer >= ${min} for --${name} but received "${v}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand('scheduler', USAGE, {
    args: argv,
    options: {
      config: { type: 'string', short: 'c' }, id: { type: 'string' }, 'lease-ms': { type: 'string' }, 'tick-ms': { type: 'string' },
      'poll-ms': { type: 'string' }, 'full-poll-ms': { type: 'string' }, 'max-workers': { type: 'string' }, 'min-workers': { type: 'string' },
      'worker-idle-ms': { type: 'string' }, gpus: { type: 'string' }, 'starvation-ms': { type: 'string' }, 'max-replicas': { type: 'string' },
      provider: { type: 'string' }, 'pod-template': { type: 'string' }, namespace: { type: 'string' }, 'worker-arg': { type: 'string', multiple: true }, ...HELP,
    },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  let scheduler: Scheduler;
  let config: Config;
  let logger: Logger;
  try {
    config = loadConfig(values.config);
    logger = createLogger({ service: 'scheduler', level: config.log.level });
    if (!config.redisUrl) {
      process.stderr.write('swapserve scheduler: no Redis configured; set REDIS_URL or redisUrl in the config\n');
      return 2;
    }
    const provider = values.provider ?? 'local';
    if (provider !== 'local' && provider !== 'none' && provider !== 'kubernetes') throw new ConfigError(`Expected local, none or kubernetes for --provider but received "${provider}"`);
    // The host (issue 16): its GPUs (none under SWAPSERVE_BACKEND=cpu), their NUMA nodes, the RAM they share.
    // host.gpus and the CUDA fallback concern the workers this process starts (the local provider) only: a scheduler
    // with --provider none or kubernetes often runs where there is no GPU at all (a container of its own).
    const local = provider === 'local';
    const facts = probeHost({ gpus: process.env.SWAPSERVE_BACKEND !== 'cpu', ...(local ? { deviceCount: cudaDeviceCount } : {}) });
    const gpus = values.gpus !== undefined ? positiveInt('gpus', values.gpus, 0, 0) : local ? gpusToUse(facts.gpus.length, config.host.gpus) : facts.gpus.length;
    // Co-location (issue 14): workers per GPU where the gain table says it pays; the MPS daemon for those GPUs.
    const models = await settingsFromConfig(config, positiveInt('max-replicas', values['max-replicas'], 64));
    const coloc = provider === 'local' ? planColocation(config, gpus, models.map((m) => m.bytes), observedFor(config)) : null;
    for (const r of coloc?.reasons ?? []) logger.info(r);
    const mps = coloc ? await mpsFor(config, coloc, { log: (l) => logger.info(l) }) : null;
    const slots = coloc ? coloc.perGpu.reduce((a, b) => a + b, 0) : gpus;
    // Each started worker's pinned host budget (the machine's RAM split over every slot) and NUMA node.
    const perGpu = coloc?.perGpu ?? Array.from({ length: gpus }, () => 1);
    const layout = local && gpus > 0
      ? planHostLayout(facts, perGpu.flatMap((k, d) => Array.from({ length: k }, () => ({ device: d, share: k }))), {
        hostBytesPerWorker: config.budgets.hostBytes, numa: config.host.numa, ...(config.host.pinnedBytes === undefined ? {} : { pinnedBytes: config.host.pinnedBytes }),
      })
      : null;
    for (const note of layout?.notes ?? []) logger.info(note);
    const placement = layout ? (d: number) => {
      const w = layout.workers.find((x) => x.device === d)!;
      return { prefix: w.prefix, env: { [HOST_BYTES_ENV]: String(w.hostBytes) } };
    } : null;
    const policy: Partial<PolicyConfig> = {
      maxWorkers: positiveInt('max-workers', values['max-workers'], provider === 'none' ? 0 : Math.max(1, slots), 0),
      minWorkers: positiveInt('min-workers', values['min-workers'], POLICY_DEFAULTS.minWorkers, 0),
      workerIdleMs: positiveInt('worker-idle-ms', values['worker-idle-ms'], POLICY_DEFAULTS.workerIdleMs),
      starvationMs: positiveInt('starvation-ms', values['starvation-ms'], POLICY_DEFAULTS.starvationMs),
      groupMaxWorkers: groupWorkerCaps(config),
    };
    if (provider === 'none') {
      policy.maxWorkers = 0;
      if (values['min-workers'] === undefined) policy.minWorkers = Number.MAX_SAFE_INTEGER;
    }
    // Workers started here are the scheduler's: they consume only the queues it assigns.
    const configArgs = values.config ? ['--config', values.config] : [];
    const workers: WorkerProvider = provider === 'kubernetes'
      ? new KubernetesProvider({ namespace: values.namespace ?? process.env.POD_NAMESPACE ?? 'default', template: readPodTemplate(values['pod-template']), log: logger })
      : new LocalProcessProvider({
        gpus, extraArgs: [...configArgs, '--no-self-load', ...(values['worker-arg'] ?? [])],
        workersPerGpu: (d) => coloc?.perGpu[d] ?? 1, mps, placement, log: (l) => (l.startsWith('ERROR') ? logger.error(l) : logger.info(l)),
      });
    scheduler = new Scheduler({
      redisUrl: config.redisUrl, prefix: config.prefix, models,
      policy, provider: workers, ...(values.id ? { id: values.id } : {}),
      logger,
      leaseMs: positiveInt('lease-ms', values['lease-ms'], 5000, 100),
      tickMs: positiveInt('tick-ms', values['tick-ms'], 1000, 10),
      pollMs: positiveInt('poll-ms', values['poll-ms'], 500, 10),
      fullPollMs: positiveInt('full-poll-ms', values['full-poll-ms'], 2000, 10),
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof MpsError) {
      process.stderr.write(`swapserve scheduler: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  initTelemetry({ serviceName: 'swapserve-scheduler' });
  await scheduler.start();
  process.stdout.write(`scheduler ${scheduler.id} started (standby until it holds the lease)\n`);
  const s = scheduler;
  const code = await runUntilStopped({
    log: logger, beginDrain: () => s.beginDrain(), close: () => s.close(),
    health: config.health.port === null ? null : { port: config.health.port, host: config.health.host, checks: { live: () => true, ready: () => s.ready() } },
    onHealth: (h) => logger.info({ url: h.url }, 'health endpoints listening'),
    graceMs: config.shutdown.graceMs, timeoutMs: config.shutdown.timeoutMs,
  });
  await shutdownTelemetry();
  if (code !== 0) process.exit(code);
  return code;
}
