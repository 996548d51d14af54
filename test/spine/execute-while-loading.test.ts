// Execute-while-loading through the worker's command loop, with the CPU backend, stories260K and a real Redis: the
// scheduler's `swap_in` + `consume` pair is answered with `consume` while the swap is still under way (held by the
// runtime's test gate), the job is taken and started during the swap, and it finishes as a `swap` with the model's
// reference text once the weights land. A swap that fails under a started job ends it with a typed error.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../services/sdk/index.ts';
import {
  clusterKeys, commandFields, parseClusterEvent, type ClusterEvent, type CommandBody, type WorkerCommand,
} from '../../contracts/cluster.ts';
import { connect, type RedisClient } from '../../services/client/queues.ts';
import { NativeBackend } from '../../services/worker/native-backend.ts';
import { SwapWorker } from '../../services/worker/worker.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { twoModelConfig } from './stack.ts';
import { failNextMove, holdNextMove } from '../../native/ts/testing.ts';
import { needsData } from '../helpers/requires.ts';

/** Why this file's tests skip on a developer's machine (under CI a missing need fails). */
const SKIP = needsData();

let redis: TestRedis;
before(async () => { if (SKIP) return; redis = await startRedis(); });
after(async () => { await redis?.stop(); });

/** Sends commands to one worker and reads its events stream in order. */
class Commander {
  private readonly k: ReturnType<typeof clusterKeys>;
  private last = '0-0';
  private n = 0;
  constructor(private readonly redis: RedisClient, private readonly blocking: RedisClient, prefix: string, private readonly workerId: string) {
    this.k = clusterKeys(prefix);
  }

  async send(body: CommandBody): Promise<string> {
    const id = `t-${++this.n}`;
    const cmd = { ...body, id, epoch: 1, issuedAt: Date.now() } as WorkerCommand;
    await this.redis.xadd(this.k.commands(this.workerId), '*', ...commandFields(cmd));
    return id;
  }

  /** The next event (after those already read) that matches, within `withinMs`; fails the test otherwise. */
  async next(what: string, match: (e: ClusterEvent) => boolean, withinMs = 10_000): Promise<ClusterEvent> {
    const until = Date.now() + withinMs;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) assert.fail(`no event within ${withinMs} ms: ${what}`);
      const res = (await this.blocking.xread('BLOCK', Math.max(1, Math.min(left, 1000)), 'STREAMS', this.k.events(), this.last)) as [string, [string, string[]][]][] | null;
      for (const [id, fields] of res?.[0][1] ?? []) {
        this.last = id;
        const e = parseClusterEvent(fields);
        if (match(e)) return e;
      }
    }
  }

  result(commandId: string, withinMs?: number) {
    return this.next(`result of ${commandId}`, (e) => e.type === 'result' && e.result.commandId === commandId, withinMs)
      .then((e) => (e as Extract<ClusterEvent, { type: 'result' }>).result);
  }
}

async function setUp(tag: string) {
  const config = twoModelConfig(redis);
  const backend = new NativeBackend(config, { backend: 'cpu', threads: 1 });
  const worker = new SwapWorker({ config, backend, consumeAll: false, workerId: `ewl-${tag}` });
  const r = connect(redis.url);
  const b = connect(redis.url, { blocking: true });
  const cmd = new Commander(r, b, config.prefix, worker.workerId);
  await worker.start();
  const client = new Client({ redisUrl: redis.url, prefix: config.prefix });
  return {
    config, backend, worker, cmd, client,
    close: async () => {
      await client.close();
      await worker.close();
      r.disconnect();
      b.disconnect();
    },
  };
}

describe('execute-while-loading (worker)', { skip: SKIP }, () => {
  it('answers consume while swap_in is under way, starts the job during the swap, and reports it as a swap', async () => {
    const t = await setUp('ok');
    try {
      // The worker reports its pinned host pool once it exists (the scheduler places cold models by it).
      await t.backend.runtimeForTest.hostReady;
      await t.cmd.next('a state with hostReady', (e) => e.type === 'state' && e.state.hostReady === true);
      const load = await t.cmd.send({ kind: 'load', model: 'story-a' });
      assert.equal((await t.cmd.result(load)).ok, true);
      const release = holdNextMove(t.backend.runtimeForTest);
      let released = false;
      try {
        const swap = await t.cmd.send({ kind: 'swap_in', model: 'story-a' });
        const consume = await t.cmd.send({ kind: 'consume', model: 'story-a', concurrency: 2 });
        // The swap is held: its result cannot come before we release it, but consume's must.
        const r = await t.cmd.result(consume);
        assert.equal(r.ok, true);
        const arrivalMs = Date.now();
        const s = await t.client.stream({ model: 'story-a', prompt: '', max_tokens: 8, temperature: 0 });
        // The worker reports the job running while the weights are still landing.
        const st = await t.cmd.next('a state with the job active', (e) => e.type === 'state' && e.state.models['story-a']?.activeJobs === 1);
        assert.equal(st.type === 'state' && st.state.models['story-a'].residency, 'swapping-in');
        release();
        released = true;
        assert.equal((await t.cmd.result(swap)).ok, true);
        let text = '';
        for await (const c of s) text += c.text;
        const done = await s.result;
        assert.match(text, /^ ?Once upon a time/);
        assert.equal(done.path, 'swap');
        assert.equal(done.coldReason, undefined);
        const tm = done.timings;
        assert.ok(tm.swapMs > 0, `swap time ${tm.swapMs}`);
        assert.ok(tm.queueMs + tm.loadMs + tm.swapMs + tm.prefillMs <= tm.ttftMs + 1, JSON.stringify(tm));
        assert.ok(tm.ttftMs <= Date.now() - arrivalMs + 1);
      } finally {
        if (!released) release();
      }
    } finally {
      await t.close();
    }
  });

  it('a swap that fails under a started job ends that job with a typed error; the worker serves on', async () => {
    const t = await setUp('fail');
    try {
      assert.equal((await t.cmd.result(await t.cmd.send({ kind: 'load', model: 'story-a' }))).ok, true);
      const release = holdNextMove(t.backend.runtimeForTest);
      let released = false;
      try {
        failNextMove(t.backend.runtimeForTest, 'io');
        const swap = await t.cmd.send({ kind: 'swap_in', model: 'story-a' });
        assert.equal((await t.cmd.result(await t.cmd.send({ kind: 'consume', model: 'story-a', concurrency: 2 }))).ok, true);
        const s = await t.client.stream({ model: 'story-a', prompt: '', max_tokens: 4, temperature: 0 });
        await t.cmd.next('a state with the job active', (e) => e.type === 'state' && e.state.models['story-a']?.activeJobs === 1);
        release();
        released = true;
        const r = await t.cmd.result(swap);
        assert.equal(r.ok, false);
        await assert.rejects(async () => { for await (const _ of s) { /* no token may come */ } }, (e: unknown) => {
          assert.equal((e as { code?: string }).code, 'model_load_failed');
          return true;
        });
      } finally {
        if (!released) release();
      }
      // The model is back in the host tier; a swap without the fault serves.
      const again = await t.cmd.result(await t.cmd.send({ kind: 'swap_in', model: 'story-a' }));
      assert.equal(again.ok, true, JSON.stringify(again.error));
      const ok = await t.client.complete({ model: 'story-a', prompt: '', max_tokens: 4, temperature: 0 });
      assert.match(ok.text, /^ ?Once/);
    } finally {
      await t.close();
    }
  });
});
