// `swapserve up` (= `npm start`): the whole stack on this machine — Redis (REDIS_URL, else a private
// redis-server), the gateway on 127.0.0.1:8080, the scheduler, and one worker per GPU (or one CPU worker).
// Without a config it serves demo models with random weights, made on first start.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HELP, parseCommand, STDIO, type CommandIo } from './args.ts';
import { ConfigError, loadConfig, parseConfig, type Config } from '../config/config.ts';
import { ensureDemoModels } from '../dev/demo-models.ts';
import { RedisNotFoundError, startLocalRedis, type LocalRedis } from '../dev/local-redis.ts';
import { startGateway, type Gateway } from '../gateway/server.ts';
import { clusterKeys } from '../../contracts/cluster.ts';
import { connect } from '../client/queues.ts';
import { setLeaderSource } from '../telemetry/metrics.ts';
import { Supervisor } from './supervise.ts';
import { LeaderLease } from '../scheduler/lease.ts';
import { initTelemetry, shutdownTelemetry } from '../telemetry/sdk.ts';
import { GPU_SHARE_ENV } from '../config/config.ts';
import { mpsFor, planColocation, type ColocationPlan } from '../scheduler/colocation-setup.ts';
import { observedFor, observedWorkloads } from '../fleet/observed-workload.ts';
import { coLocationOf, deployOnHost, loadPlanGroups, type DeployGroup, type HostDeployment } from '../fleet/plan-deploy.ts';
import { FleetInputError } from '../fleet/calibration.ts';
import type { MpsDaemon } from '../scheduler/mps.ts';
import { validatedBytes } from './scheduler.ts';
import { describeWorker, gpusToUse, planHostLayout, type HostFacts, type Slot } from '../scheduler/host-layout.ts';
import { probeGpuName, probeHost } from '../scheduler/host-probe.ts';
import { cudaDeviceCount } from './gpus.ts';
import { HOST_BYTES_ENV } from '../config/config.ts';

const BIN = new URL('../../bin/swapserve.js', import.meta.url).pathname;

type ReadyProbe = Pick<ReturnType<typeof connect>, 'exists' | 'zmscore'>;

/**
 * Polls Redis until the stack serves a request at once: the scheduler holds the leader lease (when `needLeader`) and
 * every worker of `workerIds` has sent a heartbeat since `sinceMs` (ms since the epoch). Gives up after `timeoutMs`,
 * naming what is missing; 'stopped' when `stopped()` turns true first.
 */
