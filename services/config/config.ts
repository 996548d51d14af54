// The one configuration file (YAML or JSON), validated with zod once at start-up; env overrides the usual keys.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SwapserveError } from '../../contracts/errors.ts';
import { modelIdSchema, WorkerGroup } from '../../contracts/model-id.ts';
import { engineTuningSchema } from '../../native/ts/tuning.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** hostCodec.workBytes that leaves the models no GPU budget. */
const codecWorkMessage = (work: number, gpu: number): string =>
  `the codec work buffer (${work} bytes) must be below budgets.gpuBytes (${gpu} bytes): it is reserved out of the GPU budget when hostCodec.compress is on`;

/** Byte sizes may be written as numbers or as strings like "512MiB", "16GB", "1.5GiB". */
export const bytes = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$/i.exec(v);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `Expected a byte size like "512MiB" but received "${v}"` });
    return z.NEVER;
  }
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: MiB, gb: 1e9, gib: GiB, tb: 1e12, tib: 1024 * GiB };
  return Math.round(Number(m[1]) * mult[unit]);
});


export const modelConfigSchema = z.object({
  /** The name clients use (`model` in requests). */
  id: modelIdSchema,
  /** Weights: a model folder (config.json + safetensors) or a .gguf file, relative to the first model root or absolute under one. */
  path: z.string().min(1),
  /** Target TTFT for this model (ms); the scheduler uses it to rank work. @defaultValue 2000 */
  sloTtftMs: z.number().positive().default(2000),
  /** Keep this model on a GPU even when idle. @defaultValue false */
  keepWarm: z.boolean().default(false),
  /** Idle time (ms) after which the model may leave the GPU tier for host. @defaultValue 300000 */
  gpuIdleMs: z.number().int().nonnegative().default(300_000),
  /** Idle time (ms) after which the model may leave the host tier for disk. @defaultValue 3600000 */
  hostIdleMs: z.number().int().nonnegative().default(3_600_000),
  /** Higher wins when tiers are contended. @defaultValue 0 */
  priority: z.number().int().default(0),
  /** Waiting jobs above which new requests get 429. @defaultValue 256 */
  maxQueued: z.number().int().positive().default(256),
  /** Upper bound on max_tokens for this model: the default completion length, and a request asking more gets a 400 naming max_tokens. @defaultValue 2048 */
  maxTokens: z.number().int().positive().default(2048),
  /** Context length override (tokens); defaults to the model's own. */
  contextLength: z.number().int().positive().optional(),
  /** Tokenizer file (tokenizer.json, or a llama2.c tok*.bin) when the weights carry none. */
  tokenizer: z.string().optional(),
  /**
   * Other names clients may send as `model` for this one (e.g. `gpt-4o-mini`, `meta-llama/Llama-3.1-8B-Instruct`);
   * responses name the model by its id. Unique across every model's id and aliases. @defaultValue none
   */
  aliases: z.array(z.string().min(1).max(256)).max(64).default([]),
  /**
   * This model's typical request, for the co-location decision (issue 14): overrides `coLocation.workloadFrom` and
   * `coLocation.workload` for it. @defaultValue its traffic in coLocation.workloadFrom, else coLocation.workload
   */
  workload: z.object({
    promptTokens: z.number().int().positive(),
    outputTokens: z.number().int().positive(),
  }).strict().optional(),
});
export type ModelEntry = z.infer<typeof modelConfigSchema>;

