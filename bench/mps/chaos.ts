// The co-location chaos check on the GPU (issue 14 "done when"): two swapserve workers on GPU 0 under the MPS daemon
// swapserve runs (LocalProcessProvider, workersPerGpu 2, CUDA backend), both streaming; one is killed with SIGKILL.
// Checks: the provider drains the other and restarts both (same ids, the daemon answering again); every accepted
// request completes, or fails with a retryable error whose retry by the client completes; 0 lost; no token twice.
// The same check runs on the CPU in CI (test/scheduler/colocation-fault.test.ts); this is its GPU twin.
//   node --import tsx bench/mps/chaos.ts --model DIR [--out DIR] [--streams N] [--no-mps] [--backend cuda|cpu] [--max-tokens N]
//     [--budget-s S]
// Prints one JSON line (and writes <out>/chaos.json, also when it fails: MPS unavailable, a step that never ends);
// exit 0 when 0 were lost. After --budget-s (default 110) it writes what it has, with the step it was in, and exits 1:
// the caller's `timeout` should be longer, or the report is lost with the process.
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { clusterKeys, parseWorkerState, type WorkerState } from '../../contracts/cluster.ts';
import { connect } from '../../services/client/queues.ts';
import { startLocalRedis } from '../../services/dev/local-redis.ts';
import { MpsDaemon } from '../../services/scheduler/mps.ts';
import { LocalProcessProvider } from '../../services/scheduler/provider.ts';
import { Client, RequestError } from '../../services/sdk/index.ts';

const { values: v } = parseArgs({ options: { model: { type: 'string' }, out: { type: 'string' }, streams: { type: 'string' }, 'no-mps': { type: 'boolean' }, backend: { type: 'string' }, 'max-tokens': { type: 'string' }, 'budget-s': { type: 'string' } } });
const log = (s: string): void => void process.stderr.write(`[mps chaos] ${s}\n`);

