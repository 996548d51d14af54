// `swapserve bench engine`: CPU engine prefill and decode speed, end to end through Engine.generate (the JS
// batching loop included), against the memory floor measured in the same run.
//
// Models: the real stories260K (1 MB f32: compute- and overhead-bound, it fits in cache) and a synthetic
// Llama-shaped model (~90M parameters, bf16, 180 MB: decode is bound by reading the weights once per step, so
// its floor is weight bytes / this machine's copy bandwidth). Decode at batch B reads the weights once per step
// for all B sequences: aggregate tokens/s should grow with B while ms/step stays near the floor.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { engineOps } from '../../native/ts/testing.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { openModel, writeTinyModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';

const STORIES = process.env.SWAPSERVE_STORIES260K ?? new URL('../../../shared/data/models/stories260K/stories260K.gguf', import.meta.url).pathname;

interface Row { model: string; case: string; tokens: number; ms: number; tokPerS: number; floorMs: number | null }

type Done = Extract<GenerateEvent, { type: 'done' }>;

async function run1(engine: Engine, prompt: number[], maxTokens: number): Promise<Done> {
  let done: Done | null = null;
  for await (const e of engine.generate({ prompt, maxTokens, temperature: 0, topP: 1, topK: 0 })) if (e.type === 'done') done = e;
  if (!done) throw new Error('no done event');
  return done;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Memory read bandwidth, bytes/ms: the best of 5 parallel reads (all cores, the CPU backend's thread count) of
 * a buffer far larger than the caches. A decode step must read every weight once: floor = weight bytes / this.
 */
function readBandwidth(): { bytesPerMs: number; threads: number } {
  const buf = new Uint8Array(512 << 20).fill(1);
  return engineOps('cpu').readBandwidth(buf, 5);
}

async function benchModel(name: string, source: ModelSource, tokenizer: Tokenizer, prefills: number[], batches: number[], decodeTokens: number, floorPerStepMs: number | null, reps: number): Promise<Row[]> {
  const rows: Row[] = [];
  const arena = await readArena(source);
  const maxContext = Math.max(...prefills) + decodeTokens + 8;
  const engine = await Engine.createOnHostArena(arena, source, tokenizer, { maxContext, maxBatch: Math.max(...batches), prefillChunk: 4096, scratchBudgetBytes: 4 * 2 ** 30 });
  try {
    const V = source.config.vocabSize;
    const promptOf = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (i === 0 ? (tokenizer.bosId ?? 0) : (i * 7 + salt * 13) % V));
    await run1(engine, promptOf(8, 0), 4); // warm-up
    for (const p of prefills) {
      const times: number[] = [];
      for (let r = 0; r < reps; r++) times.push((await run1(engine, promptOf(p, r), 1)).prefillMs); // one at a time
      const ms = median(times);
      rows.push({ model: name, case: `prefill ${p}`, tokens: p, ms, tokPerS: (p * 1000) / ms, floorMs: null });
    }
    for (const B of batches) {
      const walls: number[] = [];
      for (let r = 0; r < reps; r++) {
        const dones = await Promise.all([...Array(B)].map((_, i) => run1(engine, promptOf(16, i + r), decodeTokens + 1)));
        walls.push(Math.max(...dones.map((d) => d.decodeMs)));
      }
      const wall = median(walls);
      const steps = decodeTokens;
      rows.push({ model: name, case: `decode batch ${B}`, tokens: B * steps, ms: wall / steps, tokPerS: (B * steps * 1000) / wall, floorMs: floorPerStepMs });
    }
  } finally {
    await engine.close();
  }
  return rows;
}

/**
 * Execute while loading (CPU runtime): time to first token when the request arrives with the model on the host
 * tier, (a) swapping in and then prefilling, (b) prefilling while the swap-in lands (each layer waits only
 * for its own bytes). The floor of (b) is max(swap-in, prefill) against (a)'s sum.
 */
async function overlapBench(name: string, source: ModelSource, tokenizer: Tokenizer, prompts: number[], reps: number): Promise<Row[]> {
  const MiB = 1 << 20;
  const arena = Math.ceil(source.layout.totalBytes / MiB + 1) * MiB;
  const rt = Runtime.open({ backend: 'cpu', hostBudgetBytes: arena, gpuBudgetBytes: arena, scratchBudgetBytes: 256 * MiB });
  const rows: Row[] = [];
  try {
    rt.register('m', source.layout);
    await rt.load('m');
    const V = source.config.vocabSize;
    const ttft = async (n: number, overlap: boolean): Promise<{ ttft: number; swap: number }> => {
      const prompt = Array.from({ length: n }, (_, i) => (i === 0 ? (tokenizer.bosId ?? 0) : (i * 7) % V));
      const t0 = performance.now();
      const swap = rt.swapIn('m').then(() => performance.now() - t0);
      if (!overlap) await swap;
      const engine = await Engine.create(rt, 'm', source, tokenizer, { maxContext: n + 8 });
      try {
        await run1(engine, prompt, 1);
        return { ttft: performance.now() - t0, swap: await swap };
      } finally {
        await engine.close();
        await rt.evict('m');
      }
    };
    await ttft(8, false); // warm-up
    for (const n of prompts) {
      const seq: number[] = [], ovl: number[] = [], swaps: number[] = [];
      for (let r = 0; r < reps; r++) {
        const a = await ttft(n, false);
        seq.push(a.ttft);
        swaps.push(a.swap);
        ovl.push((await ttft(n, true)).ttft);
      }
      rows.push({ model: name, case: `TTFT swapIn then prefill ${n}`, tokens: n, ms: median(seq), tokPerS: 0, floorMs: null });
      rows.push({ model: name, case: `TTFT prefill ${n} while swapping in`, tokens: n, ms: median(ovl), tokPerS: 0, floorMs: null });
      rows.push({ model: name, case: 'swapIn alone (host -> compute arena)', tokens: 0, ms: median(swaps), tokPerS: 0, floorMs: null });
    }
  } finally {
    await rt.close();
  }
  return rows;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false } } });
  const { bytesPerMs: bw, threads } = readBandwidth();
  const rows: Row[] = [];
  const stories = await openModel(STORIES);
  rows.push(...await benchModel('stories260K f32', stories, await loadTokenizer(stories), [16, 128, 480], [1, 4, 8], 64, null, values.quick ? 1 : 5));
  const dir = await mkdtemp(join(tmpdir(), 'swapserve-bench-engine-'));
  try {
    // Llama-shaped synthetic models: ~90M parameters (186 MB bf16) and, unless --quick, ~540M (1.1 GB bf16,
    // larger than any L3, so decode is bound by DRAM).
    const shapes = [
      { name: 'llama-90M bf16', config: { hiddenSize: 1024, intermediateSize: 2816, numLayers: 8, numHeads: 16, numKvHeads: 4, headDim: 64 } },
      ...(values.quick ? [] : [{ name: 'llama-540M bf16', config: { hiddenSize: 2048, intermediateSize: 5632, numLayers: 12, numHeads: 16, numKvHeads: 4, headDim: 128 } }]),
    ];
    for (const shape of shapes) {
      const path = await writeTinyModel(join(dir, `${shape.config.hiddenSize}.gguf`), { family: 'llama', format: 'gguf', dtype: 'bf16', seed: 3, config: shape.config });
      const src = await openModel(path);
      const floor = src.layout.totalBytes / bw; // read every weight once per decode step
      const label = `${shape.name} (${(src.layout.totalBytes / 1e6).toFixed(0)} MB)`;
      const tok = await loadTokenizer(src);
      rows.push(...await benchModel(label, src, tok, [16, 128], [1, 4, 8], values.quick ? 8 : 24, floor, values.quick ? 1 : 3));
      rows.push(...await overlapBench(label, src, tok, [16, 128], values.quick ? 1 : 3));
      await rm(path, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const meta = { device: `${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, ${threads} engine threads`, date: new Date().toISOString(), readGBps: bw / 1e6, command: `swapserve bench engine ${argv.join(' ')}`.trim() };
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...meta, rows }, null, 2) + '\n');
    return 0;
  }
  const out = [
    `engine bench (CPU backend) — ${meta.device}, ${meta.date}`,
    `memory read bandwidth ${meta.readGBps.toFixed(1)} GB/s (best parallel read of 512 MiB on the engine's threads; decode floor = weight bytes / this, per step)`,
    '',
    '| model | case | tokens | ms (per step for decode) | tokens/s | floor ms/step | step / floor |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.model} | ${r.case} | ${r.tokens} | ${r.ms.toFixed(2)} | ${r.tokPerS ? r.tokPerS.toFixed(0) : "-"} | ${r.floorMs === null ? '-' : r.floorMs.toFixed(2)} | ${r.floorMs === null ? '-' : (r.ms / r.floorMs).toFixed(2) + 'x'} |`),
  ];
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
