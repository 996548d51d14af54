// The installable SDK (scripts/pack-sdk.mjs): packed, installed from its tarball into an empty folder with npm, it
// runs the README's SDK example with plain `node` against a real Redis and a CPU worker serving `demo-llama`; its
// bundle stays under 1 MB with no OpenTelemetry SDK inside, and its type declarations check in a consumer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../services/config/config.ts';
import { ensureDemoModels } from '../../services/dev/demo-models.ts';
import type { SwapWorker } from '../../services/worker/worker.ts';
import { makeTempDir } from '../helpers/make-model.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { startWorker } from './stack.ts';
// @ts-expect-error -- plain ES module script, no declarations
import { MAX_BUNDLE_BYTES, packSdk, SDK_DEPENDENCIES } from '../../scripts/pack-sdk.mjs';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

/** The README's SDK example: the first ```ts block after its "Or enqueue straight into the model's BullMQ queue". */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf("Or enqueue straight into the model's BullMQ queue");
  assert.ok(at >= 0, 'README has the SDK section');
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, 'README has the SDK example');
  return m[1];
}

let redis: TestRedis;
let worker: SwapWorker;
let packed: { tarball: string; bundle: string; bundleBytes: number; inputs: string[]; pkgDir: string };
let app: string;

before(async () => {
  redis = await startRedis();
  const demos = await ensureDemoModels(await makeTempDir('sdk-demo'));
  const llama = demos.models.find((m) => m.id === 'demo-llama')!;
  // The default prefix, as the example's Client uses; a short context keeps the unbounded chat stream short.
  const config = parseConfig({
    modelRoots: [demos.root], budgets: { ...demos.budgets, scratchBytes: '64MiB' },
    models: [{ ...llama, contextLength: 48 }],
  }, { REDIS_URL: redis.url });
  worker = await startWorker(config);
  packed = await packSdk(await makeTempDir('sdk-pack'));
  app = await makeTempDir('sdk-app');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'sdk-consumer', private: true, type: 'module' }));
  await run('npm', ['install', packed.tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeout: 300_000 });
});
after(async () => {
  await worker?.close();
  await redis?.stop();
});

describe('the SDK package', () => {
  it('depends on bullmq, ioredis, zod and @opentelemetry/api only, with a bundle under 1 MB and no OpenTelemetry SDK', () => {
    const pkg = JSON.parse(readFileSync(join(app, 'node_modules/swapserve/package.json'), 'utf8'));
    assert.deepEqual(Object.keys(pkg.dependencies).sort(), [...SDK_DEPENDENCIES].sort());
    assert.ok(packed.bundleBytes < MAX_BUNDLE_BYTES, `bundle ${packed.bundleBytes} bytes`);
    const sdkInputs = packed.inputs.filter((p) => /@opentelemetry\/(sdk-|exporter-|resources|core)/.test(p));
    assert.deepEqual(sdkInputs, [], 'no OpenTelemetry SDK module in the bundle');
    assert.ok(!readFileSync(packed.bundle, 'utf8').includes('@opentelemetry/sdk-'), 'the bundle names no @opentelemetry/sdk-* package');
    assert.ok(!packed.inputs.some((p) => p.startsWith('services/telemetry/sdk') || p.startsWith('native/')), 'no telemetry SDK set-up, no native code');
  });

  it('runs the README example with plain node from another folder', async () => {
    const example = readmeExample().replaceAll('redis://127.0.0.1:6379', redis.url);
    assert.notEqual(example, readmeExample(), 'the example names the Redis URL it connects to');
    writeFileSync(join(app, 'example.mjs'), example);
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app, timeout: 120_000 });
    // console.log(done.text, done.path, done.timings): the first request was cold (the model was on disk).
    const first = /^([\s\S]*?) (warm|swap|cold) \{([^}]*)\}/.exec(stdout);
    assert.ok(first, `output: ${stdout}`);
    assert.equal(first[2], 'cold');
    for (const k of ['queueMs', 'loadMs', 'swapMs', 'prefillMs', 'ttftMs', 'decodeMs', 'totalMs']) assert.match(first[3], new RegExp(`${k}: [\\d.]+`));
    assert.ok(first[1].length > 0, 'the completion has text');
    assert.ok(stdout.slice(first[0].length).trim().length > 0, 'the stream printed tokens');
  });

  it('has type declarations a strict TypeScript consumer checks against', async () => {
    writeFileSync(join(app, 'check.ts'), [
      "import { Client, RequestError, type Completion } from 'swapserve/sdk';",
      "const c = new Client({ redisUrl: 'redis://127.0.0.1:1' });",
      "const f = (): Promise<Completion> => c.complete({ model: 'x', prompt: 'y', max_tokens: 2 });",
      "const e: RequestError = new RequestError('timeout');",
      '// @ts-expect-error an unknown error code is refused',
      "new RequestError('no_such_code');",
      'void f; void e;',
    ].join('\n'));
    await run(process.execPath, [
      join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), 'check.ts',
    ], { cwd: app, timeout: 120_000 });
  });
});
