// `swapserve bench mps`: does co-locating two engines on one GPU under NVIDIA MPS pay, with swapserve's engine (issue
// 14; the Databricks seed's study)? Per model (Qwen2.5 shapes, random weights, bench/mps/make_models.py), per prompt
// length and mix, four arms in the same run, each doing the same requests:
//   one      one engine process, `batch` sequences in flight
//   one-2x   the same process at twice the batch (the honest alternative to a second engine)
//   ts-2     two engine processes on the GPU, time-sliced (no MPS), `batch` each, half the requests each
//   mps-2    the same two under the MPS control daemon swapserve runs (services/scheduler/mps.ts)
// Throughput = (prompt + completion tokens) / wall time from the first start to the last end; TPOT p99 over every
// gap between consecutive tokens of a sequence. gain = mps-2 / max(one, one-2x): the gain table the co-location
// policy reads (coLocation.gainTable). Writes <out>/mps.json and <out>/mps.md; prints the table.
// Cells run small models first; once --budget-s has passed the rest are skipped and listed as cut.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HELP, parseCommand } from '../../services/cli/args.ts';
import { MpsDaemon } from '../../services/scheduler/mps.ts';
import type { GainRow } from '../../services/scheduler/colocate.ts';
import { tinyHfTokenizer, writeTinyModel } from '../../native/ts/model/tiny.ts';
import { openModel } from '../../native/ts/model/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const USAGE = `usage: swapserve bench mps [options]   (GPU: run bench/mps/run_device.sh; --tiny is a CPU smoke run)
  --models-dir DIR     models made by bench/mps/make_models.py (qwen2.5-0.5b, -1.5b, -3b, -7b)
  --tiny               a tiny qwen2 model on the CPU backend (checks the harness; the numbers mean nothing)
  --models LIST        which, smallest first (default 0.5b,1.5b,3b,7b)
  --prompts LIST       prompt tokens (default 128,512,2048)
  --mixes LIST         decode (completion --decode-output tokens), prefill (--prefill-output) (default decode,prefill)
  --batch N            sequences in flight per engine (default 8; one-2x runs 2N)
  --requests N         requests per arm and cell (default 16; the two engines of a pair take half each)
  --decode-output N    completion tokens of the decode-heavy mix (default 64)
  --prefill-output N   completion tokens of the prefill-heavy mix (default 4)
  --budget-s S         skip the cells left after S seconds (default 330)
  --no-mps             skip the mps-2 arm (no MPS daemon here)
  --out DIR            where mps.json and mps.md go (default: a temp folder)