/** One worker group of `placement`: its models, and (from a plan) its GPUs. */
export const placementGroupSchema = z.object({
  name: WorkerGroup,
  /** Models its workers may serve. */
  models: z.array(modelIdSchema).min(1),
  /** GPU type, for deployment manifests. @defaultValue none */
  gpu: z.string().min(1).optional(),
  /** GPUs the group has: with gpusPerWorker, the most workers the scheduler starts in it. @defaultValue no limit of its own */
  gpus: z.number().int().positive().optional(),
  /** GPUs one worker of the group spans. @defaultValue 1 */
  gpusPerWorker: z.number().int().positive().default(1),
  /** How the plan meant it: dedicated (its models stay resident) or swap (models share GPUs by swapping). Informative. */
  mode: z.enum(['dedicated', 'swap']).optional(),
  /** Workers on each GPU of the group (co-location; applied by `swapserve up --plan`). @defaultValue 1 */
  workersPerGpu: z.number().int().min(1).max(8).default(1),
  /** Whether those workers share each GPU under NVIDIA MPS (needs workersPerGpu ≥ 2). @defaultValue false */
  mps: z.boolean().default(false),
}).strict().refine((g) => !g.mps || g.workersPerGpu >= 2, { path: ['mps'], message: 'mps: true needs workersPerGpu ≥ 2 (MPS shares a GPU among several workers)' });
export type PlacementGroup = z.infer<typeof placementGroupSchema>;
/** A rate limit: at most `max` requests per `windowMs`, counted in Redis so it holds across gateways. */
const rateLimitSchema = z.object({
  /** Requests allowed per window. */
  max: z.number().int().positive(),
  /** Window length (ms). @defaultValue 60000 */
  windowMs: z.number().int().positive().default(60_000),
});

/** An API key. The secret itself is never in the config: its sha256 (hex), or the name of an env var holding it. */
export const apiKeySchema = z.object({
  /** Stable, non-secret name of the key: logs, metrics and idempotency are keyed by it. */
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'key id: letters, digits and . _ - (at most 64)'),
  /** sha256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`). */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'sha256: 64 hex digits').optional(),
  /** Or: an environment variable holding the key (a Kubernetes Secret mounted as env); hashed at start-up. */
  keyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
  /** Models this key may use; ["*"] is every model. @defaultValue ["*"] */
  models: z.array(z.string().min(1)).min(1).default(['*']),
  /** This key's rate limit; unset takes auth.rateLimit. null means unlimited. */
  rateLimit: rateLimitSchema.nullable().optional(),
  /** Admin keys may change state through /queues (bull-board) and see versions, hosts and budgets. @defaultValue false */
  admin: z.boolean().default(false),
}).refine((k) => (k.sha256 === undefined) !== (k.keyEnv === undefined), { message: 'give exactly one of sha256 or keyEnv' });
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;

export const authConfigSchema = z.object({
  /** API keys; none (and no SWAPSERVE_API_KEYS / SWAPSERVE_ADMIN_KEY) keeps the open local default. @defaultValue [] */
  keys: z.array(apiKeySchema).default([]),
  /** The limit of keys that set none; null is unlimited. @defaultValue { max: 600, windowMs: 60000 } */
  rateLimit: rateLimitSchema.nullable().default({ max: 600, windowMs: 60_000 }),
  /** Who may read GET /metrics once keys are configured: anyone, any key, or admin keys. @defaultValue "open" */
  metrics: z.enum(['open', 'key', 'admin']).default('open'),
  /** Browser origins allowed by CORS (exact origins, or "*"); empty turns CORS off. @defaultValue [] */
  corsOrigins: z.array(z.string().min(1)).default([]),
}).prefault({});

/**
 * Co-location (issue 14): several worker processes on one GPU, each with 1/n of `budgets`, optionally under the NVIDIA
 * MPS control daemon swapserve runs (services/scheduler/mps.ts). Off by default; services/scheduler/colocate.ts decides
 * per GPU whether it pays for the configured models.
 */
