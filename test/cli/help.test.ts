// One source for every help text: the top-level usage, `swapserve bench`'s usage and docs/cli.md all come from
// services/cli/commands.ts, and each entry there loads a module with a run().
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BENCHES, COMMANDS, markdownHelp } from '../../services/cli/commands.ts';

const root = new URL('../../', import.meta.url).pathname;
const cli = (...args: string[]) => spawnSync(process.execPath, [`${root}bin/swapserve.js`, ...args], { encoding: 'utf8', cwd: root });

describe('CLI help', () => {
  it('docs/cli.md is what `swapserve help --markdown` writes (regenerate it after changing commands.ts)', () => {
    assert.equal(readFileSync(`${root}docs/cli.md`, 'utf8'), markdownHelp());
    const r = cli('help', '--markdown');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, markdownHelp());
  });

  it('`swapserve --help` lists every command, and the bench line names every benchmark', () => {
    const r = cli('--help');
    assert.equal(r.status, 0, r.stderr);
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c.name} +${c.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    const benchLine = r.stdout.split('\n').find((l) => l.startsWith('  bench '))!;
    for (const b of BENCHES) assert.ok(benchLine.includes(b.name), `${b.name} in "${benchLine}"`);
  });

  it('`swapserve bench` lists every benchmark (exit 1); an unknown one is exit 2', () => {
    const none = cli('bench');
    assert.equal(none.status, 1);
    for (const b of BENCHES) assert.ok(none.stderr.includes(`  ${b.name.padEnd(10)} ${b.summary}`), b.name);
    const bad = cli('bench', 'no-such-bench');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^swapserve bench: unknown benchmark "no-such-bench"/);
  });

  it('every command and benchmark loads a module with a run(argv)', async () => {
    for (const e of [...COMMANDS, ...BENCHES]) assert.equal(typeof (await e.load()).run, 'function', e.name);
  });

  it('every entry has a name, a synopsis and a one-line summary, with no name twice', () => {
    for (const list of [COMMANDS, BENCHES]) {
      assert.equal(new Set(list.map((e) => e.name)).size, list.length);
      for (const e of list) assert.ok(/^[a-z-]+$/.test(e.name) && e.summary && !e.summary.includes('\n'), e.name);
    }
  });
});
