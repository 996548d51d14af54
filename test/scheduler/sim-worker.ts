// A simulated worker for scheduler tests: the spine's real Control (heartbeats, command stream, results) over an
// in-memory tier table instead of the native runtime. Each command it runs is recorded and announced.
import { EventEmitter, once } from 'node:events';
import type { ModelOnWorker, WorkerCommand, WorkerState } from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';
import { Control } from '../../services/worker/control.ts';

export class SimWorker extends EventEmitter {
  readonly commands: WorkerCommand[] = [];
  readonly models: Record<string, ModelOnWorker> = {};
  private readonly redis: RedisClient;
  private readonly control: Control;
  private readonly startedAt = Date.now();

  constructor(readonly workerId: string, url: string, prefix: string, private readonly sizes: Record<string, number>, heartbeatMs = 200) {
    super();
    this.redis = connect(url);
    this.control = new Control(
      { workerId, state: () => this.state(), execute: (c) => this.execute(c) },
      this.redis, connect(url, { blocking: true }), prefix, heartbeatMs,
    );
  }

  start(): Promise<void> {
    return this.control.start();
  }

  /** Resolves with the next command that matches. */
  async next(match: (c: WorkerCommand) => boolean): Promise<WorkerCommand> {
    for (;;) {
      const [c] = (await once(this, 'command')) as [WorkerCommand];
      if (match(c)) return c;
    }
  }

  private state(): Omit<WorkerState, 'heartbeatAt' | 'seq' | 'epoch'> {
    let gpu = 0, host = 0;
    for (const m of Object.values(this.models)) {
      if (m.residency === 'gpu') gpu += m.bytes;
      if (m.residency !== 'disk') host += m.bytes;
    }
    return {
      workerId: this.workerId, pid: process.pid, host: 'sim', backend: 'cpu', device: 'sim', startedAt: this.startedAt,
      budgets: { gpu: 100_000, host: 1_000_000 }, usage: { gpu, host }, maxJobs: 4, models: { ...this.models }, draining: false, healthy: true,
    };
  }

  private async execute(c: WorkerCommand): Promise<void> {
    this.commands.push(c);
    if ('model' in c) {
      const m = (this.models[c.model] ??= { residency: 'disk', bytes: this.sizes[c.model] ?? 1000, activeJobs: 0, lastUsedAt: null, consuming: false });
      switch (c.kind) {
        case 'load': case 'evict': m.residency = 'host'; break;
        case 'swap_in': case 'load_to_gpu': m.residency = 'gpu'; break;
        case 'drop': m.residency = 'disk'; break;
        case 'consume': m.consuming = true; break;
        case 'stop_consume': m.consuming = false; break;
      }
    }
    this.emit('command', c);
    if (c.kind === 'drain' || c.kind === 'shutdown') setImmediate(() => this.emit('exit-requested', c.kind));
  }

  async stop(): Promise<void> {
    await this.control.stop();
    await this.redis.quit().catch(() => undefined);
  }
}
