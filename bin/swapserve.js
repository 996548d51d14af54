#!/usr/bin/env node
// The `swapserve` command: runs the TypeScript CLI through tsx (no build step between edit and run). `worker`, the
// command a scale-from-zero start waits on, runs from the prebuilt bundle (scripts/bundle.mjs) while that is fresh,
// and creates its CUDA context on a native thread while its JavaScript loads.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Starts CUDA context creation for `swapserve worker [--backend B] [--device N]`; any failure is left to the runtime. */
function prewarmGpu(args) {
  // Only the two flags that matter here; the worker validates all of them.
  const { values } = parseArgs({ args, options: { backend: { type: 'string' }, device: { type: 'string' } }, strict: false, allowPositionals: true });
  if ((values.backend ?? process.env.SWAPSERVE_BACKEND ?? 'auto') === 'cpu') return;
  const device = Number(values.device ?? 0);
  const addon = fileURLToPath(new URL('../native/build/swapserve_cuda.node', import.meta.url));
  if (!Number.isInteger(device) || device < 0 || !existsSync(addon)) return;
  try {
    createRequire(import.meta.url)(addon).prewarm(device);
  } catch {
    // no driver or no device: the runtime's open says so clearly
  }
}

const argv = process.argv.slice(2);
if (argv[0] === 'worker' && !process.env.SWAPSERVE_NO_PREWARM) prewarmGpu(argv.slice(1));
let bundle = null;
if (argv[0] === 'worker' && !process.env.SWAPSERVE_NO_BUNDLE) {
  const { freshBundle, DEFAULT_OUT } = await import('../scripts/bundle.mjs');
  bundle = freshBundle();
  if (!bundle && existsSync(`${DEFAULT_OUT}/worker.json`)) {
    process.stderr.write('swapserve worker: sources changed since the worker bundle was built; starting through tsx (slower). `npm run build:bundle` rebuilds it.\n');
  }
}
if (bundle) {
  const { run } = await import(bundle);
  process.exitCode = await run(argv.slice(1));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../services/cli/main.ts');
  await main(argv);
}
