// `swapserve bench headline --tiny`: the whole harness on the CPU backend (Redis, gateway, scheduler, the worker
// it starts, OTLP receiver): every path is produced and reported by the system itself, and the numbers come from
// complete traces. Also: bad arguments get a usage error, not a crash.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { parse } from '../../bench/headline/args.ts';
import { run } from '../../bench/headline/headline.ts';

interface Sample { model: string; prompt: number; promptTokens: number; intended: string; path: string; ttftMs: number; queueMs: number; loadMs: number; swapMs: number; prefillMs: number; clientTtftMs: number; cachedBefore: number | null; workerStart?: { spawnMs: number; readyMs: number; toLoadMs: number } | null }

describe('bench headline --tiny', () => {
  const dir = mkdtempSync(join(tmpdir(), 'swapserve-headline-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('rejects bad arguments with exit code 2', async () => {
    assert.equal(await run(['--tiny', '--reps', 'x']), 2);
    assert.equal(await run([]), 2);
    assert.equal(await run(['--tiny', '--phases', 'swap,warp']), 2);
  });

  it('--phases picks the phases (the first worker start always runs)', () => {
    assert.deepEqual([...parse(['--tiny', '--phases', 'swap']).phases], ['swap']);
    assert.deepEqual([...parse(['--tiny']).phases], ['start', 'swap', 'cold']);
  });

  it('measures every path through the gateway from the traces, each as the system reports it', { timeout: 240_000 }, async () => {
    const out = join(dir, 'h.json');
    const md = join(dir, 'h.md');
    assert.equal(await run(['--tiny', '--reps', '1', '--start-reps', '2', '--prompts', '16,40', '--out', out, '--md', md]), 0);
    const r = JSON.parse(readFileSync(out, 'utf8')) as { samples: Sample[]; mismatches: unknown[]; prompts: { n: number; tokens: number }[] };
    assert.deepEqual(r.mismatches, []);
    assert.deepEqual(r.prompts.map((p) => p.tokens), [16, 40], 'prompts encode to exactly the asked lengths');
    const of = (intended: string) => r.samples.filter((s) => s.model === 'llama-3.1-8b-shape' && s.intended === intended);
    for (const intended of ['warm', 'swap', 'cold:disk_load@cache', 'cold:disk_load@disk', 'cold:worker_start@disk']) {
      const xs = of(intended);
      assert.ok(xs.length >= (intended.includes('worker_start') ? 4 : 2), `${intended}: both prompt lengths measured (worker start: twice)`);
      for (const s of xs) {
        assert.equal(s.path, intended.split('@')[0], `${intended}: the system reported ${s.path}`);
        assert.ok(s.ttftMs > 0 && s.prefillMs > 0 && s.ttftMs >= s.prefillMs + s.swapMs, `${intended}: consistent breakdown ${JSON.stringify(s)}`);
        // The trace's TTFT (gateway arrival -> first chunk) lies within the client's own round trip.
        assert.ok(s.ttftMs <= s.clientTtftMs + 1, `${intended}: traced ${s.ttftMs} ms vs client ${s.clientTtftMs} ms`);
        if (intended === 'warm') assert.equal(s.swapMs + s.loadMs, 0);
        if (intended === 'swap') assert.ok(s.swapMs > 0 && s.loadMs === 0);
        if (intended.startsWith('cold')) assert.ok(s.loadMs > 0 && s.swapMs > 0);
        if (intended.endsWith('@disk')) assert.ok(s.cachedBefore !== null && s.cachedBefore < 0.05, `page cache dropped before ${intended}`);
        if (intended.endsWith('@cache')) assert.ok(s.cachedBefore !== null && s.cachedBefore > 0.99, `page cache full before ${intended}`);
        if (intended.includes('worker_start')) {
          // Split by the worker's own swapserve.worker_start span: each part positive and inside the TTFT.
          const w = s.workerStart;
          assert.ok(w, `${intended}: the worker's start span was found`);
          assert.ok(w.spawnMs >= 0 && w.readyMs > 0 && w.toLoadMs >= 0, `${intended}: ${JSON.stringify(w)}`);
          assert.ok(w.spawnMs + w.readyMs + w.toLoadMs + s.loadMs <= s.ttftMs + 1, `${intended}: parts within the TTFT ${JSON.stringify(s)}`);
        }
      }
    }
    const text = readFileSync(md, 'utf8');
    for (const h of ['### TTFT per path', '### Breakdown from the traces', '### Worker start, from the traces', '### Bars', '### Published figures']) assert.ok(text.includes(h), h);
  });
});