`;

interface Cell { model: string; prompt: number; mix: 'decode' | 'prefill'; output: number }
interface ArmResult { tokS: number; outTokS: number; p99TpotMs: number; wallS: number; tokens: number }
interface Row extends Cell { arms: Partial<Record<Arm, ArmResult>> }
type Arm = 'one' | 'one-2x' | 'ts-2' | 'mps-2';

/** One engine process speaking bench/mps/engine-proc.ts's line protocol. */
class Proc {
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  readonly child: ChildProcess;
  stderr = '';
  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'engine-proc.ts'), ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.child.once('exit', () => this.waiter?.());
  }
  async next(): Promise<Record<string, unknown>> {
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`engine process exited (${this.child.signalCode ?? this.child.exitCode}): ${this.stderr.trim().slice(-800)}`);
      await new Promise<void>((r) => { this.waiter = r; });
      this.waiter = null;
    }
    const o = JSON.parse(this.lines.shift()!) as Record<string, unknown>;
    if (typeof o.error === 'string') throw new Error(`engine process: ${o.error}`);
    return o;
  }
  send(o: object): void { this.child.stdin!.write(`${JSON.stringify(o)}\n`); }
  async quit(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.send({ cmd: 'quit' });
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(t);
  }
}

const p99 = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)];
};

/** Runs one cell on a set of processes at once (the requests split between them) and merges their answers. */
async function runCell(procs: Proc[], cell: Cell, requests: number, concurrency: number, seed: number): Promise<ArmResult> {
  const each = Math.ceil(requests / procs.length);
  procs.forEach((p, i) => p.send({ cmd: 'run', requests: each, concurrency, prompt: cell.prompt, output: cell.output, seed: seed + i * 1000 }));
  const rs = await Promise.all(procs.map((p) => p.next())) as unknown as { startMs: number; endMs: number; promptTokens: number; outputTokens: number; gapsMs: number[] }[];
  const wallS = (Math.max(...rs.map((r) => r.endMs)) - Math.min(...rs.map((r) => r.startMs))) / 1000;
  const tokens = rs.reduce((n, r) => n + r.promptTokens + r.outputTokens, 0);
  const out = rs.reduce((n, r) => n + r.outputTokens, 0);
  return { tokS: tokens / wallS, outTokS: out / wallS, p99TpotMs: p99(rs.flatMap((r) => r.gapsMs)), wallS, tokens };
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand('bench mps', USAGE, {
    args: argv,
    options: {
      'models-dir': { type: 'string' }, tiny: { type: 'boolean' }, models: { type: 'string' }, prompts: { type: 'string' }, mixes: { type: 'string' },
      batch: { type: 'string' }, requests: { type: 'string' }, 'decode-output': { type: 'string' }, 'prefill-output': { type: 'string' },
      'budget-s': { type: 'string' }, 'no-mps': { type: 'boolean' }, out: { type: 'string' }, ...HELP,
    },
  });
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const int = (name: string, s: string | undefined, d: number): number => {
    const n = s === undefined ? d : Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer >= 1, received "${s}"`);
    return n;
  };
  const list = (s: string | undefined, d: string): string[] => (s ?? d).split(',').map((x) => x.trim()).filter(Boolean);
  let batch: number, requests: number, decodeOut: number, prefillOut: number, budgetS: number;
  try {
    batch = int('batch', v.batch, 8);
    requests = int('requests', v.requests, 16);
    decodeOut = int('decode-output', v['decode-output'], 64);
    prefillOut = int('prefill-output', v['prefill-output'], 4);
    budgetS = int('budget-s', v['budget-s'], 330);
  } catch (e) {
    process.stderr.write(`swapserve bench mps: ${(e as Error).message}\n`);
    return 2;
  }
  const mixes = list(v.mixes, 'decode,prefill');
  if (mixes.some((m) => m !== 'decode' && m !== 'prefill')) {
    process.stderr.write(`swapserve bench mps: --mixes takes decode and/or prefill, received "${v.mixes}"\n`);
    return 2;
  }
  const prompts = list(v.prompts, v.tiny ? '16,64' : '128,512,2048').map(Number);
  if (prompts.some((p) => !Number.isInteger(p) || p < 1)) {
    process.stderr.write(`swapserve bench mps: --prompts takes integers >= 1, received "${v.prompts}"\n`);
    return 2;
  }
  const out = v.out ?? join(tmpdir(), `swapserve-bench-mps-${process.pid}`);
  mkdirSync(out, { recursive: true });
  const log = (s: string): void => void process.stderr.write(`[bench mps] ${s}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...(v.tiny ? { SWAPSERVE_BACKEND: 'cpu' } : {}) };

  // Models: the made ones (tiny: one written here), each given the tiny qwen2 tokenizer (the engine needs one; the
  // prompts are token ids, and a sampled id past its vocabulary decodes to empty text).
  let models: { name: string; dir: string }[];
  if (v.tiny) {
    const dir = join(out, 'tiny-qwen2');
    if (!existsSync(join(dir, 'config.json'))) await writeTinyModel(dir, { family: 'qwen2', format: 'hf', dtype: 'bf16', seed: 1, config: { maxPositions: 2048 } });
    models = [{ name: 'tiny', dir }];
  } else {
    if (!v['models-dir']) {
      process.stderr.write('swapserve bench mps: --models-dir DIR (from bench/mps/make_models.py) or --tiny\n');
      return 2;
    }
    const root = v['models-dir'];
    const have = new Set(existsSync(root) ? readdirSync(root) : []);
    models = list(v.models, '0.5b,1.5b,3b,7b').map((n) => ({ name: n, dir: join(root, `qwen2.5-${n}`) })).filter((m) => {
      if (!have.has(`qwen2.5-${m.name}`)) log(`no ${m.dir}: ${m.name} skipped`);
      return have.has(`qwen2.5-${m.name}`);
    });
    const tok = tinyHfTokenizer('qwen2');
    for (const m of models) {
      if (existsSync(join(m.dir, 'tokenizer.json'))) continue;
      writeFileSync(join(m.dir, 'tokenizer.json'), JSON.stringify(tok.files.tokenizerJson));
      writeFileSync(join(m.dir, 'tokenizer_config.json'), JSON.stringify(tok.files.tokenizerConfig));
    }
  }

  const mps = v['no-mps'] ? null : new MpsDaemon({ dataDir: join(out, 'mps-data'), log });
  let mpsEnv: Record<string, string> | null = null;
  if (mps) {
    try {
      if (!v.tiny) await mps.checkComputeMode([0]);
      mpsEnv = await mps.acquire('bench');
    } catch (e) {
      log(`mps-2 arm skipped: ${(e as Error).message}`);
    }
  }

  /** Writes mps.json and mps.md from what was measured so far (after every arm: a run cut short keeps its table). */
  const writeReport = (): string => {
    const paramsB: Record<string, number> = { '0.5b': 0.5, '1.5b': 1.5, '3b': 3, '7b': 7, tiny: 0.001 };
    const gainTable: GainRow[] = [];
    const fmt = (x: number | undefined, d = 0): string => (x === undefined ? '—' : x.toFixed(d));
    const lines = [
      `| model | prompt | mix | one tok/s | one-2x tok/s | ts-2 tok/s | mps-2 tok/s | mps-2 gain | ts-2 gain | p99 TPOT ms one / one-2x / ts-2 / mps-2 |`,
      '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ];
    for (const r of rows) {
      const best = Math.max(r.arms.one?.tokS ?? 0, r.arms['one-2x']?.tokS ?? 0);
      const gain = best > 0 && r.arms['mps-2'] ? r.arms['mps-2'].tokS / best : undefined;
      const tsGain = best > 0 && r.arms['ts-2'] ? r.arms['ts-2'].tokS / best : undefined;
      if (gain !== undefined) gainTable.push({ paramsB: paramsB[r.model] ?? 1, promptTokens: r.prompt, mix: r.mix, gain: Math.round(gain * 1000) / 1000 });
      lines.push(`| ${r.model} | ${r.prompt} | ${r.mix} (${r.output} out) | ${fmt(r.arms.one?.tokS)} | ${fmt(r.arms['one-2x']?.tokS)} | ${fmt(r.arms['ts-2']?.tokS)} | ${fmt(r.arms['mps-2']?.tokS)} | ${gain === undefined ? '—' : `×${gain.toFixed(2)}`} | ${tsGain === undefined ? '—' : `×${tsGain.toFixed(2)}`} | ` +
        `${(['one', 'one-2x', 'ts-2', 'mps-2'] as Arm[]).map((k) => fmt(r.arms[k]?.p99TpotMs, 1)).join(' / ')} |`);
    }
    const meta = {
      date: new Date().toISOString(), command: `swapserve bench mps ${argv.join(' ')}`.trim(), backend: v.tiny ? 'cpu' : 'cuda',
      batch, requests, decodeOutput: decodeOut, prefillOutput: prefillOut, budgetS, elapsedS: Math.round(elapsed()), mps: mpsEnv !== null,
    };
    const md = [
      `# bench mps — ${meta.date}`, '', `command: \`${meta.command}\`; ${meta.backend}; batch ${batch} per engine (one-2x: ${2 * batch}), ${requests} requests per arm and cell; ${meta.elapsedS} s`,
      '', 'tok/s = (prompt + completion tokens) / wall; gain = arm / max(one, one-2x).', '', ...lines, '',
      cut.length ? `cut by the ${budgetS} s budget: ${cut.join('; ')}` : 'nothing cut',
    ].join('\n');
    writeFileSync(join(out, 'mps.json'), JSON.stringify({ meta, rows, gainTable, cut }, null, 2));
    writeFileSync(join(out, 'mps.md'), `${md}\n`);
    return md;
  };

  const t0 = Date.now();
  const elapsed = (): number => (Date.now() - t0) / 1000;
  const rows: Row[] = [];
  const cut: string[] = [];
  const maxContext = Math.max(...prompts) + Math.max(decodeOut, prefillOut) + 8;
  try {
    for (const m of models) {
      const cells: Cell[] = prompts.flatMap((prompt) => mixes.map((mix) => ({ model: m.name, prompt, mix: mix as Cell['mix'], output: mix === 'decode' ? decodeOut : prefillOut })));
      if (elapsed() > budgetS) {
        cut.push(...cells.map((c) => `${c.model}/${c.prompt}/${c.mix}`));
        continue;
      }
      const mine = cells.map((c): Row => ({ ...c, arms: {} }));
      rows.push(...mine);
      const source = await openModel(m.dir);
      const ctx = Math.min(maxContext, source.config.maxPositions);
      const args = (b: number) => ['--model', m.dir, '--max-batch', String(b), '--max-context', String(ctx)];
      const arms: { arms: Arm[]; procs: () => Proc[] }[] = [
        { arms: ['one', 'one-2x'], procs: () => [new Proc(args(2 * batch), env)] },
        { arms: ['ts-2'], procs: () => [new Proc(args(batch), env), new Proc(args(batch), env)] },
        ...(mpsEnv ? [{ arms: ['mps-2' as Arm], procs: () => [new Proc(args(batch), { ...env, ...mpsEnv }), new Proc(args(batch), { ...env, ...mpsEnv })] }] : []),
      ];
      for (const a of arms) {
        if (elapsed() > budgetS) {
          cut.push(`${m.name}: ${a.arms.join(', ')}`);
          continue;
        }
        const procs = a.procs();
        try {
          const ready = await Promise.all(procs.map((p) => p.next()));
          log(`${m.name} ${a.arms.join('+')}: ${procs.length} engine(s) ready in ${(ready[0].loadMs as number / 1000).toFixed(1)} s on ${ready[0].device as string}`);
          // Warm-up: one short request per process (CUDA graphs, cuBLAS handles), not measured.
          await runCell(procs, { model: m.name, prompt: 16, mix: 'decode', output: 4 }, procs.length, 1, 1);
          for (const row of mine) {
            if (elapsed() > budgetS) {
              cut.push(`${row.model}/${row.prompt}/${row.mix}: ${a.arms.join(', ')}`);
              continue;
            }
            for (const arm of a.arms) {
              row.arms[arm] = await runCell(procs, row, requests, arm === 'one-2x' ? 2 * batch : batch, row.prompt);
            }
          }
        } catch (e) {
          log(`ERROR ${m.name} ${a.arms.join('+')}: ${(e as Error).message}`);
        } finally {
          await Promise.all(procs.map((p) => p.quit()));
          writeReport();
        }
      }
    }
  } finally {
    await mps?.release('bench').catch((e: unknown) => log(`ERROR ${(e as Error).message}`));
  }

  const md = writeReport();
  process.stdout.write(`${md}\n\n(${join(out, 'mps.json')}, ${join(out, 'mps.md')})\n`);
  return rows.some((r) => Object.keys(r.arms).length > 0) ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(await run(process.argv.slice(2)));
