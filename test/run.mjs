#!/usr/bin/env node
// The test command (npm test): every test/**/*.test.ts under node's test runner, TypeScript through tsx.
// Extra arguments filter test files by substring: `npm test -- policy gateway`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
const filters = process.argv.slice(2);
const files = walk(join(root, 'test')).sort()
  .filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.SWAPSERVE_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files,
], {
  stdio: 'inherit', cwd: root,
  // Services log JSON lines on stdout; tests that read them set their own LOG_LEVEL for the processes they start.
  env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' },
});
process.exit(r.status ?? 1);
