// A plan's placement fragment is a valid swapserve config section; bad placement config gets errors naming the field; the CLI.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { run } from '../../services/cli/plan.ts';
import { ConfigError, groupWorkerCaps, mayServe, parseConfig, placementGroupsOf } from '../../services/config/config.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'swapserve-placement-'));
const models = ['a', 'b', 'big'].map((id) => ({ id, path: `${id}.gguf` }));
const base = { modelRoots: [dir], models };

/** A CommandIo that keeps what the command prints. */
function capture() {
  const c = { out: '', err: '', io: { out: (t: string) => { c.out += t; }, err: (t: string) => { c.err += t; } } };
  return c;
}

describe('swapserve plan → config', () => {
  const input = join(dir, 'plan.yaml');
  const shape = { params: 3212749824, weightBytes: 6425499648, layers: 28, kvBytesPerToken: 114688, sloTtftMs: 1000 };
  writeFileSync(input, stringify({
    prices: join(ROOT, 'examples', 'fleet', 'gpu-prices.yaml'),
    gpus: [{ type: 'H100', calibration: join(ROOT, 'bench', 'results', 'profiles', 'h100.json') }],
    models: [
      { id: 'a', ...shape, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }] },
      { id: 'b', ...shape, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }] },
      { id: 'big', ...shape, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 80 }] },
    ],
  }));

  it('writes a fragment that parses as the config\'s placement and drives placementGroupsOf / worker caps', async () => {
    const out = join(dir, 'fragment.yaml');
    const c = capture();
    assert.equal(await run([input, '--out', out, '--report', join(dir, 'report.md')], c.io), 0, c.err);
    const frag = parseYaml(readFileSync(out, 'utf8')) as { placement: { groups: Array<{ name: string; gpus: number; gpusPerWorker: number; models: string[] }> } };
    const cfg = parseConfig({ ...base, ...frag }, {});
    assert.deepEqual(frag.placement.groups.flatMap((g) => g.models).sort(), ['a', 'b', 'big']);
    const caps = groupWorkerCaps(cfg);
    for (const g of frag.placement.groups) {
      assert.equal(caps[g.name], g.gpus / g.gpusPerWorker);
      for (const m of g.models) assert.ok(placementGroupsOf(cfg, m)?.includes(g.name) && mayServe(cfg, m, g.name) && !mayServe(cfg, m, 'elsewhere') && !mayServe(cfg, m, undefined));
    }
    // 80 req/s of a 3B model needs more than one H100.
    assert.ok(frag.placement.groups.reduce((n, g) => n + g.gpus, 0) >= 2);
    assert.match(readFileSync(join(dir, 'report.md'), 'utf8'), /Expected cost: \$\d+\.\d\d\/h/);
  });

  it('bad input: exit 2 and one line naming it', async () => {
    const c = capture();
    assert.equal(await run([join(dir, 'missing.yaml')], c.io), 2);
    assert.match(c.err, /^swapserve plan: cannot read plan input .*missing\.yaml/);
    const c2 = capture();
    assert.equal(await run([], c2.io), 2);
    assert.match(c2.err, /expected one INPUT file/);
  });
});

describe('placement in the config', () => {
  const group = (name: string, ms: string[], extra: Record<string, unknown> = {}) => ({ name, models: ms, ...extra });
  it('no placement: every model on every worker', () => {
    const cfg = parseConfig(base, {});
    assert.equal(placementGroupsOf(cfg, 'a'), undefined);
    assert.ok(mayServe(cfg, 'a', undefined) && mayServe(cfg, 'a', 'g'));
  });
  it('a model in no group runs anywhere; caps are gpus / gpusPerWorker', () => {
    const cfg = parseConfig({ ...base, placement: { groups: [group('g1', ['a'], { gpus: 8, gpusPerWorker: 2 }), group('g2', ['a', 'b'])] } }, {});
    assert.deepEqual(placementGroupsOf(cfg, 'a'), ['g1', 'g2']);
    assert.ok(mayServe(cfg, 'big', undefined));
    assert.deepEqual(groupWorkerCaps(cfg), { g1: 4 });
  });
  const bad: Array<[string, unknown, Record<string, string>, RegExp]> = [
    ['an unknown model', { placement: { groups: [group('g1', ['nope'])] } }, {}, /placement\.groups\.0\.models\.0: model "nope" is not in models/],
    ['a duplicate group', { placement: { groups: [group('g1', ['a']), group('g1', ['b'])] } }, {}, /placement\.groups\.1\.name: duplicate worker group "g1"/],
    ['a bad group name', { placement: { groups: [group('g 1', ['a'])] } }, {}, /placement\.groups\.0\.name: worker group/],
    ['worker.group not a group', { placement: { groups: [group('g1', ['a'])] }, worker: { group: 'g2' } }, {}, /worker\.group: worker group "g2" is not one of placement\.groups \(g1\)/],
    ['SWAPSERVE_WORKER_GROUP not a group', { placement: { groups: [group('g1', ['a'])] } }, { SWAPSERVE_WORKER_GROUP: 'g9' }, /SWAPSERVE_WORKER_GROUP: worker group "g9"/],
    ['an unknown placement field', { placement: { groups: [], pools: [] } }, {}, /placement: .*pools/],
  ];
  for (const [name, raw, env, want] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseConfig({ ...base, ...(raw as object) }, env), (e: Error) => e instanceof ConfigError && want.test(e.message));
    });
  }
});