export async function waitReady(redis: ReadyProbe, keys: ReturnType<typeof clusterKeys>, workerIds: string[], sinceMs: number, needLeader: boolean,
  timeoutMs: number, stopped: () => boolean, pollMs = 50): Promise<{ ready: boolean; ms: number; missing: string } | 'stopped'> {
  const t0 = Date.now();
  for (;;) {
    if (stopped()) return 'stopped';
    const leader = !needLeader || (await redis.exists(keys.leader())) === 1;
    const beats = workerIds.length ? await redis.zmscore(keys.workers(), ...workerIds) : [];
    const absent = workerIds.filter((_, i) => beats[i] === null || Number(beats[i]) < sinceMs);
    const missing = [...(leader ? [] : ['no scheduler holds the lease']), ...(absent.length ? [`worker${absent.length > 1 ? 's' : ''} ${absent.join(', ')} not registered`] : [])].join('; ');
    const ms = Date.now() - t0;
    if (!missing) return { ready: true, ms, missing };
    if (ms >= timeoutMs) return { ready: false, ms, missing };
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

const USAGE = `usage: swapserve up [options]   (env: REDIS_URL, PORT, HOST, SWAPSERVE_CONFIG, SWAPSERVE_BACKEND)
  --config FILE      config file (YAML or JSON); none: demo models with random weights
  --data-dir DIR     where demo models and run files go (default ~/.swapserve)
  --workers N        worker processes (default: one per GPU, else one CPU worker)
  --no-scheduler     run without the scheduler (workers load models on demand themselves)
  --plan FILE        run this host's share of a fleet plan (\`swapserve plan --out\` YAML or --json): the groups of
                     its GPU type on its GPUs, their workers per GPU and MPS; the plan's groups become placement.groups
  --group NAME       with --plan: run only this group of the plan (repeatable; default: every group of this GPU type)
  --gpu-type NAME    with --plan: this host's GPU type (default: nvidia-smi's name of GPU 0)
  --workload-from F  token trace (Azure LLM CSV: ContextTokens, GeneratedTokens[, model]): co-location judges a model
                     without its own workload at its median request there (config coLocation.workloadFrom)
  --dry-run          print the workers it would start (GPU, group, co-location) and exit
`;

/** What \`up\` reads of the host; tests hand in a host of their own. */
export interface UpHost {
  probe(): HostFacts;
  /** The GPU model name (nvidia-smi), or null when none is listed. */
  gpuName(): string | null;
}

const LOCAL_HOST: UpHost = {
  // The host (issue 16): its GPUs (none under SWAPSERVE_BACKEND=cpu), their NUMA nodes, the RAM they share.
  probe: () => probeHost({ gpus: process.env.SWAPSERVE_BACKEND !== 'cpu', deviceCount: cudaDeviceCount }),
  gpuName: () => (process.env.SWAPSERVE_BACKEND === 'cpu' ? null : probeGpuName()),
};

export async function run(argv: string[], io: CommandIo = STDIO, host: UpHost = LOCAL_HOST): Promise<number> {
  const parsed = parseCommand('up', USAGE, {
    args: argv,
    options: {
      config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' }, workers: { type: 'string' }, 'no-scheduler': { type: 'boolean' },
      plan: { type: 'string' }, group: { type: 'string', multiple: true }, 'gpu-type': { type: 'string' }, 'workload-from': { type: 'string' },
      'dry-run': { type: 'boolean' }, ...HELP,
    },
  }, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const log = (s: string) => io.out(`[up] ${s}\n`);
  let config: Config;
  let planGroups: DeployGroup[] | null = null;
  try {
    config = loadConfig(values.config);
    if (values['data-dir']) config.dataDir = values['data-dir'];
    if (values['workload-from']) {
      config.coLocation.workloadFrom = values['workload-from'];
      observedWorkloads([], values['workload-from']); // a bad trace is refused here, before anything starts
    } else if (config.coLocation.workloadFrom) {
      observedWorkloads([], config.coLocation.workloadFrom);
    }
    if (values.plan) {
      if (values.workers) throw new ConfigError('--plan and --workers both say which workers to start: give one');
      if (config.placement.groups.length > 0) throw new ConfigError('--plan: the config has placement.groups of its own; the plan\'s groups would replace them (remove them, or leave out --plan)');
      planGroups = loadPlanGroups(values.plan);
    } else if (values.group || values['gpu-type']) {
      throw new ConfigError(`--${values.group ? 'group' : 'gpu-type'} chooses among a fleet plan's groups: give --plan FILE`);
    }
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof FleetInputError)) throw e;
    io.err(`swapserve up: ${e.message}\n`);
    return 2;
  }

  let demo = false;
  if (config.models.length === 0 && !planGroups) {
    const d = await ensureDemoModels(config.dataDir);
    demo = true;
    config = parseConfig({
      ...config, modelRoots: [...config.modelRoots, d.root], models: d.models,
      budgets: { ...config.budgets, ...d.budgets },
    }, { ...process.env, PORT: process.env.PORT ?? String(config.gateway.port) });
    log(`no models configured: serving ${d.models.length} DEMO models with RANDOM weights (they write gibberish)${d.created ? ', written to ' + d.root : ''}`);
    log(`budgets: GPU tier ${(d.budgets.gpuBytes / 2 ** 20).toFixed(1)} MiB (one demo model fits), host tier ${(d.budgets.hostBytes / 2 ** 20).toFixed(1)} MiB (all fit)`);
  }

  // The host and what runs on it, decided before anything starts (a plan that does not fit is refused first).
  const facts = host.probe();
  let gpus: number;
  let deployment: HostDeployment | null = null;
  let plan: ColocationPlan;
  try {
    gpus = gpusToUse(facts.gpus.length, config.host.gpus);
    if (planGroups) {
      deployment = deployOnHost(planGroups, { gpuType: values['gpu-type'] ?? (gpus > 0 ? host.gpuName() : null), gpus }, values.group);
      for (const note of deployment.notes) log(note);
      config = parseConfig({
        ...config, placement: { groups: deployment.groups }, coLocation: coLocationOf(config.coLocation, deployment),
        host: { ...config.host, gpus: deployment.devices.length },
      }, { ...process.env, PORT: process.env.PORT ?? String(config.gateway.port) });
      gpus = deployment.devices.length;
    }
    // Co-location (issue 14): workers per GPU from the config (or the plan) and the gain table; --workers keeps one per GPU.
    plan = { perGpu: Array.from({ length: gpus }, () => 1), reasons: [], colocated: [] };
    if (config.coLocation.enabled && values.workers) log('coLocation is enabled but --workers was given: one worker per slot, none co-located');
    if (config.coLocation.enabled && !values.workers) {
      // Model sizes only matter where the gain table judges (the plan decided with its own calibration).
      const bytes = config.coLocation.requireGain ? await Promise.all(config.models.map((m) => validatedBytes(m))) : [];
      plan = planColocation(config, gpus, bytes, observedFor(config));
      for (const r of plan.reasons) log(r);
    }
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof FleetInputError)) throw e;
    io.err(`swapserve up: ${e.message}\n`);
    return 2;
  }
  const slots = gpus > 0 && !values.workers ? plan.perGpu.flatMap((k, d) => Array.from({ length: k }, () => ({ device: d, share: k }))) : [];
  const n = values.workers ? Number(values.workers) : Math.max(1, slots.length);
  if (!Number.isInteger(n) || n < 1) {
    io.err(`swapserve up: --workers must be an integer >= 1, received "${values.workers}"\n`);
    return 2;
  }
  const groupOf = (device: number | null): string | undefined => deployment?.devices.find((x) => x.device === device)?.group;
  if (values['dry-run']) {
    for (let i = 0; i < n; i++) {
      const device = gpus > 0 ? (slots[i] ? slots[i].device : i % gpus) : null;
      const share = slots[i]?.share ?? 1;
      const group = groupOf(device);
      io.out(`worker-${i}: ${device === null ? 'CPU' : `GPU ${device}`}${group ? ` group ${group}` : ''}${share > 1 ? ` co-located (${share} on the GPU${config.coLocation.mps.enabled ? ', MPS' : ', time-sliced'})` : ''}\n`);
    }
    return 0;
  }

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  let redis: LocalRedis | null = null;
  let gateway: Gateway | null = null;
  try {
    if (!config.redisUrl) {
      try {
        redis = await startLocalRedis(join(config.dataDir, 'redis'));
      } catch (e) {
        if (e instanceof RedisNotFoundError) {
          io.err(`swapserve up: ${e.message}\n`);
          return 2;
        }
        throw e;
      }
      config.redisUrl = redis.url;
      cleanups.push(() => redis!.stop());
      log(`started a private redis-server at ${redis.url} (no persistence)`);
    } else {
      log(`using Redis at ${config.redisUrl}`);
    }

    // Children read the effective config from one file.
    const runDir = join(config.dataDir, 'run');
    mkdirSync(runDir, { recursive: true });
    const cfgFile = join(runDir, `config-${process.pid}.json`);
    writeFileSync(cfgFile, JSON.stringify(config, null, 2));

    const mps: MpsDaemon | null = await mpsFor(config, plan, { log });
    // Every process started here is supervised alike (issue 11: the scheduler was not restarted before). Two
    // schedulers: a leader and a warm standby. When one exits, its lease is released at once (it is dead: nothing
    // can act under it), so the standby leads within its next lease attempt (leaseMs / 5 = 1 s) instead of after the
    // lease TTL plus a process start; the dead one is restarted as the new standby. While none leads, /readyz fails
    // and the swapserve.scheduler.leader gauge reads 0.
    const probe = connect(config.redisUrl, { name: 'swapserve-up' });
    cleanups.push(async () => { setLeaderSource(null); probe.disconnect(); });
    const schedulerId = (name: string) => `up-${process.pid}-${name}`;
    const sup = new Supervisor([process.execPath, BIN], { ...process.env, REDIS_URL: config.redisUrl }, undefined, {
      onExit: async (name) => {
        if (name.startsWith('scheduler-')) await new LeaderLease(probe, schedulerId(name), { prefix: config.prefix }).release();
      },
      // A co-located GPU's workers all exited after a fault: the MPS daemon must answer before they start again.
      beforeGroupRestart: async () => { await mps?.ensureHealthy(); },
    });
    // The MPS daemon quits after its last client (cleanups run in reverse: after the workers stopped).
    if (mps) cleanups.push(() => mps!.stop());
    cleanups.push(() => sup.stop());
    const mpsEnv = mps ? await mps.acquire('up') : {};
    // Pinned host budgets split over every worker of this machine, each GPU worker on its GPU's NUMA node.
    const workerSlots: Slot[] = Array.from({ length: n }, (_, i) => ({
      device: gpus > 0 ? (slots[i] ? slots[i].device : i % gpus) : null,
      share: slots[i]?.share ?? 1,
    }));
    const layout = planHostLayout(facts, workerSlots, { hostBytesPerWorker: config.budgets.hostBytes, numa: config.host.numa, ...(config.host.pinnedBytes === undefined ? {} : { pinnedBytes: config.host.pinnedBytes }) });
    for (const note of layout.notes) log(note);
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const w = layout.workers[i];
      const device = w.device !== null ? ['--device', String(w.device)] : ['--backend', 'cpu'];
      // With the scheduler, it alone decides which queues a worker consumes; without it, workers load on demand.
      const selfLoad = values['no-scheduler'] ? [] : ['--no-self-load'];
      // A plan's worker serves the models of its GPU's group (placement.groups from the plan).
      const group = groupOf(w.device);
      const args = ['worker', '--config', cfgFile, '--id', `local-${i}`, ...device, ...selfLoad, ...(group ? ['--group', group] : [])];
      const env: Record<string, string> = { [HOST_BYTES_ENV]: String(w.hostBytes) };
      log(describeWorker(`worker-${i}`, w, facts));
      if (slot && slot.share > 1) {
        // Co-located: its share of the budgets, the MPS pipe (when MPS is on), restarted with its GPU's other workers.
        sup.start(`worker-${i}`, args, { group: `gpu-${slot.device}`, prefix: w.prefix, env: { ...env, [GPU_SHARE_ENV]: String(slot.share), ...(plan.colocated.includes(slot.device) ? mpsEnv : {}) } });
      } else {
        sup.start(`worker-${i}`, args, { prefix: w.prefix, env });
      }
    }
    if (!values['no-scheduler']) {
      for (const name of ['scheduler-0', 'scheduler-1']) {
        sup.start(name, ['scheduler', '--config', cfgFile, '--provider', 'none', '--max-workers', String(n), '--id', schedulerId(name)]);
      }
      const leaderKey = clusterKeys(config.prefix).leader();
      setLeaderSource(async () => (await probe.exists(leaderKey)) === 1);
    }
    log(`${n} ${gpus > 0 ? 'GPU' : 'CPU'} worker${n > 1 ? 's' : ''}${values['no-scheduler'] ? '' : ' and the scheduler (a leader and a standby)'} starting`);

    // Traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; /metrics always. Flushed last (cleanups run in reverse).
    initTelemetry({ serviceName: 'swapserve-gateway' });
    cleanups.unshift(() => shutdownTelemetry());
    gateway = await startGateway(config, { requireScheduler: !values['no-scheduler'] });
    cleanups.push(() => gateway!.close());
    const model = config.models[0]?.id ?? 'your-model';
    log(`gateway on ${gateway.url}  (models: ${config.models.map((m) => m.id).join(', ')})`);
    log(`status page ${gateway.url}/  ·  queues ${gateway.url}/queues  ·  metrics ${gateway.url}/metrics`);
    log(`try:  curl -s ${gateway.url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${model}","messages":[{"role":"user","content":"hi"}],"max_tokens":8}' -D - | grep -i x-swapserve-path`);
    if (demo) log('the first request to a model is cold, the next warm; ask another model, then the first again: swap');
    // The gateway takes requests from now on, but one that comes before the scheduler leads waits for it (on a 2-core
    // machine its process takes 2-3 s to start: a first request held ~1 s). Say when nothing is held any more.
    const startedAt = Date.now();
    const workerIds = Array.from({ length: n }, (_, i) => `local-${i}`);
    let stopping = false;
    cleanups.push(async () => { stopping = true; });
    void waitReady(probe, clusterKeys(config.prefix), workerIds, startedAt, !values['no-scheduler'], 120_000, () => stopping).then(
      (r) => {
        if (r === 'stopped') return;
        if (r.ready) log(`ready: ${values['no-scheduler'] ? '' : 'the scheduler leads, '}${n} worker${n > 1 ? 's' : ''} registered (${r.ms} ms after the gateway)`);
        else log(`not ready after ${r.ms} ms: ${r.missing}; requests wait until it is`);
      },
      (e: Error) => log(`readiness probe failed: ${e.message}`));

    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    log('shutting down: gateway, workers, scheduler, Redis');
    // Shutdown order: stop accepting HTTP -> drain workers -> Redis (cleanups run in reverse).
    await cleanup();
    return 0;
  } catch (e) {
    io.err(`swapserve up: ${(e as Error).message}\n`);
    await cleanup();
    return 1;
  }
}