async function until<T>(what: string, f: () => Promise<T | null | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const x = await f();
    if (x) return x;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<number> {
  if (!v.model) throw new Error('--model DIR (a qwen2.5-0.5b made by bench/mps/make_models.py, with a tokenizer.json)');
  v.model = resolve(v.model);
  const out = v.out ?? join(tmpdir(), `swapserve-mps-chaos-${process.pid}`);
  mkdirSync(out, { recursive: true });
  const budgetS = Number(v['budget-s'] ?? 110);
  if (!(budgetS > 0)) throw new Error(`--budget-s must be a number > 0, received "${v['budget-s']}"`);
  const report: Record<string, unknown> = { mps: !v['no-mps'] };
  let step = 'checking the GPU compute mode';
  let timedOut = false;
  const writeReport = (): void => {
    writeFileSync(join(out, 'chaos.json'), JSON.stringify(report, null, 2));
    process.stdout.write(`${JSON.stringify(report)}\n`);
  };
  const mps = v['no-mps'] ? null : new MpsDaemon({ dataDir: out, log });
  // Before anything is started: a machine without MPS gets its report (and no Redis left behind).
  try {
    if (mps) await mps.checkComputeMode([0]);
  } catch (e) {
    report.error = (e as Error).message;
    writeReport();
    return 1;
  }
  step = 'starting Redis';
  const redis = await startLocalRedis(join(out, 'redis'));
  const prefix = '{chaos}';
  const cfgFile = join(out, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({
    redisUrl: redis.url, prefix, modelRoots: [join(v.model, '..')], dataDir: out,
    budgets: { hostBytes: '4GiB', gpuBytes: '8GiB', scratchBytes: '8GiB' },
    worker: { concurrency: 4, lockDurationMs: 2000, stalledIntervalMs: 500, maxStalledCount: 2 },
    shutdown: { timeoutMs: 30_000 }, models: [{ id: 'small', path: v.model, contextLength: 2048 }],
  }));
  const exits: string[] = [];
  const lines: string[] = [];
  const provider = new LocalProcessProvider({
    gpus: 1, workersPerGpu: () => 2, mps, extraArgs: ['--config', cfgFile, '--backend', v.backend ?? 'cuda', ...(v.backend === 'cpu' ? ['--threads', '1'] : [])],
    stdio: 'ignore', stopOnClose: true, killAfterMs: 40_000,
    onExit: (id, code, signal) => exits.push(`${id}:${signal ?? code}`), log: (l) => { lines.push(l); log(l); },
  });
  const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 180_000 });
  const conn = connect(redis.url);
  const state = async (id: string): Promise<WorkerState | null> => {
    const s = await conn.get(clusterKeys(prefix).workerState(id));
    return s === null ? null : parseWorkerState(s);
  };
  const t0 = Date.now();
  let closing: Promise<void> | null = null;
  const cleanup = (): Promise<void> => (closing ??= (async () => {
    await client.close().catch(() => undefined);
    conn.disconnect();
    await provider.close().catch((e: unknown) => log(`ERROR closing the provider: ${(e as Error).message}`));
    await redis.stop().catch(() => undefined);
  })());
  // The budget: the report (with the step that did not end) is written before the caller's timeout kills us.
  const hard = setTimeout(() => {
    timedOut = true;
    report.error = `the ${budgetS} s budget ran out while ${step}`;
    report.exits = exits;
    report.providerLog = lines;
    writeReport();
    void Promise.race([cleanup(), new Promise((r) => setTimeout(r, 45_000))]).finally(() => process.exit(1));
  }, budgetS * 1000);
  hard.unref();
  try {
    step = 'starting two workers (MPS daemon first)';
    await provider.start('gpu0-a', { model: null });
    await provider.start('gpu0-b', { model: null });
    await Promise.all(['gpu0-a', 'gpu0-b'].map((id) => until(`${id} up`, () => state(id))));
    step = 'the first request';
    await client.complete({ model: 'small', prompt: 'hi', max_tokens: 2, temperature: 0 });
    log(`both workers up and serving after ${Date.now() - t0} ms`);
    const N = Number(v.streams ?? 8);
    const req = (i: number) => ({ model: 'small', prompt: `request ${i}`, max_tokens: Number(v['max-tokens'] ?? 1500), temperature: 0.8, seed: i });
    const streams = await Promise.all([...Array(N)].map((_, i) => client.stream(req(i))));
    const outcomes = streams.map(async (s) => {
      const idx: number[] = [];
      try {
        for await (const tok of s) idx.push(tok.index);
        await s.result;
        return { ok: true, tokens: idx.length, dup: idx.some((x, i) => x !== i) };
      } catch (e) {
        if (!(e instanceof RequestError)) return { ok: false, tokens: idx.length, dup: false, code: String(e), retryable: false };
        return { ok: false, tokens: idx.length, dup: idx.some((x, i) => x !== i), code: e.code, retryable: e.retryable };
      }
    });
    step = 'waiting for both workers to stream';
    const busy = await until('both workers streaming', async () => {
      const [a, b] = await Promise.all([state('gpu0-a'), state('gpu0-b')]);
      return a && b && (a.models.small?.activeJobs ?? 0) > 0 && (b.models.small?.activeJobs ?? 0) > 0 ? { a, b } : null;
    });
    await new Promise((r) => setTimeout(r, 500));
    log(`SIGKILL gpu0-a (pid ${busy.a.pid}) while both stream`);
    const killedAt = Date.now();
    process.kill(busy.a.pid, 'SIGKILL');
    step = 'waiting for the streams after the kill';
    const results = await Promise.all(outcomes);
    let lost = results.filter((r) => !r.ok && !r.retryable).length;
    // Recorded as each step ends, so a report cut by the budget keeps what was seen.
    Object.assign(report, {
      streams: N, completed: results.filter((r) => r.ok).length, failedRetryable: results.filter((r) => !r.ok && r.retryable).length,
      codes: results.filter((r) => !r.ok).map((r) => r.code), duplicates: results.filter((r) => r.dup).length,
      secondsFromKillToAllOutcomes: (Date.now() - killedAt) / 1000, lost,
    });
    // The client's retries, all at once: each must complete.
    step = 'retrying the failed requests';
    const retries = await Promise.all(results.map(async (r, i) => {
      if (r.ok || !r.retryable) return null;
      try {
        return (await client.complete(req(i))).usage.completionTokens > 0;
      } catch (e) {
        log(`retry of ${i} failed: ${(e as Error).message}`);
        return false;
      }
    }));
    const retriedOk = retries.filter((x) => x === true).length;
    lost += retries.filter((x) => x === false).length;
    Object.assign(report, { retriedOk, lost });
    step = 'waiting for both workers to restart';
    const restarted = await until('both restarted', async () => {
      const [a, b] = await Promise.all([state('gpu0-a'), state('gpu0-b')]);
      return a && b && a.pid !== busy.a.pid && b.pid !== busy.b.pid ? { a: a.pid, b: b.pid } : null;
    }).then(() => true, () => false);
    report.groupRestarted = restarted;
    step = 'a request after the restart';
    const after = await client.complete({ model: 'small', prompt: 'after', max_tokens: 4, temperature: 0 }).then((c) => c.usage.completionTokens, () => 0);
    Object.assign(report, { servesAfter: after === 4, mpsHealthyAfter: mps ? await mps.healthy() : null, exits, providerLog: lines });
  } catch (e) {
    report.error = `${step}: ${(e as Error).message}`;
  } finally {
    step = 'stopping the workers';
    await cleanup();
  }
  clearTimeout(hard);
  // A kill that landed after every stream had ended proves nothing: say so (and fail) rather than pass.
  if (report.error === undefined && report.completed === report.streams) report.error = 'the kill hit no stream (all completed on the killed worker\'s sibling or before the kill): raise --max-tokens';
  if (timedOut) return new Promise<number>(() => undefined); // the budget's handler has written the report and exits
  writeReport();
  return report.error === undefined && report.lost === 0 && report.duplicates === 0 && report.groupRestarted === true ? 0 : 1;
}

main().then((c) => process.exit(c), (e: unknown) => {
  process.stderr.write(`[mps chaos] ${(e as Error).message}\n`);
  process.exit(1);
});
