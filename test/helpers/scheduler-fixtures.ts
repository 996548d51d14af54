// Fixtures for scheduler tests: worker states, model settings, and a recording fake of the scheduler's effects.
import type { ModelOnWorker, WorkerCommand, WorkerState } from '../../contracts/cluster.ts';
import type { Residency } from '../../contracts/vocab.ts';
import { applyActions, type Effects } from '../../services/scheduler/effects.ts';
import type { Action, ModelSettings } from '../../services/scheduler/state.ts';

export const GB = 1e9;

/** [residency, bytes, activeJobs, lastUsedAt, consuming, hostCopy] */
export type M = [Residency, number, number?, (number | null)?, boolean?, boolean?];

export function workerState(
  workerId: string,
  o: { gpu?: number; host?: number; models?: Record<string, M>; seq?: number; startedAt?: number; draining?: boolean; healthy?: boolean } = {},
): WorkerState {
  const models: Record<string, ModelOnWorker> = {};
  for (const [id, [residency, bytes, activeJobs = 0, lastUsedAt = null, consuming, hostCopy]] of Object.entries(o.models ?? {})) {
    models[id] = { residency, bytes, activeJobs, lastUsedAt, consuming: consuming ?? (residency === 'gpu'), ...(hostCopy === undefined ? {} : { hostCopy }) };
  }
  let gpu = 0, host = 0;
  for (const m of Object.values(models)) {
    if (['swapping-in', 'gpu', 'evicting'].includes(m.residency)) gpu += m.bytes;
    if (m.residency !== 'disk' && m.hostCopy !== false) host += m.bytes;
  }
  return {
    workerId, pid: 1000, host: 'test', backend: 'cpu', device: 'cpu', startedAt: o.startedAt ?? 0, heartbeatAt: 0,
    seq: o.seq ?? 1, budgets: { gpu: o.gpu ?? 80 * GB, host: o.host ?? 400 * GB }, usage: { gpu, host }, maxJobs: 8, models,
    draining: o.draining ?? false, healthy: o.healthy ?? true, epoch: 0,
  };
}

export function model(id: string, o: Partial<ModelSettings> = {}): ModelSettings {
  return {
    id, bytes: 10 * GB, sloMs: 2000, keepWarm: 0, maxReplicas: 8, concurrency: 4, gpuIdleMs: 300_000, hostIdleMs: 3_600_000,
    priority: 0, ...o,
  };
}

/** A fake of the effects that records every call, in order, as one line each. */
export class RecordingEffects implements Effects {
  readonly calls: string[] = [];
  readonly commands: { workerId: string; command: WorkerCommand }[] = [];
  send(workerId: string, command: WorkerCommand): Promise<void> {
    this.commands.push({ workerId, command });
    const extra = command.kind === 'consume' ? ` x${command.concurrency}` : '';
    this.calls.push(`${workerId} ${command.kind}${'model' in command ? ` ${command.model}` : ''}${extra}`);
    return Promise.resolve();
  }
  startWorker(workerId: string, model: string | null, group?: string): Promise<void> {
    this.calls.push(`start ${workerId} for ${model}${group === undefined ? '' : ` in ${group}`}`);
    return Promise.resolve();
  }
  stopWorker(workerId: string): Promise<void> {
    this.calls.push(`stop ${workerId}`);
    return Promise.resolve();
  }
}

/** Applies actions to a fresh recording fake (synchronously: the fake records as it is called) and returns its lines. */
export function record(actions: Action[], epoch = 1, now = 0): RecordingEffects {
  const fx = new RecordingEffects();
  void applyActions(actions, fx, epoch, now, (a, e) => { throw new Error(`effect ${a.type} failed: ${String(e)}`); });
  return fx;
}
