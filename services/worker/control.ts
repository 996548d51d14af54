// Worker <-> scheduler: state heartbeats (contracts/cluster.ts) and the command loop (XREAD BLOCK).
import {
  CLUSTER_DEFAULTS, clusterKeys, parseCommandEntry, resultEventFields, stateEventFields,
  type CommandResult, type ModelOnWorker, type WorkerCommand, type WorkerState,
} from '../../contracts/cluster.ts';
import type { CommandErrorCode } from '../../contracts/errors.ts';
import type { RedisClient } from '../client/queues.ts';

export interface ControlHost {
  workerId: string;
  state(): Omit<WorkerState, 'heartbeatAt' | 'seq' | 'epoch'>;
  /**
   * Executes one command; throws { code: CommandErrorCode } errors. A tier move calls `started` once it is under way:
   * the next command is taken from then on (see Control).
   */
  execute(cmd: WorkerCommand, started: () => void): Promise<void>;
}

/**
 * Publishes state on every change (coalesced) and every heartbeat; runs commands in order. Commands start in the
 * order they were sent, but the loop does not wait for a tier move to *finish* before taking the next command, only
 * for it to be under way: `swap_in` then `consume` starts taking the model's jobs while its weights are still landing
 * (execute-while-loading; moves themselves still run one at a time, in order, in the tier manager). `drain` waits
 * for every command before it. Each command's result is published when it ends.
 */
export class Control {
  private readonly k: ReturnType<typeof clusterKeys>;
  private seq = 0;
  private epoch = 0;
  private timer: NodeJS.Timeout | null = null;
  private dirty = false;
  private publishing: Promise<void> | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  /** Commands started and not yet answered. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly host: ControlHost,
    private readonly redis: RedisClient,
    private readonly blocking: RedisClient,
    prefix: string,
    private readonly heartbeatMs: number = CLUSTER_DEFAULTS.heartbeatMs,
  ) {
    this.k = clusterKeys(prefix);
  }

  async start(): Promise<void> {
    // Commands issued from now on are ours: read the stream's tail before announcing the worker.
    const last = (await this.redis.xrevrange(this.k.commands(this.host.workerId), '+', '-', 'COUNT', 1)) as [string, string[]][];
    const from = last.length ? last[0][0] : '0-0';
    await this.publish();
    this.timer = setInterval(() => this.changed(), this.heartbeatMs);
    this.timer.unref();
    this.loop = this.commandLoop(from);
  }

  /** Marks state as changed; publishes soon (coalescing bursts). */
  changed(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.publishing) {
      this.publishing = (async () => {
        while (this.dirty && !this.stopped) {
          this.dirty = false;
          await this.publish().catch(() => {});
        }
        this.publishing = null;
      })();
    }
  }

  private async publish(): Promise<void> {
    const now = Date.now();
    const state: WorkerState = { ...this.host.state(), heartbeatAt: now, seq: this.seq++, epoch: this.epoch };
    const json = JSON.stringify(state);
    await this.redis.multi()
      .set(this.k.workerState(state.workerId), json, 'PX', CLUSTER_DEFAULTS.stateTtlMs)
      .zadd(this.k.workers(), now, state.workerId)
      .xadd(this.k.events(), 'MAXLEN', '~', CLUSTER_DEFAULTS.streamMaxLen, '*', ...stateEventFields(state))
      .exec();
  }

  private async commandLoop(from: string): Promise<void> {
    let last = from;
    while (!this.stopped) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = (await this.blocking.xread('BLOCK', 1000, 'STREAMS', this.k.commands(this.host.workerId), last)) as typeof res;
      } catch {
        if (this.stopped) return;
        continue;
      }
      if (!res) continue;
      for (const [id, fields] of res[0][1]) {
        last = id;
        let started!: () => void;
        const underWay = new Promise<void>((r) => { started = r; });
        if (fieldsKind(fields) === 'drain') await Promise.allSettled([...this.inFlight]);
        const done = this.handle(fields, started);
        this.inFlight.add(done);
        void done.finally(() => this.inFlight.delete(done));
        await Promise.race([done, underWay]);
      }
    }
  }

  private async handle(fields: string[], started: () => void): Promise<void> {
    const t0 = Date.now();
    let cmd: WorkerCommand;
    try {
      cmd = parseCommandEntry(fields);
    } catch {
      return; // not ours to answer: it has no id we can trust
    }
    let error: { code: CommandErrorCode; message: string } | undefined;
    if (cmd.epoch < this.epoch) {
      error = { code: 'stale_epoch', message: `epoch ${cmd.epoch} < ${this.epoch}` };
    } else {
      this.epoch = cmd.epoch;
      try {
        await this.host.execute(cmd, started);
      } catch (e) {
        const code = (e as { code?: string }).code;
        const known: CommandErrorCode[] = ['in_use', 'out_of_memory', 'not_found', 'invalid', 'io', 'device', 'draining'];
        error = { code: known.includes(code as CommandErrorCode) ? (code as CommandErrorCode) : 'internal', message: String((e as Error).message ?? e).slice(0, 2000) };
      }
    }
    const result: CommandResult = {
      commandId: cmd.id, workerId: this.host.workerId, kind: cmd.kind, ...('model' in cmd ? { model: cmd.model } : {}),
      ok: !error, ...(error ? { error } : {}), durationMs: Date.now() - t0, finishedAt: Date.now(),
    };
    await this.redis.xadd(this.k.events(), 'MAXLEN', '~', CLUSTER_DEFAULTS.streamMaxLen, '*', ...resultEventFields(result)).catch(() => {});
    this.changed();
  }

  /** Stops heartbeats and the command loop; removes the worker's state key (idempotent). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.publishing?.catch(() => {});
    await Promise.allSettled([
      this.redis.multi().del(this.k.workerState(this.host.workerId)).zrem(this.k.workers(), this.host.workerId).exec(),
    ]);
    this.blocking.disconnect();
    await this.loop?.catch(() => {});
  }
}

/** The `kind` of a command entry, read without validating it (handle() validates). */
function fieldsKind(fields: string[]): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'data') continue;
    try {
      return (JSON.parse(fields[i + 1]) as { kind?: string } | null)?.kind;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export type { ModelOnWorker };
