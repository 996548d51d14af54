// Plan -> deployment (issue 14): `swapserve plan --out` names each group's workers per GPU and MPS, and
// `swapserve up --plan FILE --dry-run` (its real argument parsing, a host of 4 GPUs handed in) runs the groups of this
// host's GPU type with them; bad plan files and plans for other GPUs are refused with the field or the type named.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { run as plan } from '../../services/cli/plan.ts';
import { run as up, type UpHost } from '../../services/cli/up.ts';
import { deployOnHost, gpuTypeMatches, type DeployGroup } from '../../services/fleet/plan-deploy.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const PROFILES = join(ROOT, 'bench', 'results', 'profiles');
const PRICES = join(ROOT, 'examples', 'fleet', 'gpu-prices.yaml');
const llama3b = { params: 3212749824, weightBytes: 6425499648, layers: 28, kvBytesPerToken: 114688 };
const big = { params: 32763876352, weightBytes: 65527752704, layers: 64, kvBytesPerToken: 262144 };

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'swapserve-plan-deploy-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** A host with `gpus` GPUs of model `name` (what nvidia-smi would say), no NUMA. */
const hostOf = (gpus: number, name: string | null): UpHost => ({
  probe: () => ({ gpus: Array.from({ length: gpus }, (_, index) => ({ index, busId: null, numaNode: null })), memBytes: 0, nodes: [], numactl: false }),
  gpuName: () => name,
});
const H100_HOST = hostOf(4, 'NVIDIA H100 80GB HBM3');

/** Runs `swapserve up` with these arguments; its exit code, stdout and stderr. */
async function runUp(args: string[], host: UpHost = H100_HOST): Promise<{ rc: number; out: string; err: string }> {
  let out = '', err = '';
  const rc = await up([...args, '--data-dir', join(dir, 'data')], { out: (t) => { out += t; }, err: (t) => { err += t; } }, host);
  return { rc, out, err };
}
/** The workers a dry run lists: "worker-i: GPU d group g co-located (...)" lines. */
const workers = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('worker-'));

/** A config serving the plan's models (files need not exist: a plan's decision reads no weights). */
function config(models: string[]): string {
  const f = join(dir, `config-${models.join('-')}.yaml`);
  writeFileSync(f, stringify({ modelRoots: [dir], models: models.map((id) => ({ id, path: `${id}.gguf` })) }));
  return f;
}

/** `swapserve plan INPUT --out FILE` on the H100 profile, with (or without) a measured MPS section; the fragment's path. */
async function planFor(mps: boolean): Promise<string> {
  const name = mps ? 'mps' : 'plain';
  const cal = JSON.parse(readFileSync(join(PROFILES, 'h100.json'), 'utf8')) as Record<string, unknown>;
  // A made-up measurement, for the test: two engines under MPS carry their loads at 0.7 of the sum.
  if (mps) cal.mps = { loadFactor: 0.7, workers: 2, source: 'test: made-up measurement' };
  (cal.engine as { efficiencyFrom: string }).efficiencyFrom = join(PROFILES, 'h200.json'); // the copy lives elsewhere
  writeFileSync(join(dir, `h100-${name}.json`), JSON.stringify(cal));
  const rare = (id: string) => ({ id, ...llama3b, sloTtftMs: 1000, sloTpotMs: 100, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }] });
  const input = join(dir, `plan-input-${name}.yaml`);
  writeFileSync(input, stringify({
    prices: PRICES, gpus: [{ type: 'H100', calibration: `h100-${name}.json`, mps }],
    models: [rare('a'), rare('b'), rare('c'), { id: 'big', ...big, sloTtftMs: 800, sloTpotMs: 100, workload: [{ inputTokens: 512, outputTokens: 128, ratePerS: 0.02 }] }],
  }));
  const out = join(dir, `plan-${name}.yaml`);
  let err = '';
  const rc = await plan([input, '--out', out, '--report', join(dir, `plan-${name}.md`), '--json', join(dir, `plan-${name}.json`)], { out: () => {}, err: (t) => { err += t; } });
  assert.equal(rc, 0, err);
  return out;
}

