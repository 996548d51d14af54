// The one configuration file (YAML or JSON), validated with zod once at start-up; env overrides the usual keys.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SwapserveError } from '../../contracts/errors.ts';
import { modelIdSchema, WorkerGroup } from '../../contracts/model-id.ts';
import { engineTuningSchema } from '../../native/ts/tuning.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

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
  /** Upper bound on max_tokens for this model (requests are clamped to it). @defaultValue 2048 */
  maxTokens: z.number().int().positive().default(2048),
  /** Context length override (tokens); defaults to the model's own. */
  contextLength: z.number().int().positive().optional(),
  /** Tokenizer file (tokenizer.json, or a llama2.c tok*.bin) when the weights carry none. */
  tokenizer: z.string().optional(),
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
}).strict();
export type PlacementGroup = z.infer<typeof placementGroupSchema>;

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
    /** Open sockets at most; further connections are closed at once. @defaultValue 1024 */
    maxConnections: z.number().int().positive().default(1024),
    /**
     * Host header names (without port) the gateway answers; others get 403 host_not_allowed. Unset: when bound to
     * a loopback address, only localhost, 127.0.0.1, [::1] and the bind host (a DNS-rebinding guard); otherwise
     * any. ["*"] allows any.
     */
    allowedHosts: z.array(z.string().min(1)).optional(),
  }).prefault({}),
  worker: z.object({
    /** Concurrent generations per worker (across its models). @defaultValue 4 */
    concurrency: z.number().int().positive().default(4),
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
    /** This worker's group (`placement.groups[].name`); env SWAPSERVE_WORKER_GROUP and --group override. @defaultValue none */
    group: WorkerGroup.optional(),
  }).prefault({}),
  budgets: z.object({
    /** Pinned host tier per worker. @defaultValue 8GiB */
    hostBytes: bytes.default(8 * GiB),
    /** GPU weights tier per worker (a separate arena under the CPU backend). @defaultValue 4GiB */
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
  models: z.array(modelConfigSchema).default([]),
  /**
   * Which models may run on which worker groups (what `swapserve plan` writes, docs/plan-format.md). A model listed
   * in some group runs only on workers of the groups that list it; a model listed in none runs on any worker.
   * @defaultValue no groups (every model on every worker)
   */
  placement: z.object({ groups: z.array(placementGroupSchema).default([]) }).strict().prefault({}),
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.models.forEach((m, i) => {
    if (seen.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate model id "${m.id}"` });
    seen.add(m.id);
  });
  const groups = new Set<string>();
  c.placement.groups.forEach((g, i) => {
    if (groups.has(g.name)) ctx.addIssue({ code: 'custom', path: ['placement', 'groups', i, 'name'], message: `duplicate worker group "${g.name}"` });
    groups.add(g.name);
    g.models.forEach((m, j) => {
      if (!seen.has(m)) ctx.addIssue({ code: 'custom', path: ['placement', 'groups', i, 'models', j], message: `model "${m}" is not in models` });
    });
  });
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
  for (const m of cfg.models) {
    m.path = resolveModelPath(cfg, m.path);
    if (m.tokenizer) m.tokenizer = resolveModelPath(cfg, m.tokenizer);
  }
  return cfg;
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

/** Most workers per group the scheduler may run: gpus / gpusPerWorker, for groups that give gpus. */
export function groupWorkerCaps(cfg: Pick<Config, 'placement'>): Record<string, number> {
  const caps: Record<string, number> = {};
  for (const g of cfg.placement.groups) if (g.gpus !== undefined) caps[g.name] = Math.max(1, Math.floor(g.gpus / g.gpusPerWorker));
  return caps;
}

/** The model entry for an id, or undefined. */
export function findModel(cfg: Config, id: string): ModelEntry | undefined {
  return cfg.models.find((m) => m.id === id);
}
