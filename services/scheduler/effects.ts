// The scheduler's effects: the small interface through which policy actions reach the world, and its Redis form.
import { clusterKeys, commandFields, CLUSTER_DEFAULTS, type ClusterKeys, type WorkerCommand } from '../../contracts/cluster.ts';
import type { RedisClient } from '../client/queues.ts';
import type { WorkerProvider } from './provider.ts';
import type { Action } from './state.ts';

/** Everything the scheduler does to the world. Calls are made in action order and not awaited in between. */
export interface Effects {
  /** Appends a command to the worker's command stream. */
  send(workerId: string, command: WorkerCommand): Promise<void>;
  /** Asks the provider for a new worker with this id (in this worker group, when given). */
  startWorker(workerId: string, model: string | null, group?: string): Promise<void>;
  /** Tells the provider to stop a worker (one that never reported, or that must go). */
  stopWorker(workerId: string, reason: string): Promise<void>;
}

/** Stamps each `send` with the leader's fencing epoch and the time, then hands every action to `effects`, in order. */
export function applyActions(
  actions: readonly Action[], effects: Effects, epoch: number, now: number,
  onError: (action: Action, err: unknown) => void,
): Promise<void> {
  const done: Promise<void>[] = [];
  for (const a of actions) {
    let p: Promise<void>;
    if (a.type === 'send') p = effects.send(a.workerId, { ...a.command, id: a.id, epoch, issuedAt: now } as WorkerCommand);
    else if (a.type === 'start-worker') p = effects.startWorker(a.workerId, a.model, a.group);
    else p = effects.stopWorker(a.workerId, a.reason);
    done.push(p.catch((e: unknown) => onError(a, e)));
  }
  return Promise.all(done).then(() => undefined);
}

export interface RedisEffectsOptions {
  /** Key prefix. @defaultValue "{swapserve}" */
  prefix?: string;
  /** Approximate cap on each command stream (entries). @defaultValue CLUSTER_DEFAULTS.streamMaxLen */
  streamMaxLen?: number;
}

/** Commands go to `{prefix}:commands:<workerId>` streams; worker starts and stops go to a provider. */
export class RedisEffects implements Effects {
  private readonly keys: ClusterKeys;
  private readonly maxLen: number;

  constructor(private readonly redis: RedisClient, private readonly provider: WorkerProvider, options: RedisEffectsOptions = {}) {
    this.keys = clusterKeys(options.prefix);
    this.maxLen = options.streamMaxLen ?? CLUSTER_DEFAULTS.streamMaxLen;
  }

  async send(workerId: string, command: WorkerCommand): Promise<void> {
    await this.redis.xadd(this.keys.commands(workerId), 'MAXLEN', '~', String(this.maxLen), '*', ...commandFields(command));
  }

  startWorker(workerId: string, model: string | null, group?: string): Promise<void> {
    return this.provider.start(workerId, group === undefined ? { model } : { model, group });
  }

  stopWorker(workerId: string, reason: string): Promise<void> {
    void reason;
    return this.provider.stop(workerId);
  }
}
