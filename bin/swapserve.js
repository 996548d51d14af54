#!/usr/bin/env node
// The `swapserve` command: runs the TypeScript CLI through tsx (no build step between edit and run). `worker`, the
// command a scale-from-zero start waits on, runs from the prebuilt bundle (scripts/bundle.mjs) while that is fresh.
const argv = process.argv.slice(2);
const bundle = argv[0] === 'worker' && !process.env.SWAPSERVE_NO_BUNDLE
  ? (await import('../scripts/bundle.mjs')).freshBundle()
  : null;
if (bundle) {
  const { run } = await import(bundle);
  process.exitCode = await run(argv.slice(1));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../services/cli/main.ts');
  await main(argv);
}