describe('swapserve plan -> swapserve up --plan', () => {
  it('a plan that co-locates the H100 swap group under MPS starts two workers on each of its GPUs, one on the dedicated group\'s', { timeout: 120_000 }, async () => {
    const file = await planFor(true);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /name: h100-swap[\s\S]*workersPerGpu: 2[\s\S]*mps: true/, text);
    const r = await runUp(['--config', config(['a', 'b', 'c', 'big']), '--plan', file, '--dry-run']);
    assert.equal(r.rc, 0, r.err);
    // Dedicated groups come first in the plan: big on GPU 0; the swap group (1 GPU at this load) on GPU 1, two workers.
    assert.deepEqual(workers(r.out), [
      'worker-0: GPU 0 group h100-big',
      'worker-1: GPU 1 group h100-swap co-located (2 on the GPU, MPS)',
      'worker-2: GPU 1 group h100-swap co-located (2 on the GPU, MPS)',
    ]);
    assert.match(r.out, /2 GPU\(s\) of this host are in no group of the plan and stay idle/);
    // The --json form is read the same way.
    const viaJson = await runUp(['--config', config(['a', 'b', 'c', 'big']), '--plan', file.replace(/\.yaml$/, '.json'), '--dry-run']);
    assert.deepEqual(workers(viaJson.out), workers(r.out), viaJson.err);
  });

  it('the same workload planned without MPS: one worker per GPU everywhere', { timeout: 120_000 }, async () => {
    const file = await planFor(false);
    assert.match(readFileSync(file, 'utf8'), /name: h100-swap[\s\S]*workersPerGpu: 1[\s\S]*mps: false/);
    const r = await runUp(['--config', config(['a', 'b', 'c', 'big']), '--plan', file, '--dry-run']);
    assert.equal(r.rc, 0, r.err);
    assert.deepEqual(workers(r.out), ['worker-0: GPU 0 group h100-big', 'worker-1: GPU 1 group h100-swap']);
  });

  it('--group runs one group of the plan; its GPUs start at 0', { timeout: 120_000 }, async () => {
    const r = await runUp(['--config', config(['a', 'b', 'c', 'big']), '--plan', await planFor(true), '--group', 'h100-swap', '--dry-run']);
    assert.equal(r.rc, 0, r.err);
    assert.deepEqual(workers(r.out), ['worker-0: GPU 0 group h100-swap co-located (2 on the GPU, MPS)', 'worker-1: GPU 0 group h100-swap co-located (2 on the GPU, MPS)']);
  });
});

