// How a service process ends: on SIGTERM/SIGINT (or a drain command) readiness fails first, then after a grace
// period (for load balancers to notice) the service drains, bounded by a timeout. Exit code 0 for a clean drain,
// 1 when the timeout cut it short.
import type { Logger } from '../config/log.ts';
import { startHealthServer, type HealthChecks, type HealthServer } from './server.ts';

export interface LifecycleOptions {
  log: Logger;
  /** Serve /livez and /readyz on this port (worker, scheduler); null: none (the gateway has its own). */
  health: { port: number; host: string; checks: HealthChecks } | null;
  /** Flips readiness to failing (nothing else). */
  beginDrain(): void;
  /** Drains and releases everything. */
  close(): Promise<void>;
  /** Between readiness failing and the drain starting (ms). */
  graceMs: number;
  /** Longest drain (ms); past it the process exits anyway, with code 1. */
  timeoutMs: number;
  /** Resolves when the service itself asks to exit (a worker's drain command), with its exit code. */
  exitRequested?: Promise<number>;
  /** Called when the drain timed out, before the exit (cut open connections). */
  onTimeout?: () => void;
  /** Called once the health server listens (tests, ready lines). */
  onHealth?: (server: HealthServer) => void;
}

/**
 * Runs until a signal (or exitRequested), then drains as above; resolves with the exit code. After a timeout the
 * caller exits with process.exit (whatever still runs is abandoned on purpose).
 */
export async function runUntilStopped(o: LifecycleOptions): Promise<number> {
  const health = o.health ? await startHealthServer(o.health.port, o.health.host, o.health.checks) : null;
  if (health) o.onHealth?.(health);
  const reason = await new Promise<string | number>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    void o.exitRequested?.then(resolve);
  });
  o.beginDrain();
  o.log.info({ reason, graceMs: o.graceMs, timeoutMs: o.timeoutMs }, 'draining: readiness fails from now on');
  if (o.graceMs > 0) await new Promise((r) => setTimeout(r, o.graceMs));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    o.close().then(() => false, (err: unknown) => {
      o.log.error({ err }, 'shutdown step failed');
      return false;
    }),
    new Promise<boolean>((r) => { timer = setTimeout(() => r(true), o.timeoutMs); }),
  ]);
  clearTimeout(timer);
  await health?.close();
  if (timedOut) {
    o.log.error({ timeoutMs: o.timeoutMs }, 'drain timed out; exiting with work unfinished');
    o.onTimeout?.();
  }
  else o.log.info('drained');
  return timedOut ? 1 : typeof reason === 'number' ? reason : 0;
}
