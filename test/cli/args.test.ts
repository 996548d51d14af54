// Every sub-command meets bad arguments and bad configs with one clear line and exit code 2, and --help with its
// usage and 0 (services/cli/args.ts) -- never a stack trace.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCommandConfig, parseCommand, type CommandIo } from '../../services/cli/args.ts';

function capture(): CommandIo & { outText: string; errText: string } {
  const io = { outText: '', errText: '', out: (t: string) => { io.outText += t; }, err: (t: string) => { io.errText += t; } };
  return io;
}

/** Runs a command's `run` with process.stdout/stderr captured. */
async function runQuiet(load: () => Promise<{ run: (argv: string[]) => Promise<number> }>, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const { run } = await load();
  const w = { out: process.stdout.write, err: process.stderr.write };
  let out = '';
  let err = '';
  process.stdout.write = ((t: string | Uint8Array) => { out += t.toString(); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((t: string | Uint8Array) => { err += t.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { code: await run(argv), out, err };
  } finally {
    process.stdout.write = w.out;
    process.stderr.write = w.err;
  }
}

const COMMANDS = {
  worker: () => import('../../services/cli/worker.ts'),
  gateway: () => import('../../services/cli/gateway.ts'),
  scheduler: () => import('../../services/cli/scheduler.ts'),
  up: () => import('../../services/cli/up.ts'),
  generate: () => import('../../services/cli/generate.ts'),
  inspect: () => import('../../services/cli/inspect.ts'),
};

describe('command arguments and configs', () => {
  it('parseCommand: values, a usage error (2), --help (0)', () => {
    const io = capture();
    const ok = parseCommand('x', 'usage: x\n', { args: ['--n', '3'], options: { n: { type: 'string' } } }, io);
    assert.ok(typeof ok !== 'number' && ok.values.n === '3');
    assert.equal(parseCommand('x', 'usage: x\n', { args: ['--bogus'], options: {} }, io), 2);
    assert.match(io.errText, /^swapserve x: Unknown option '--bogus'/);
    assert.match(io.errText, /usage: x/);
    assert.equal(parseCommand('x', 'usage: x\n', { args: ['-h'], options: { help: { type: 'boolean', short: 'h' } } }, io), 0);
    assert.equal(io.outText, 'usage: x\n');
  });

  it('loadCommandConfig: a missing or malformed file, or no Redis where one is needed, is exit code 2 with the reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-cli-'));
    try {
      const io = capture();
      assert.equal(loadCommandConfig('worker', join(dir, 'nope.yaml'), { io }), 2);
      assert.match(io.errText, /swapserve worker: cannot read config file .*nope\.yaml/);
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{"budgets": ');
      assert.equal(loadCommandConfig('worker', bad, { io }), 2);
      assert.match(io.errText, /cannot parse config file/);
      const invalid = join(dir, 'invalid.json');
      writeFileSync(invalid, JSON.stringify({ budgets: { hostBytes: 'lots' } }));
      assert.equal(loadCommandConfig('gateway', invalid, { io }), 2);
      const noRedis = join(dir, 'ok.json');
      writeFileSync(noRedis, '{}');
      const saved = process.env.REDIS_URL;
      delete process.env.REDIS_URL;
      try {
        assert.equal(loadCommandConfig('gateway', noRedis, { io, needsRedis: true }), 2);
        assert.match(io.errText, /swapserve gateway: no Redis configured/);
        assert.equal(typeof loadCommandConfig('gateway', noRedis, { io }), 'object');
      } finally {
        if (saved !== undefined) process.env.REDIS_URL = saved;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const [name, load] of Object.entries(COMMANDS)) {
    it(`swapserve ${name}: an unknown flag is exit code 2 with the usage; --help is 0`, async () => {
      const bad = await runQuiet(load, ['--no-such-flag']);
      assert.equal(bad.code, 2);
      assert.match(bad.err, new RegExp(`^swapserve ${name}: Unknown option '--no-such-flag'`));
      assert.match(bad.err, new RegExp(`usage: swapserve ${name}`));
      const help = await runQuiet(load, ['--help']);
      assert.equal(help.code, 0);
      assert.match(help.out, new RegExp(`^usage: swapserve ${name}`));
    });
  }

  it('swapserve worker: SWAPSERVE_WARM_ENGINE other than 0 or 1 is refused with exit code 2, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-warm-env-'));
    const prev = process.env.SWAPSERVE_WARM_ENGINE;
    try {
      const cfg = join(dir, 'swapserve.json');
      writeFileSync(cfg, JSON.stringify({ redisUrl: 'redis://127.0.0.1:1', models: [] }));
      process.env.SWAPSERVE_WARM_ENGINE = 'yes';
      const r = await runQuiet(COMMANDS.worker, ['--config', cfg, '--backend', 'cpu']);
      assert.equal(r.code, 2);
      assert.match(r.err, /^swapserve worker: SWAPSERVE_WARM_ENGINE must be 0 or 1, received "yes"/);
    } finally {
      if (prev === undefined) delete process.env.SWAPSERVE_WARM_ENGINE;
      else process.env.SWAPSERVE_WARM_ENGINE = prev;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const name of ['worker', 'gateway'] as const) {
    it(`swapserve ${name}: a config file that cannot be read is exit code 2, not a crash`, async () => {
      const r = await runQuiet(COMMANDS[name], ['--config', '/nonexistent/swapserve.yaml']);
      assert.equal(r.code, 2);
      assert.match(r.err, new RegExp(`^swapserve ${name}: cannot read config file /nonexistent/swapserve.yaml`));
    });
  }
});