describe('a plan this host cannot run, or a bad plan file, is refused before anything starts', () => {
  const group = (extra: Record<string, unknown> = {}) => ({ name: 'h100-swap', gpu: 'H100', mode: 'swap', gpus: 2, gpusPerWorker: 1, workersPerGpu: 2, mps: true, models: ['a'], ...extra });
  const planFile = (name: string, body: unknown): string => {
    const f = join(dir, name);
    writeFileSync(f, typeof body === 'string' ? body : name.endsWith('.json') ? JSON.stringify(body) : stringify(body));
    return f;
  };
  const cases: Array<[string, string, RegExp, UpHost?]> = [
    ['a host of another GPU type', planFile('other.yaml', { placement: { groups: [group()] } }), /the plan names no group for this host's GPUs \(NVIDIA L40S\): its groups run on H100/, hostOf(2, 'NVIDIA L40S')],
    ['a host without GPUs', planFile('nogpu.yaml', { placement: { groups: [group()] } }), /the plan runs on H100 GPUs but this host has no GPU visible/, hostOf(0, null)],
    ['a GPU without a name', planFile('noname.yaml', { placement: { groups: [group()] } }), /GPU type is unknown .*--gpu-type/, hostOf(1, null)],
    ['not a plan at all', planFile('notplan.yaml', { models: [] }), /not a plan: expected placement\.groups \(swapserve plan --out\) or groups/],
    ['YAML that does not parse', planFile('broken.yaml', 'placement: [groups\n'), /plan .*broken\.yaml: cannot parse/],
    ['a missing file', join(dir, 'absent.yaml'), /plan .*absent\.yaml: cannot read/],
    ['a group without its GPU type', planFile('nogpu-field.yaml', { placement: { groups: [group({ gpu: undefined })] } }), /placement\.groups\.0\.gpu: missing: the GPU type/],
    ['workers per GPU of 0', planFile('zero.yaml', { placement: { groups: [group({ workersPerGpu: 0 })] } }), /placement\.groups\.0\.workersPerGpu: /],
    ['MPS with one worker per GPU', planFile('mps1.json', { groups: [group({ workersPerGpu: 1 })] }), /groups\.0\.mps: mps: true needs workersPerGpu ≥ 2/],
    ['an unknown field', planFile('typo.yaml', { placement: { groups: [group({ workerPerGpu: 2 })] } }), /placement\.groups\.0: .*workerPerGpu/],
    ['a model the config does not serve', planFile('unknown-model.yaml', { placement: { groups: [group({ models: ['zzz'] })] } }), /placement\.groups\.0\.models\.0: model "zzz" is not in models/],
    ['a tensor-parallel group', planFile('tp.yaml', { placement: { groups: [group({ gpusPerWorker: 2, workersPerGpu: 1, mps: false })] } }), /2 GPUs per worker \(tensor parallel\)/],
  ];
  for (const [name, file, want, host] of cases) {
    it(name, async () => {
      const r = await runUp(['--config', config(['a']), '--plan', file, '--dry-run'], host);
      assert.equal(r.rc, 2, r.out);
      assert.match(r.err, want);
      assert.deepEqual(workers(r.out), []);
    });
  }
  it('--group names no group of the plan, or one of another GPU type', async () => {
    const f = planFile('two.yaml', { placement: { groups: [group(), group({ name: 'l4-swap', gpu: 'L4' })] } });
    assert.match((await runUp(['--config', config(['a']), '--plan', f, '--group', 'nope', '--dry-run'])).err, /--group nope: not a group of the plan \(h100-swap, l4-swap\)/);
    assert.match((await runUp(['--config', config(['a']), '--plan', f, '--group', 'l4-swap', '--dry-run'])).err, /--group l4-swap: the plan runs it on L4 GPUs, this host has NVIDIA H100 80GB HBM3/);
  });
  it('--plan with --workers, or --group without --plan', async () => {
    const f = planFile('ok.yaml', { placement: { groups: [group()] } });
    assert.match((await runUp(['--config', config(['a']), '--plan', f, '--workers', '2', '--dry-run'])).err, /--plan and --workers/);
    assert.match((await runUp(['--config', config(['a']), '--group', 'h100-swap', '--dry-run'])).err, /--group chooses among a fleet plan's groups: give --plan FILE/);
  });
});

describe('matching a plan\'s GPU type to this host (pure)', () => {
  it('every word of the type is a word of nvidia-smi\'s name', () => {
    assert.ok(gpuTypeMatches('H100', 'NVIDIA H100 80GB HBM3'));
    assert.ok(gpuTypeMatches('A100-80GB', 'NVIDIA A100-SXM4-80GB'));
    assert.ok(gpuTypeMatches('l4', 'NVIDIA L4'));
    assert.ok(!gpuTypeMatches('L4', 'NVIDIA L40S'));
    assert.ok(!gpuTypeMatches('H100', 'NVIDIA H200'));
  });
  it('a group larger than the host takes the GPUs left; the rest of the plan is for other hosts', () => {
    const g = (name: string, gpus: number, workersPerGpu: number): DeployGroup => ({ name, gpu: 'H100', gpus, gpusPerWorker: 1, workersPerGpu, mps: workersPerGpu > 1, models: ['a'] });
    const d = deployOnHost([g('x', 3, 1), g('y', 3, 2), g('z', 1, 2)], { gpuType: 'NVIDIA H100', gpus: 4 });
    assert.deepEqual(d.devices.map((x) => `${x.device}:${x.group}×${x.workers}`), ['0:x×1', '1:x×1', '2:x×1', '3:y×2']);
    assert.match(d.notes.join('\n'), /group y .*its other 2 GPU\(s\) run on other hosts[\s\S]*group z .*gets no GPU here/);
  });
});
