// The prebuilt worker entry (scripts/bundle.mjs): a worker process started from the bundle serves a request end to
// end (addon, tokenizer, BullMQ scripts and OpenTelemetry all bundled), greedy text equal to the tsx worker's, and a
// bundle built from other sources than the checkout holds is never run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '../../services/sdk/index.ts';
import { makeTinyModel } from '../helpers/make-model.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { BIN, startWorkerProcess } from '../helpers/worker-process.ts';
// @ts-expect-error -- plain ES module script, no declarations
import { buildBundle, freshBundle } from '../../scripts/bundle.mjs';

let redis: TestRedis;
let modelPath: string;
let out: string;
const children = new Set<ChildProcess>();

before(async () => {
  redis = await startRedis();
  modelPath = await makeTinyModel({ family: 'llama', format: 'gguf', seed: 5 });
  out = mkdtempSync(join(tmpdir(), 'swapserve-bundle-'));
  await buildBundle(out);
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.stop();
  if (out) rmSync(out, { recursive: true, force: true });
});

async function configFor(prefix: string): Promise<string> {
  const file = join(dirname(modelPath), `config-bundle-${prefix.replace(/\W/g, '')}.json`);
  await writeFile(file, JSON.stringify({
    redisUrl: redis.url, prefix, modelRoots: [dirname(modelPath)],
    budgets: { hostBytes: '64MiB', gpuBytes: '64MiB', scratchBytes: '64MiB' },
    models: [{ id: 'tiny', path: modelPath }],
  }));
  return file;
}

async function greedy(prefix: string): Promise<string> {
  const client = new Client({ redisUrl: redis.url, prefix, timeoutMs: 30_000 });
  try {
    return (await client.complete({ model: 'tiny', prompt: 'once upon', max_tokens: 12, temperature: 0 })).text;
  } finally {
    await client.close();
  }
}

describe('prebuilt worker bundle', () => {
  it('a worker run from the bundle serves a request, with the text of a worker run through tsx', async () => {
    const url = freshBundle(out);
    assert.ok(url?.startsWith('file://') && url.endsWith('/worker.mjs'), `fresh bundle: ${url}`);
    const runner = `const { run } = await import(${JSON.stringify(url)}); process.exitCode = await run(process.argv.slice(1));`;

    const p1 = redis.prefix();
    const bundled = await startWorkerProcess(['--input-type=module', '-e', runner, '--', '--config', await configFor(p1)], 'wb', children);
    assert.match(bundled.ready, /ready \(1 models\) \d+ ms after process start: node \+ imports \d+, config \+ telemetry \d+, cpu runtime \d+, redis \+ registration \d+/);
    const textBundled = await greedy(p1);
    bundled.child.kill('SIGTERM');

    const p2 = redis.prefix();
    const viaTsx = await startWorkerProcess([BIN, 'worker', '--config', await configFor(p2)], 'wt', children, { ...process.env, SWAPSERVE_NO_BUNDLE: '1' });
    const textTsx = await greedy(p2);
    viaTsx.child.kill('SIGTERM');

    assert.ok(textBundled.length > 0, 'the bundled worker generated text');
    assert.equal(textBundled, textTsx);
  });

  it('is not used once a source it was built from, or node_modules, changed', () => {
    const manifest = JSON.parse(readFileSync(join(out, 'worker.json'), 'utf8'));
    const stale = mkdtempSync(join(tmpdir(), 'swapserve-bundle-stale-'));
    try {
      copyFileSync(join(out, 'worker.mjs'), join(stale, 'worker.mjs'));
      const write = (m: unknown): void => writeFileSync(join(stale, 'worker.json'), JSON.stringify(m));
      write(manifest);
      assert.ok(freshBundle(stale), 'an unchanged copy is fresh');
      const [first] = Object.keys(manifest.sources);
      assert.ok(first, 'the manifest lists sources');
      write({ ...manifest, sources: { ...manifest.sources, [first]: { ...manifest.sources[first], mtimeMs: manifest.sources[first].mtimeMs - 1 } } });
      assert.equal(freshBundle(stale), null, 'a source edited since');
      write({ ...manifest, lock: { ...manifest.lock, size: manifest.lock.size + 1 } });
      assert.equal(freshBundle(stale), null, 'node_modules changed since');
      write({ ...manifest, sources: { ...manifest.sources, 'services/gone.ts': { size: 1, mtimeMs: 1 } } });
      assert.equal(freshBundle(stale), null, 'a source deleted since');
      writeFileSync(join(stale, 'worker.json'), '{not json');
      assert.equal(freshBundle(stale), null, 'an unreadable manifest');
      rmSync(join(stale, 'worker.json'));
      assert.equal(freshBundle(stale), null, 'no manifest');
    } finally {
      rmSync(stale, { recursive: true, force: true });
    }
  });
});
