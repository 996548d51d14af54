// Structured logs across real processes: a generation that fails in the engine leaves exactly one JSON log line
// naming its cause and its request id (the client's 500 body carries neither), and the gateway's access log
// line names the request id, model, path and status.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { prettyLine } from '../../services/config/log.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { jsonLines, startService, type ServiceProcess } from '../helpers/service-process.ts';

let redis: TestRedis;
let modelDir = '';
const procs: ServiceProcess[] = [];
let gatewayUrl = '';

/** Resolves once `pred` holds for some line of `lines`, polling as output arrives (at most `ms`). */
async function lineMatching(lines: string[], pred: (l: string) => boolean, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const hit = lines.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no matching log line in:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  redis = await startRedis();
  // A scratch budget too small for one sequence's KV cache: the engine's pass fails (budget) inside the worker.
  modelDir = await makeTinyModel({ family: 'llama3', format: 'hf', dtype: 'f32', seed: 3 });
  const file = join(dirname(modelDir), `${basename(modelDir)}.yaml`);
  await writeFile(file, stringify({
    prefix: redis.prefix(), modelRoots: [dirname(modelDir)], gateway: { port: 0, requestTimeoutMs: 60_000 },
    budgets: { hostBytes: '64MiB', gpuBytes: '32MiB', scratchBytes: '4KiB' },
    models: [{ id: 'padded', path: basename(modelDir), maxTokens: 64 }],
  }));
  const env = { REDIS_URL: redis.url, LOG_LEVEL: 'info' };
  procs.push(await startService(['worker', '--config', file, '--id', 'logw', '--threads', '1', '--backend', 'cpu'], env, /^worker logw ready/));
  const gw = await startService(['gateway', '--config', file], env, /^gateway listening on /);
  procs.push(gw);
  gatewayUrl = gw.ready.replace('gateway listening on ', '').trim();
});

after(async () => {
  await Promise.allSettled(procs.map((p) => p.stop()));
  await redis?.stop();
  if (modelDir) await rm(dirname(modelDir), { recursive: true, force: true });
});

describe('logs', () => {
  it('a failed generation leaves exactly one JSON line with its cause and request id', async () => {
    const [worker, gateway] = procs;
    let failed: { status: number; body: { error: { code: string; message: string } } } | null = null;
    for (let seed = 1; seed <= 8 && !failed; seed++) {
      const r = await fetch(`${gatewayUrl}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'padded', prompt: 'hello', max_tokens: 64, temperature: 1, seed }),
      });
      const body = await r.json() as { error: { code: string; message: string } };
      if (r.status >= 500) failed = { status: r.status, body };
    }
    assert.ok(failed, 'the KV cache outgrows the scratch budget');
    assert.equal(failed.body.error.code, 'generation_failed');
    assert.doesNotMatch(failed.body.error.message, /budget/, 'the cause stays out of the 5xx body');

    // The gateway's access line for it names the request id (the client's 500 carries none in its body).
    const access = await lineMatching(gateway.lines, (l) => l.includes('"status":500') && l.includes('"path":"/v1/completions"'));
    const a = JSON.parse(access) as Record<string, unknown>;
    assert.equal(a.model, 'padded');
    assert.equal(a.service, 'gateway');
    const requestId = a.requestId as string;
    assert.match(requestId, /^[A-Za-z0-9_-]{8,64}$/);

    const failure = await lineMatching(worker.lines, (l) => l.includes(requestId) && l.includes('budget'));
    const all = [...worker.lines, ...gateway.lines].filter((l) => l.includes(requestId) && l.includes('budget'));
    assert.equal(all.length, 1, `exactly one line names the cause:\n${all.join('\n')}`);
    const f = JSON.parse(failure) as { level: number; requestId: string; model: string; code: string; service: string; err: unknown };
    assert.equal(f.level, 50);
    assert.equal(f.service, 'worker');
    assert.equal(f.requestId, requestId);
    assert.equal(f.model, 'padded');
    assert.equal(f.code, 'generation_failed');
    // The engine's error, as the cause of the typed error the backend threw (pino's errWithCause).
    assert.match(JSON.stringify(f.err), /budget/, failure);
    // Every stdout line after the ready line is JSON (no stray text in the log stream).
    for (const p of procs) {
      const others = p.lines.filter((l) => l !== p.ready);
      assert.equal(jsonLines(others).length, others.length, others.join('\n'));
    }
  });

  it('renders JSON lines for a terminal as one short human line', () => {
    const line = prettyLine(JSON.stringify({ level: 50, time: Date.UTC(2026, 0, 1, 12, 0, 1, 234), service: 'worker', msg: 'generation failed', requestId: 'r1' }));
    assert.equal(line, '12:00:01.234 ERROR worker generation failed requestId=r1\n');
  });
});
