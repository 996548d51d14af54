// Co-location judged from observed traffic (issue 14): a model without a configured `workload` is judged at the median
// request of a token trace (the simulator's reader, Azure LLM CSV), which moves the decision exactly as the same
// configured workload does; through `swapserve up --workload-from --dry-run` too (demo models, a 1-GPU host handed in).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { typicalRequest } from '../../services/scheduler/colocate.ts';
import { planColocation } from '../../services/scheduler/colocation-setup.ts';
import { observedFor, observedWorkloads } from '../../services/fleet/observed-workload.ts';
import { ConfigError, parseConfig } from '../../services/config/config.ts';
import { run as up, type UpHost } from '../../services/cli/up.ts';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'swapserve-coloc-workload-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** An Azure-format token trace (ContextTokens, GeneratedTokens[, model]) of these requests. */
function trace(name: string, rows: Array<[number, number, string?]>): string {
  const f = join(dir, name);
  const withModel = rows.some((r) => r[2] !== undefined);
  const head = `TIMESTAMP,ContextTokens,GeneratedTokens${withModel ? ',model' : ''}`;
  writeFileSync(f, [head, ...rows.map(([c, g, m]) => `2023-11-16 18:15:46.6805900,${c},${g}${withModel ? `,${m ?? ''}` : ''}`)].join('\n') + '\n');
  return f;
}
const times = (n: number, row: [number, number, string?]): Array<[number, number, string?]> => Array.from({ length: n }, () => row);
// Prefill-heavy short requests, with a long tail: median 400/40 (the seed's 512-token prefill cell, ×2.0); the mean
// prompt (2,680) would read the 2,048-token cell (×1.0).
const SHORT = times(7, [400, 40]).concat(times(3, [8000, 40]));
// Long-context decode-heavy requests: 3,000/500 reads the 2,048-token cell (×1.0).
const LONG = times(5, [3000, 500]);

const GB = 1e9; // 1 GB of bf16 = a 0.5B model
/** One GPU, one 0.5B model per config entry, the trace read as `up` and `scheduler` read it. */
const plan = (c: ReturnType<typeof parseConfig>) => planColocation(c, 1, c.models.map(() => GB), observedFor(c));
const cfg = (coLocation: Record<string, unknown>, models: Array<Record<string, unknown>> = [{ id: 'm', path: 'm.gguf' }]) =>
  parseConfig({ modelRoots: [dir], models, coLocation: { enabled: true, ...coLocation } }, {});

describe('the typical request of observed traffic', () => {
  it('is the median prompt and the median completion (lower median, 0 completions count as 1)', () => {
    assert.deepEqual(typicalRequest(SHORT.map(([promptTokens, outputTokens]) => ({ promptTokens, outputTokens }))), { promptTokens: 400, outputTokens: 40, requests: 10 });
    assert.deepEqual(typicalRequest([{ promptTokens: 10, outputTokens: 0 }, { promptTokens: 30, outputTokens: 0 }]), { promptTokens: 10, outputTokens: 1, requests: 2 });
    assert.equal(typicalRequest([]), null);
  });
  it('is per model where the trace names models (id or alias); a model it never names is absent', () => {
    const f = trace('per-model.csv', [...times(3, [100, 300, 'chat']), ...times(3, [3000, 50, 'summary']), [200, 10, '']]);
    const c = cfg({}, [{ id: 'chat-model', path: 'a.gguf', aliases: ['chat'] }, { id: 'summary', path: 'b.gguf' }, { id: 'quiet', path: 'c.gguf' }]);
    const w = observedWorkloads(c.models, f);
    assert.deepEqual(w.get('chat-model'), { promptTokens: 100, outputTokens: 300, requests: 3 });
    assert.deepEqual(w.get('summary'), { promptTokens: 3000, outputTokens: 50, requests: 3 });
    assert.equal(w.has('quiet'), false);
  });
});

