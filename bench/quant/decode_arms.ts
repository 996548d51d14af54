// Batch-1 decode step time of one quantized model under several engine tunings, in one run (issue 17's decode bar):
// each arm is an engine over the same resident weights, greedy with EOS ignored, `--steps` tokens after a 16-token
// prompt, `--runs` runs (median step). Beside the floor: the bytes a step reads (every matrix but the embedding table,
// of which one row) over the device read bandwidth (`--bw-gbps`, from bench/quant/bandwidth.py in the same call).
// Each arm's greedy ids are compared with the first arm's (where they part, if they do). On random weights a different
// rounding can flip a near-tie (the fold quantizes X to int8 where the default multiplies bf16 X for Q8_0 and 15-bit
// X for Q6_K), so a late divergence is no verdict: correctness is test/quant/cuda.test.ts's (CUDA against the CPU).
// Arms: default, graphs (cudaGraphs), fold (quantFold), fold+graphs, or any JSON tuning as name=JSON.
//   node --import tsx bench/quant/decode_arms.ts --model F.gguf [--arms default,graphs,fold,fold+graphs]
//     [--steps 64] [--runs 3] [--bw-gbps N] [--md FILE.md] [--backend cuda|cpu (a dry run of the plumbing: the CPU ignores tunings)]
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { engineTuningSchema, type EngineTuning } from '../../native/ts/tuning.ts';

const MiB = 1 << 20;
const log = (s: string) => process.stderr.write(`[decode arms] ${s}\n`);

const NAMED: Record<string, object> = {
  default: {}, graphs: { cudaGraphs: true }, fold: { quantFold: true }, 'fold+graphs': { quantFold: true, cudaGraphs: true },
};

/** `name` or `name=JSON` into a named, validated tuning (a clear error naming the arm otherwise). */
export function parseArm(spec: string): { name: string; tuning: EngineTuning } {
  const eq = spec.indexOf('=');
  const name = eq < 0 ? spec : spec.slice(0, eq);
  let raw: unknown;
  if (eq < 0) {
    if (!(name in NAMED)) throw new Error(`unknown arm "${name}": use ${Object.keys(NAMED).join(', ')} or name=JSON`);
    raw = NAMED[name];
  } else {
    try { raw = JSON.parse(spec.slice(eq + 1)); } catch (e) { throw new Error(`arm "${name}": its tuning is not JSON (${(e as Error).message})`); }
  }
  const t = engineTuningSchema.safeParse(raw);
  if (!t.success) throw new Error(`arm "${name}": ${t.error.issues.map((i) => `${i.path.join('.') || 'tuning'}: ${i.message}`).join('; ')}`);
  return { name, tuning: t.data };
}

/** The --arms list split at the commas outside braces (a name=JSON arm has commas of its own). */
export function splitArms(list: string): string[] {
  const out: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i <= list.length; i++) {
    const c = list[i];
    if (c === '{') depth++;
    else if (c === '}') depth--;
    else if ((c === ',' && depth === 0) || i === list.length) {
      if (i > start) out.push(list.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];

async function main(argv: string[]): Promise<void> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, arms: { type: 'string', default: 'default,graphs,fold,fold+graphs' },
      steps: { type: 'string', default: '64' }, runs: { type: 'string', default: '3' }, 'bw-gbps': { type: 'string' }, md: { type: 'string' },
      backend: { type: 'string', default: 'cuda' },
    },
  });
  if (!o.model) throw new Error('give --model FILE.gguf');
  const int = (k: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected an integer >= 1 for --${k} but received "${v}"`);
    return n;
  };
  const steps = int('steps', o.steps!), runs = int('runs', o.runs!);
  const backend = o.backend as 'cuda' | 'cpu';
  if (backend !== 'cuda' && backend !== 'cpu') throw new Error(`Expected cuda or cpu for --backend but received "${o.backend}"`);
  const bw = o['bw-gbps'] === undefined ? NaN : Number(o['bw-gbps']);
  const arms = splitArms(o.arms!).map(parseArm);
  const source = await openModel(o.model);
  const tokenizer = await loadTokenizer(source);
  const emb = source.layout.tensors.find((t) => t.name === 'tok_embeddings')!;
  const readBytes = source.layout.totalBytes - emb.bytes + emb.bytes / emb.shape[0];
  const floorMs = Number.isFinite(bw) ? readBytes / (bw * 1e6) : NaN;
  const rt = Runtime.open({ backend, hostBudgetBytes: 0, gpuBudgetBytes: source.layout.totalBytes + 64 * MiB, scratchBudgetBytes: (backend === 'cuda' ? 4096 : 512) * MiB });
  const rows: string[] = [];
  try {
    rt.register('m', source.layout);
    await rt.loadToGpu('m');
    const prompt = tokenizer.encode('the cat sat on the mat and then it ran away from home', { addBos: true }).slice(0, 16);
    let firstIds: number[] | undefined;
    for (const arm of arms) {
      const e = await Engine.create(rt, 'm', source, tokenizer, { maxContext: 512, maxBatch: 1, tuning: arm.tuning });
      try {
        const stepMs: number[] = [];
        let ids: number[] = [];
        for (let r = 0; r < runs + 1; r++) {  // run 0 warms up (kernels, the graph capture of the first decode steps)
          const got: number[] = [];
          for await (const ev of e.generate({ prompt, maxTokens: steps + 1, temperature: 0, topP: 1, topK: 0, ignoreEos: true }) as AsyncIterable<GenerateEvent>) {
            if (ev.type === 'token') got.push(ev.id);
            if (ev.type === 'done' && r > 0) stepMs.push(ev.decodeMs / Math.max(1, ev.completionTokens - 1));
          }
          ids = got;
        }
        firstIds ??= ids;
        const diverge = ids.findIndex((id, k) => id !== firstIds![k]);
        const same = diverge < 0 ? 'same' : `differ from token ${diverge}`;
        const ms = median(stepMs);
        const pct = Number.isFinite(floorMs) ? `${((floorMs / ms) * 100).toFixed(1)} %` : '–';
        rows.push(`| ${arm.name} | ${ms.toFixed(3)} ms | ${(1000 / ms).toFixed(0)} | ${pct} | ${same} |`);
        log(`${arm.name}: ${ms.toFixed(3)} ms a step [${stepMs.map((s) => s.toFixed(3)).join(', ')}], ${pct} of the floor, ids ${same}`);
      } finally {
        await e.close();
      }
    }
  } finally {
    await rt.close();
  }
  const md = [
    `${basename(o.model)}: a step reads ${(readBytes / 1e9).toFixed(3)} GB; floor ${Number.isFinite(floorMs) ? `${floorMs.toFixed(3)} ms at ${bw.toFixed(0)} GB/s` : 'not given'}; ` +
      `batch 1, ${steps} greedy steps after a 16-token prompt, median of ${runs} runs after a warm-up run; ${new Date().toISOString()}`,
    '',
    `| arm | step | tokens/s | of the floor | greedy ids vs ${arms[0].name} |`,
    '| --- | ---: | ---: | ---: | --- |',
    ...rows,
  ].join('\n');
  console.log(md);
  if (o.md) writeFileSync(o.md, `${md}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((e) => { process.stderr.write(`[decode arms] ${(e as Error).message}\n`); process.exitCode = 1; });
}