export const coLocationSchema = z.object({
  /** Run several workers per GPU where the measured gain table says it pays (or always, with requireGain false). @defaultValue false */
  enabled: z.boolean().default(false),
  /** Workers per co-located GPU. @defaultValue 2 */
  workersPerGpu: z.number().int().min(2).max(8).default(2),
  /** Device indices that co-locate, each with its own worker count; unset: every GPU with workersPerGpu. @defaultValue every GPU */
  gpus: z.array(z.object({
    device: z.number().int().nonnegative(),
    workersPerGpu: z.number().int().min(1).max(8).optional(),
  }).strict()).min(1).optional(),
  /** Co-locate only where the gain table predicts at least minGain for every configured model. @defaultValue true */
  requireGain: z.boolean().default(true),
  /** Least predicted throughput ratio (co-located / best single engine) that counts as paying. @defaultValue 1.2 */
  minGain: z.number().min(1).default(1.2),
  /** The measured gain table (`swapserve bench mps` JSON, `gainTable`); unset: the Databricks seed's published shape. */
  gainTable: z.string().min(1).optional(),
  /**
   * A token trace of observed traffic (Azure LLM 2023 CSV: `ContextTokens`, `GeneratedTokens`, optionally `model`):
   * a model without its own `workload` is judged at the trace's median request (its own rows where the trace has a
   * `model` column). `swapserve up --workload-from` overrides it. @defaultValue none
   */
  workloadFrom: z.string().min(1).optional(),
  /** The workload the decision assumes for a model with neither its own `workload` nor traffic in `workloadFrom`: typical prompt and completion tokens. @defaultValue 512 and 256 */
  workload: z.object({
    promptTokens: z.number().int().positive().default(512),
    outputTokens: z.number().int().positive().default(256),
  }).strict().prefault({}),
  mps: z.object({
    /** Start the MPS control daemon for co-located GPUs (without it the workers are time-sliced). @defaultValue true */
    enabled: z.boolean().default(true),
    /** CUDA_MPS_ACTIVE_THREAD_PERCENTAGE per client (share of SMs); unset: no limit. */
    activeThreadPercentage: z.number().int().min(1).max(100).optional(),
    /** The control executable. @defaultValue "nvidia-cuda-mps-control" */
    control: z.string().min(1).default('nvidia-cuda-mps-control'),
  }).strict().prefault({}),
}).strict().superRefine((c, ctx) => {
  const seen = new Set<number>();
  c.gpus?.forEach((g, i) => {
    if (seen.has(g.device)) ctx.addIssue({ code: 'custom', path: ['gpus', i, 'device'], message: `GPU ${g.device} is listed twice` });
    seen.add(g.device);
  });
}).prefault({});
export type CoLocationConfig = z.infer<typeof coLocationSchema>;

/** Workers on GPU `device` under the co-location config (1 when it is off or the GPU is not listed). */
export function workersOnGpu(c: CoLocationConfig, device: number): number {
  if (!c.enabled) return 1;
  if (!c.gpus) return c.workersPerGpu;
  const g = c.gpus.find((x) => x.device === device);
  return g ? (g.workersPerGpu ?? c.workersPerGpu) : 1;
}

/** Env var a co-located worker is started with: how many workers share its GPU; its budgets are divided by it. */
export const GPU_SHARE_ENV = 'SWAPSERVE_GPU_SHARE';

/**
 * Env var `swapserve up` starts each worker with (issue 16): its pinned host budget in bytes, as split from the host's
 * RAM among all the workers of the machine (services/scheduler/host-layout.ts). Overrides `budgets.hostBytes` after
 * any co-location share is taken (it is already this worker's own figure).
 */
export const HOST_BYTES_ENV = 'SWAPSERVE_HOST_BYTES';

/**
 * The machine `swapserve up` runs on (issue 16): which GPUs get a worker, how much pinned host RAM all of them may hold
 * together, and whether each worker runs on the NUMA node nearest its GPU.
 */
export const hostSchema = z.object({
  /** GPUs `up` starts workers for (the first N that nvidia-smi lists; more than it lists is an error). 0: CPU workers. @defaultValue every GPU nvidia-smi lists */
  gpus: z.number().int().nonnegative().optional(),
  /**
   * Pinned host memory every worker `up` starts on this machine may hold together (bytes). Each worker's pinned pool is
   * `budgets.hostBytes` (its share of it when co-located) unless their sum is larger: then they are scaled down to fit,
   * and, for workers bound to a NUMA node, to fit 75 % of that node's memory too. @defaultValue 75 % of the physical RAM
   */
  pinnedBytes: bytes.optional(),
  /**
   * `auto`: run each GPU worker under `numactl --cpunodebind=N --membind=N`, N its GPU's node (sysfs), where the host has
   * more than one NUMA node and numactl is installed (else a logged no-op); `off`: never. @defaultValue "auto"
   */
  numa: z.enum(['auto', 'off']).default('auto'),
}).strict().prefault({});
export type HostConfig = z.infer<typeof hostSchema>;