describe('the observed workload moves the decision as a configured one does', () => {
  it('long-context traffic keeps a GPU at one worker where the default workload co-locates', () => {
    assert.deepEqual(plan(cfg({})).perGpu, [2], 'default 512/256 reads the ×2.0 cell');
    const observed = plan(cfg({ workloadFrom: trace('long.csv', LONG) }));
    assert.deepEqual(observed.perGpu, [1], observed.reasons.join('\n'));
    assert.match(observed.reasons.join('\n'), /m: typical request from .*long\.csv: median 3000 prompt \/ 500 completion tokens of 5 requests/);
    const configured = plan(cfg({}, [{ id: 'm', path: 'm.gguf', workload: { promptTokens: 3000, outputTokens: 500 } }]));
    assert.deepEqual(configured.perGpu, observed.perGpu);
  });
  it('short prefill-heavy traffic co-locates where a long default workload would not; the median ignores the tail', () => {
    const longDefault = { workload: { promptTokens: 3000, outputTokens: 500 } };
    assert.deepEqual(plan(cfg(longDefault)).perGpu, [1]);
    assert.deepEqual(plan(cfg({ ...longDefault, workloadFrom: trace('short.csv', SHORT) })).perGpu, [2]);
    const configured = cfg({ ...longDefault }, [{ id: 'm', path: 'm.gguf', workload: { promptTokens: 400, outputTokens: 40 } }]);
    assert.deepEqual(plan(configured).perGpu, [2]);
  });
  it('a configured workload wins over the trace; a model the trace never names keeps coLocation.workload', () => {
    const own = cfg({ workloadFrom: trace('long2.csv', LONG) }, [{ id: 'm', path: 'm.gguf', workload: { promptTokens: 400, outputTokens: 40 } }]);
    assert.deepEqual(plan(own).perGpu, [2]);
    const unnamed = plan(cfg({ workloadFrom: trace('other-model.csv', times(3, [3000, 500, 'someone-else'])) }));
    assert.deepEqual(unnamed.perGpu, [2]);
    assert.match(unnamed.reasons.join('\n'), /m: no requests for it in .*: judged at coLocation\.workload \(512 \/ 256 tokens\)/);
  });
  it('a bad trace is a ConfigError naming coLocation.workloadFrom, the file and the line', () => {
    const noCol = join(dir, 'nocol.csv');
    writeFileSync(noCol, 'ContextTokens\n12\n');
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'ContextTokens,GeneratedTokens\n12,4\n0,3\n');
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'absent.csv'), /coLocation\.workloadFrom: trace .*absent\.csv: ENOENT/],
      [noCol, /coLocation\.workloadFrom: trace .*nocol\.csv: missing column\(s\) GeneratedTokens/],
      [bad, /coLocation\.workloadFrom: trace .*bad\.csv: line 3 has a bad token count/],
    ];
    for (const [f, want] of cases) assert.throws(() => plan(cfg({ workloadFrom: f })), (e: unknown) => e instanceof ConfigError && want.test(e.message));
    // A caller that forgets to read the trace is told so, rather than the trace being ignored.
    assert.throws(() => planColocation(cfg({ workloadFrom: cases[0][0] }), 1, [GB]), /coLocation\.workloadFrom is .* but its traffic was not read/);
  });
});

describe('swapserve up --workload-from (demo models, one GPU handed in, --dry-run)', () => {
  const host: UpHost = { probe: () => ({ gpus: [{ index: 0, busId: null, numaNode: null }], memBytes: 0, nodes: [], numactl: false }), gpuName: () => 'NVIDIA H100' };
  const runUp = async (args: string[]) => {
    let out = '', err = '';
    const config = join(dir, 'up.yaml');
    writeFileSync(config, stringify({ coLocation: { enabled: true } }));
    const rc = await up(['--config', config, '--data-dir', join(dir, 'data'), '--dry-run', ...args], { out: (t) => { out += t; }, err: (t) => { err += t; } }, host);
    return { rc, out, err, workers: out.split('\n').filter((l) => l.startsWith('worker-')) };
  };
  it('short traffic: two workers on the GPU; long traffic: one', { timeout: 60_000 }, async () => {
    const short = await runUp(['--workload-from', trace('up-short.csv', SHORT)]);
    assert.equal(short.rc, 0, short.err);
    assert.deepEqual(short.workers, ['worker-0: GPU 0 co-located (2 on the GPU, MPS)', 'worker-1: GPU 0 co-located (2 on the GPU, MPS)'], short.out);
    const long = await runUp(['--workload-from', trace('up-long.csv', LONG)]);
    assert.equal(long.rc, 0, long.err);
    assert.deepEqual(long.workers, ['worker-0: GPU 0'], long.out);
    assert.match(long.out, /GPU 0: co-location does not pay/);
  });
  it('a trace it cannot read is refused before anything starts', async () => {
    const r = await runUp(['--workload-from', join(dir, 'nope.csv')]);
    assert.equal(r.rc, 2);
    assert.match(r.err, /swapserve up: coLocation\.workloadFrom: trace .*nope\.csv: ENOENT/);
    assert.deepEqual(r.workers, []);
  });
});
