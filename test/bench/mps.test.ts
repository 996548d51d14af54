// bench/mps on the CPU backend (issue 14's device scripts, rehearsed where no GPU is): `bench mps --tiny` and the
// kill -9 chaos check, both under a fake `nvidia-cuda-mps-control` / `nvidia-smi` (shell scripts on PATH that keep a
// marker in the pipe folder and record every call), and the chaos check where MPS is unavailable.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyModel } from '../../native/ts/model/tiny.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** Fake MPS tools in `dir`; `smiExit` != 0 makes nvidia-smi fail (a machine without a usable driver). */
function fakeTools(dir: string, smiExit = 0): { env: NodeJS.ProcessEnv; calls: () => string[] } {
  const log = join(dir, 'calls.log');
  writeFileSync(join(dir, 'nvidia-cuda-mps-control'), `#!/bin/sh
if [ "$1" = "-d" ]; then echo "-d $CUDA_MPS_PIPE_DIRECTORY" >> ${JSON.stringify(log)}; touch "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0; fi
read cmd
echo "$cmd $CUDA_MPS_PIPE_DIRECTORY" >> ${JSON.stringify(log)}
case "$cmd" in
  get_server_list) [ -e "$CUDA_MPS_PIPE_DIRECTORY/control" ] || exit 1 ;;
  quit) rm -f "$CUDA_MPS_PIPE_DIRECTORY/control" ;;
esac
`);
  writeFileSync(join(dir, 'nvidia-smi'), smiExit ? `#!/bin/sh\necho "no devices were found" >&2\nexit ${smiExit}\n` : `#!/bin/sh\nprintf '0, Default\\n'\n`);
  chmodSync(join(dir, 'nvidia-cuda-mps-control'), 0o755);
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  return { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

describe('bench mps on the CPU backend', { timeout: 240_000 }, () => {
  it('--tiny: the four arms under the (fake) MPS daemon, started and told to quit; engines end at quit, not 20 s later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-mps-bench-'));
    try {
      const tools = fakeTools(dir);
      const out = join(dir, 'out');
      const r = await run(['bench/mps/mps.ts', '--tiny', '--prompts', '16', '--mixes', 'decode', '--requests', '4', '--batch', '2', '--out', out], tools.env, 120_000);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(readFileSync(join(out, 'mps.json'), 'utf8')) as { meta: { mps: boolean; elapsedS: number }; rows: { arms: Record<string, { tokS: number }> }[]; gainTable: unknown[] };
      assert.equal(j.meta.mps, true);
      assert.deepEqual(Object.keys(j.rows[0].arms).sort(), ['mps-2', 'one', 'one-2x', 'ts-2']);
      assert.ok(Object.values(j.rows[0].arms).every((a) => a.tokS > 0));
      assert.equal(j.gainTable.length, 1);
      // Three arms' engines quit: each used to live on until the parent's 20 s SIGKILL (60 s for this run).
      assert.ok(j.meta.elapsedS < 20, `took ${j.meta.elapsedS} s`);
      const pipe = join(out, 'mps-data', 'mps', 'pipe');
      assert.deepEqual(tools.calls(), [`get_server_list ${pipe}`, `-d ${pipe}`, `get_server_list ${pipe}`, `quit ${pipe}`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('chaos: kill -9 of one of two co-located CPU workers under the (fake) daemon: 0 lost, the group restarted, the report written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-mps-chaos-'));
    try {
      const tools = fakeTools(dir);
      const model = join(dir, 'qwen2.5-0.5b');
      await writeTinyModel(model, { family: 'qwen2', format: 'hf', dtype: 'bf16', seed: 1, config: { maxPositions: 2048 } });
      const out = join(dir, 'out');
      const r = await run(['bench/mps/chaos.ts', '--model', model, '--out', out, '--backend', 'cpu', '--max-tokens', '2000', '--budget-s', '90'], tools.env, 120_000);
      const rep = JSON.parse(readFileSync(join(out, 'chaos.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(r.code, 0, `${r.stderr.slice(-2000)}\n${JSON.stringify(rep)}`);
      assert.equal(rep.error, undefined);
      assert.equal(rep.mps, true);
      assert.equal(rep.lost, 0);
      assert.equal(rep.duplicates, 0);
      assert.equal(rep.groupRestarted, true);
      assert.equal(rep.servesAfter, true);
      assert.ok((rep.exits as string[]).includes('gpu0-a:SIGKILL'));
      const calls = tools.calls();
      assert.ok(calls.filter((c) => c.startsWith('-d ')).length >= 2, `the daemon started, and again for the restarted group: ${calls.join('; ')}`);
      assert.ok(calls.at(-1)?.startsWith('quit '), 'the daemon is told to quit at the end');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('chaos where MPS is unavailable: exit 1 with the reason in chaos.json, nothing started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swapserve-mps-chaos-'));
    try {
      const tools = fakeTools(dir, 9);
      const out = join(dir, 'out');
      const r = await run(['bench/mps/chaos.ts', '--model', join(dir, 'none'), '--out', out], tools.env, 30_000);
      assert.equal(r.code, 1);
      const rep = JSON.parse(readFileSync(join(out, 'chaos.json'), 'utf8')) as { error: string };
      assert.match(rep.error, /MPS is unavailable: nvidia-smi failed \(exit 9\)/);
      assert.equal(existsSync(join(out, 'redis')), false, 'no Redis started before the check');
      assert.deepEqual(tools.calls(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