export const configSchema = z.object({
  /** Redis URL; env REDIS_URL overrides. Unset under `swapserve up`: a private redis-server is started. */
  redisUrl: z.string().url().optional(),
  /** Key prefix for every queue and key; the {hash tag} keeps a queue's keys on one Redis Cluster slot. @defaultValue "{swapserve}" */
  prefix: z.string().min(1).default('{swapserve}'),
  /** Folders weights may be read from; every model path must resolve inside one. @defaultValue ["~/.swapserve/models"] */
  modelRoots: z.array(z.string().min(1)).min(1).default([resolve(homedir(), '.swapserve', 'models')]),
  /** Where `up` writes demo models and the private Redis socket/data. @defaultValue "~/.swapserve" */
  dataDir: z.string().default(resolve(homedir(), '.swapserve')),
  gateway: z.object({
    /** @defaultValue "127.0.0.1" (env HOST) */
    host: z.string().default('127.0.0.1'),
    /** @defaultValue 8080 (env PORT) */
    port: z.number().int().min(0).max(65535).default(8080),
    /** Largest accepted request body (bytes). @defaultValue 1MiB */
    bodyLimitBytes: bytes.default(MiB),
    /** A request with no first token after this long ends with a timeout error (ms). @defaultValue 300000 */
    requestTimeoutMs: z.number().int().positive().default(300_000),
    /** Interval of SSE keep-alive/progress comments while a request waits (ms). @defaultValue 1000 */
    keepAliveMs: z.number().int().positive().default(1000),
    /** How long an Idempotency-Key maps to its first request (s). @defaultValue 600 */
    idempotencyTtlS: z.number().int().positive().default(600),
    /** All request headers must arrive within this (ms), else 408 and the socket closes. @defaultValue 10000 */
    headersTimeoutMs: z.number().int().positive().default(10_000),
    /** The whole request, headers and body, must arrive within this (ms), else 408: a body trickled in is cut off. @defaultValue 30000 */
    bodyTimeoutMs: z.number().int().positive().default(30_000),
    /** An idle keep-alive socket is closed after this (ms). @defaultValue 5000 */
    keepAliveTimeoutMs: z.number().int().positive().default(5_000),
    /** Open sockets at most; requests on sockets past it get 503 too_many_connections (Connection: close), and past twice it sockets are closed at once. @defaultValue 1024 */
    maxConnections: z.number().int().positive().default(1024),
    /**
     * Host header names (without port) the gateway answers; others get 403 host_not_allowed. Unset: when bound to
     * a loopback address, only localhost, 127.0.0.1, [::1] and the bind host (a DNS-rebinding guard); otherwise
     * any. ["*"] allows any.
     */
    allowedHosts: z.array(z.string().min(1)).optional(),
  }).prefault({}),
  worker: z.object({
    /**
     * Most jobs a worker holds at once, across its models: a cap, not a target. Within it the worker takes a job only
     * while the model's engine can admit it (free KV blocks and batch slots; services/worker/design.md, "Admission"),
     * and several resident models share it fairly. An engine batches min(this, 256) sequences (8 on an engine
     * without a paged KV cache). @defaultValue 256
     */
    concurrency: z.number().int().positive().default(256),
    /** Heartbeat period (ms); a worker silent for 3 periods is considered gone. @defaultValue 1000 */
    heartbeatMs: z.number().int().positive().default(1000),
    /** BullMQ job lock duration (ms); renewed at half this by the worker's event loop. @defaultValue 10000 */
    lockDurationMs: z.number().int().positive().default(10_000),
    /** How often stalled jobs (of dead workers) are looked for (ms). @defaultValue 5000 */
    stalledIntervalMs: z.number().int().positive().default(5000),
    /** Times a job may be recovered from a dead worker before it fails. @defaultValue 2 */
    maxStalledCount: z.number().int().nonnegative().default(2),
    /** Let the worker make models resident itself when a job arrives for one that is not (no scheduler needed). @defaultValue true */
    selfLoad: z.boolean().default(true),
    /**
     * Partial residency (issue 15; services/worker/partial-residency.ts): a model evicted from the GPU keeps its first
     * layer groups there out of otherwise idle memory, in proportion to the chance of a request for it soon; its next
     * swap copies only the rest. Prefixes go back before any model is evicted. @defaultValue false
     */
    partialResidency: z.boolean().default(false),
    /** This worker's group (`placement.groups[].name`); env SWAPSERVE_WORKER_GROUP and --group override. @defaultValue none */
    group: WorkerGroup.optional(),
  }).prefault({}),
  /**
   * The host tier's lossless codec (issue 15; native/src/runtime/codec/design.md): when a model enters the host tier
   * the worker encodes it in the background and keeps the compressed copy when compressed/raw <= maxRatio (the host
   * budget then holds the compressed bytes; swap_in decodes, on the GPU under CUDA). With compress on, the GPU
   * decode's work buffer (`workBytes`) comes out of `budgets.gpuBytes`. @defaultValue { compress: false, maxRatio: 0.9, workBytes: 144MiB }
   */
  hostCodec: z.object({
    /** Encode models entering the host tier. @defaultValue false */
    compress: z.boolean().default(false),
    /** Keep the raw copy above this compressed/raw ratio (random weights measure ~1.0). @defaultValue 0.9 */
    maxRatio: z.number().gt(0).lte(1).default(0.9),
    /**
     * With `compress` on: device memory for compressed swap-ins (4 staging slots of up to 32 MiB + the model's
     * codec tables, ~16 bytes per 128 KiB of bf16 weights; native/src/runtime/codec/design.md "Device memory"),
     * reserved out of `budgets.gpuBytes` at worker start (the worker reports gpuBytes - workBytes as its GPU budget,
     * on both backends). A model whose tables do not fit beside 4 slots of 1 MiB stays raw. At least 5MiB and below
     * budgets.gpuBytes (after a co-location share). @defaultValue 144MiB
     */
    workBytes: bytes.default(144 * MiB).refine((b) => b >= 5 * MiB, { message: 'must be at least 5MiB (4 staging slots of 1 MiB + 1 MiB of tables)' }),
    /**
     * With `compress` on: bound of the compressed disk cache under `<dataDir>/codec-cache/`, bytes (all its files,
     * shared by the workers of a host; least recently used files are deleted past it). Each compressed host image is
     * written there, and a cold load of the model reads it instead of its raw files (~0.67 of the bytes), with no
     * encode (native/src/runtime/codec/design.md "Disk cache"). 0: off. Off by default because disk is not a tier
     * swapserve budgets anywhere else: a default bound would write tens of GB into the data dir unasked.
     * @defaultValue 0
     */
    diskCacheBytes: bytes.default(0),
  }).strict().prefault({}),
  budgets: z.object({
    /** Pinned host tier per worker. @defaultValue 8GiB */
    hostBytes: bytes.default(8 * GiB),
    /**
   * GPU weights tier per worker (a separate arena under the CPU backend). With `hostCodec.compress` on it also holds
   * the codec's work buffer (`hostCodec.workBytes`): models get the rest. @defaultValue 4GiB
   */
    gpuBytes: bytes.default(4 * GiB),
    /** KV cache and activations per worker. @defaultValue 1GiB */
    scratchBytes: bytes.default(GiB),
  }).prefault({}),
  /**
   * The engine's backend tuning (CUDA backend; the CPU backend ignores it): each knob, its default and its env
   * override are documented in native/ts/tuning.ts. @defaultValue {} (every knob at its default)
   */
  engine: engineTuningSchema.prefault({}),
  streams: z.object({
    /** Per-request token stream lifetime after its last write (s). @defaultValue 300 */
    ttlS: z.number().int().positive().default(300),
  }).prefault({}),
  auth: authConfigSchema,
  health: z.object({
    /** Port of /livez and /readyz for workers and schedulers (env SWAPSERVE_HEALTH_PORT); null: not served. The gateway answers them on its own port. @defaultValue null */
    port: z.number().int().min(0).max(65535).nullable().default(null),
    /** Address the health port binds. @defaultValue "0.0.0.0" (probes come from outside the container) */
    host: z.string().default('0.0.0.0'),
  }).prefault({}),
  shutdown: z.object({
    /** After SIGTERM, readiness fails this long before the drain starts, so load balancers stop sending (ms). @defaultValue 0 */
    graceMs: z.number().int().nonnegative().default(0),
    /** Longest drain (ms): in-flight requests and jobs finish within it, or the process exits anyway with code 1. @defaultValue 30000 */
    timeoutMs: z.number().int().positive().default(30_000),
  }).prefault({}),
  log: z.object({
    /** pino level: fatal, error, warn, info, debug, trace or silent (env LOG_LEVEL). @defaultValue "info" */
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
  models: z.array(modelConfigSchema).default([]),
  /**
   * Which models may run on which worker groups (what `swapserve plan` writes, docs/plan-format.md). A model listed
   * in some group runs only on workers of the groups that list it; a model listed in none runs on any worker.
   * @defaultValue no groups (every model on every worker)
   */
  placement: z.object({ groups: z.array(placementGroupSchema).default([]) }).strict().prefault({}),
  /**
   * With no `models` listed, serve every model found directly under the first model root: each `*.gguf` file and
   * each folder holding a config.json, named after it (the container image's default). @defaultValue false
   */
  discoverModels: z.boolean().default(false),
  coLocation: coLocationSchema,
  host: hostSchema,
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.models.forEach((m, i) => {
    if (seen.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate model id "${m.id}"` });
    seen.add(m.id);
  });
  c.models.forEach((m, i) => m.aliases.forEach((a, j) => {
    if (seen.has(a)) ctx.addIssue({ code: 'custom', path: ['models', i, 'aliases', j], message: `alias "${a}" is already a model id or alias` });
    seen.add(a);
  }));
  const groups = new Set<string>();
  c.placement.groups.forEach((g, i) => {
    if (groups.has(g.name)) ctx.addIssue({ code: 'custom', path: ['placement', 'groups', i, 'name'], message: `duplicate worker group "${g.name}"` });
    groups.add(g.name);
    g.models.forEach((m, j) => {
      if (!seen.has(m)) ctx.addIssue({ code: 'custom', path: ['placement', 'groups', i, 'models', j], message: `model "${m}" is not in models` });
    });
  });
  if (c.hostCodec.compress && c.hostCodec.workBytes >= c.budgets.gpuBytes) {
    ctx.addIssue({ code: 'custom', path: ['hostCodec', 'workBytes'], message: codecWorkMessage(c.hostCodec.workBytes, c.budgets.gpuBytes) });
  }
  if (c.hostCodec.diskCacheBytes > 0 && !c.hostCodec.compress) {
    ctx.addIssue({ code: 'custom', path: ['hostCodec', 'diskCacheBytes'], message: 'the compressed disk cache holds compressed host images: it needs hostCodec.compress on' });
  }
  if (c.worker.group !== undefined && !groups.has(c.worker.group)) {
    ctx.addIssue({ code: 'custom', path: ['worker', 'group'], message: `worker group "${c.worker.group}" is not one of placement.groups (${[...groups].join(', ') || 'none'})` });
  }
});
export type Config = z.infer<typeof configSchema>;

export class ConfigError extends SwapserveError<'config_invalid'> {
  override name = 'ConfigError';
  constructor(message: string) {
    super('config_invalid', message);
  }
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : p;
}

/** Resolves a configured model path inside the model roots; throws ConfigError if it escapes them. */
export function resolveModelPath(cfg: Pick<Config, 'modelRoots'>, p: string): string {
  const roots = cfg.modelRoots.map((r) => resolve(expandHome(r)));
  const candidate = isAbsolute(expandHome(p)) ? resolve(expandHome(p)) : resolve(roots[0], p);
  for (const root of roots) {
    const rel = relative(root, candidate);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..'))) return candidate;
  }
  throw new ConfigError(`model path "${p}" is outside the configured model roots (${roots.join(', ')})`);
}

/** Validates a parsed config object and applies env overrides (REDIS_URL, PORT, HOST). */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid config:\n${lines.join('\n')}`);
  }
  const cfg = r.data;
  cfg.modelRoots = cfg.modelRoots.map((p) => resolve(expandHome(p)));
  cfg.dataDir = resolve(expandHome(cfg.dataDir));
  if (env.REDIS_URL) cfg.redisUrl = env.REDIS_URL;
  if (env.PORT) {
    const port = Number(env.PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`PORT must be 0..65535, received "${env.PORT}"`);
    cfg.gateway.port = port;
  }
  if (env.HOST) cfg.gateway.host = env.HOST;
  if (env.SWAPSERVE_WORKER_GROUP) cfg.worker.group = checkWorkerGroup(cfg, env.SWAPSERVE_WORKER_GROUP, 'SWAPSERVE_WORKER_GROUP');
  if (env.LOG_LEVEL) {
    const level = configSchema.shape.log.unwrap().shape.level.safeParse(env.LOG_LEVEL);
    if (!level.success) throw new ConfigError(`LOG_LEVEL must be fatal, error, warn, info, debug, trace or silent, received "${env.LOG_LEVEL}"`);
    cfg.log.level = level.data;
  }
  cfg.auth.keys = resolveKeys(cfg.auth.keys, env);
  if (env.SWAPSERVE_HEALTH_PORT) {
    const port = Number(env.SWAPSERVE_HEALTH_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`SWAPSERVE_HEALTH_PORT must be 0..65535, received "${env.SWAPSERVE_HEALTH_PORT}"`);
    cfg.health.port = port;
  }
  if (env[GPU_SHARE_ENV]) {
    // A co-located worker: its share of the per-worker budgets (every worker on the GPU gets the same share).
    const n = Number(env[GPU_SHARE_ENV]);
    if (!Number.isInteger(n) || n < 1 || n > 8) throw new ConfigError(`${GPU_SHARE_ENV} must be an integer 1..8, received "${env[GPU_SHARE_ENV]}"`);
    cfg.budgets = { hostBytes: Math.floor(cfg.budgets.hostBytes / n), gpuBytes: Math.floor(cfg.budgets.gpuBytes / n), scratchBytes: Math.floor(cfg.budgets.scratchBytes / n) };
    if (cfg.hostCodec.compress && cfg.hostCodec.workBytes >= cfg.budgets.gpuBytes) {
      throw new ConfigError(`hostCodec.workBytes: ${codecWorkMessage(cfg.hostCodec.workBytes, cfg.budgets.gpuBytes)} (this worker's share, ${GPU_SHARE_ENV}=${n})`);
    }
  }
  if (env[HOST_BYTES_ENV]) {
    // This worker's part of the machine's pinned host RAM, split by `swapserve up` (after the share above).
    const b = Number(env[HOST_BYTES_ENV]);
    if (!Number.isInteger(b) || b < 0) throw new ConfigError(`${HOST_BYTES_ENV} must be a byte count (an integer >= 0), received "${env[HOST_BYTES_ENV]}"`);
    cfg.budgets.hostBytes = b;
  }
  if (cfg.discoverModels && cfg.models.length === 0) cfg.models = discoverModels(cfg.modelRoots[0]);
  for (const m of cfg.models) {
    m.path = resolveModelPath(cfg, m.path);
    if (m.tokenizer) m.tokenizer = resolveModelPath(cfg, m.tokenizer);
  }
  return cfg;
}

export const sha256Hex = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/**
 * Every key with its sha256 known: `keyEnv` keys hashed from their variable, plus env SWAPSERVE_API_KEYS
 * ("id:key,id2:key2", every model, the default limit) and SWAPSERVE_ADMIN_KEY (id "admin", unlimited).
 * The secrets themselves are dropped here and kept nowhere.
 */
function resolveKeys(keys: ApiKeyConfig[], env: NodeJS.ProcessEnv): ApiKeyConfig[] {
  const out = keys.map((k): ApiKeyConfig => {
    if (k.sha256) return { ...k, sha256: k.sha256.toLowerCase() };
    const secret = env[k.keyEnv!];
    if (!secret) throw new ConfigError(`auth key "${k.id}": environment variable ${k.keyEnv} is not set`);
    return { ...k, sha256: sha256Hex(secret), keyEnv: undefined };
  });
  // A config parsed twice (`up` re-parses with demo models) already holds the env keys.
  const add = (k: ApiKeyConfig) => {
    if (!out.some((o) => o.id === k.id && o.sha256 === k.sha256)) out.push(k);
  };
  for (const pair of (env.SWAPSERVE_API_KEYS ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf(':');
    if (at <= 0 || at === pair.length - 1) throw new ConfigError('SWAPSERVE_API_KEYS must be "id:key" pairs separated by commas');
    add(apiKeySchema.parse({ id: pair.slice(0, at), sha256: sha256Hex(pair.slice(at + 1)) }));
  }
  if (env.SWAPSERVE_ADMIN_KEY) add(apiKeySchema.parse({ id: 'admin', sha256: sha256Hex(env.SWAPSERVE_ADMIN_KEY), admin: true, rateLimit: null }));
  const ids = new Set<string>();
  for (const k of out) {
    if (ids.has(k.id)) throw new ConfigError(`auth key id "${k.id}" is used twice`);
    ids.add(k.id);
  }
  return out;
}

/** The models directly under a folder: `name.gguf` files and `name/` folders with a config.json (see discoverModels). */
export function discoverModels(root: string): ModelEntry[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch (e) {
    throw new ConfigError(`discoverModels: cannot list ${root}: ${(e as Error).message}`);
  }
  const found = entries.flatMap((e) => {
    if (e.isFile() && e.name.endsWith('.gguf')) return [{ id: e.name.slice(0, -'.gguf'.length), path: e.name }];
    if (e.isDirectory() && existsSync(join(root, e.name, 'config.json'))) return [{ id: e.name, path: e.name }];
    if (e.isDirectory()) return readdirSync(join(root, e.name)).filter((f) => f.endsWith('.gguf')).slice(0, 1).map((f) => ({ id: e.name, path: join(e.name, f) }));
    return [];
  }).filter((m) => modelIdSchema.safeParse(m.id).success).sort((a, b) => a.id.localeCompare(b.id));
  return found.map((m) => modelConfigSchema.parse(m));
}

/** Reads a YAML or JSON config file (path, or env SWAPSERVE_CONFIG); no file gives the defaults. */
export function loadConfig(path?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = path ?? env.SWAPSERVE_CONFIG;
  if (!file) return parseConfig({}, env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`cannot parse config file ${file}: ${(e as Error).message}`);
  }
  return parseConfig(raw, env);
}

/** A worker group named outside the file (env, --group): one of placement.groups, or a ConfigError naming `where`. */
export function checkWorkerGroup(cfg: Pick<Config, 'placement'>, group: string, where: string): string {
  const names = cfg.placement.groups.map((g) => g.name);
  if (!names.includes(group)) throw new ConfigError(`${where}: worker group "${group}" is not one of placement.groups (${names.join(', ') || 'none'})`);
  return group;
}

/** The worker groups a model may run on, or undefined when `placement` lists it nowhere (any worker). */
export function placementGroupsOf(cfg: Pick<Config, 'placement'>, model: string): string[] | undefined {
  const groups = cfg.placement.groups.filter((g) => g.models.includes(model)).map((g) => g.name);
  return groups.length > 0 ? groups : undefined;
}

/** Whether a worker of `group` (undefined: none) may serve `model` under the config's placement. */
export function mayServe(cfg: Pick<Config, 'placement'>, model: string, group: string | undefined): boolean {
  const groups = placementGroupsOf(cfg, model);
  return groups === undefined || (group !== undefined && groups.includes(group));
}

/** Most workers per group the scheduler may run: gpus / gpusPerWorker × workersPerGpu, for groups that give gpus. */
export function groupWorkerCaps(cfg: Pick<Config, 'placement'>): Record<string, number> {
  const caps: Record<string, number> = {};
  for (const g of cfg.placement.groups) if (g.gpus !== undefined) caps[g.name] = Math.max(1, Math.floor(g.gpus / g.gpusPerWorker)) * g.workersPerGpu;
  return caps;
}

/** The model entry for an id (not an alias: see resolveModel), or undefined. */
export function findModel(cfg: Config, id: string): ModelEntry | undefined {
  return cfg.models.find((m) => m.id === id);
}

/** The model entry a request's `model` names: its id or one of its aliases. */
export function resolveModel(cfg: Config, name: string): ModelEntry | undefined {
  return findModel(cfg, name) ?? cfg.models.find((m) => m.aliases.includes(name));
}
