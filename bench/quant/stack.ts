// Quantized models through the weights runtime and the engine, as a worker serves them (services/worker/
// native-backend.ts: evict closes the engine first; swap_in starts the copy and the engine is made while the
// weights land, its first prefill waiting per layer): for each model file (GGUF Q8_0 / Q4_K_M, or any model path)
//   load      disk -> pinned host (page cache state printed)
//   floor     a plain cudaMemcpyAsync of the same pinned bytes (runtime.benchFloor), in the same run
//   swap TTFT another model resident: evict it, swapIn this one, make the engine, first token of a P-token prompt
//             (default 128), greedy; median of --reps; beside floor + warm TTFT (copy, then prefill, serially)
//   warm TTFT the same request with the model resident and its engine made
//   decode    batch-1 step time (greedy, ignoreEos, --decode tokens) beside the bandwidth floor: the bytes of the
//             weights a step reads (every matrix but the embedding table, of which one row is read) over the device
//             memory bandwidth measured in the same call (--bw-gbps, from bench/quant/bandwidth.py)
// Not through the gateway and the queue: their cost is measured by `swapserve bench headline`.
//   node --import tsx bench/quant/stack.ts --models A.gguf,B.gguf [--prompt 128] [--reps 5] [--decode 64]
//     [--bw-gbps N] [--backend cuda|cpu] [--out FILE.json] [--md FILE.md]
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine, type GenerateEvent } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';

const MiB = 1 << 20;
const log = (s: string) => process.stderr.write(`[quant stack] ${s}\n`);
const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1] : NaN);
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '–');

interface Model { id: string; path: string; source: ModelSource; tokenizer: Tokenizer; prompt: number[]; readBytes: number; types: string }

/** A prompt of exactly `n` ids: BOS + an English text's ids, repeated as needed. */
function promptOf(tok: Tokenizer, n: number): number[] {
  const text = 'the cat sat on the mat and then it ran away from home to see the big red ball in the park with a little girl named lily ';
  const ids = tok.encode(text.repeat(Math.ceil(n / 8)), { addBos: true });
  if (ids.length < n) throw new Error(`the prompt text encodes to ${ids.length} < ${n} tokens`);
  return ids.slice(0, n);
}

/** Time to the first token event of a greedy one-token request (ms from `t0`). */
async function firstToken(engine: Engine, prompt: number[], t0: number): Promise<{ ttft: number; id: number }> {
  let ttft = NaN, id = -1;
  for await (const e of engine.generate({ prompt, maxTokens: 1, temperature: 0, topP: 1, topK: 0 }) as AsyncIterable<GenerateEvent>) {
    if (e.type === 'token' && Number.isNaN(ttft)) { ttft = performance.now() - t0; id = e.id; }
  }
  if (Number.isNaN(ttft)) throw new Error('no token came out');
  return { ttft, id };
}

export async function run(argv: string[]): Promise<number> {
  const { values: o } = parseArgs({
    args: argv,
    options: {
      models: { type: 'string' }, prompt: { type: 'string', default: '128' }, reps: { type: 'string', default: '5' },
      decode: { type: 'string', default: '64' }, 'bw-gbps': { type: 'string' }, backend: { type: 'string', default: 'cuda' },
      out: { type: 'string' }, md: { type: 'string' }, 'max-context': { type: 'string', default: '4096' },
    },
  });
  const int = (k: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected an integer >= 1 for --${k} but received "${v}"`);
    return n;
  };
  const paths = (o.models ?? '').split(',').filter(Boolean);
  if (paths.length < 2) throw new Error('give --models A,B (two or more model paths: each swap makes another one resident first)');
  const P = int('prompt', o.prompt), reps = int('reps', o.reps), decodeN = int('decode', o.decode), maxContext = int('max-context', o['max-context']);
  const bw = o['bw-gbps'] === undefined ? NaN : Number(o['bw-gbps']);
  const backend = o.backend as 'cuda' | 'cpu';
  if (backend !== 'cuda' && backend !== 'cpu') throw new Error(`Expected cuda or cpu for --backend but received "${o.backend}"`);

  const models: Model[] = [];
  for (const path of paths) {
    const source = await openModel(path);
    const tokenizer = await loadTokenizer(source);
    const emb = source.layout.tensors.find((t) => t.name === 'tok_embeddings')!;
    const rowBytes = emb.bytes / emb.shape[0];
    const types = [...new Set(source.layout.tensors.filter((t) => t.shape.length === 2).map((t) => t.dtype))].join('+');
    models.push({ id: basename(path), path, source, tokenizer, prompt: promptOf(tokenizer, P), readBytes: source.layout.totalBytes - emb.bytes + rowBytes, types });
    log(`${basename(path)}: ${(source.layout.totalBytes / 1e9).toFixed(3)} GB arena (${types}), ${source.config.numLayers} layers, vocab ${source.config.vocabSize}; a decode step reads ${(models.at(-1)!.readBytes / 1e9).toFixed(3)} GB`);
  }
  const arenas = models.map((m) => m.source.layout.totalBytes);
  const largest = Math.max(...arenas);
  const rt = Runtime.open({
    backend, hostBudgetBytes: arenas.reduce((a, b) => a + b, 0) + 64 * MiB,
    // One model at a time: a swap must evict the resident one first, as on a full GPU.
    gpuBudgetBytes: largest + 64 * MiB, scratchBudgetBytes: (backend === 'cuda' ? 6144 : 512) * MiB,
  });
  const results: Record<string, unknown>[] = [];
  const engines = new Map<string, Engine>();
  const closeEngine = async (id: string) => { await engines.get(id)?.close(); engines.delete(id); };
  const engineOf = async (m: Model) => {
    let e = engines.get(m.id);
    if (!e) { e = await Engine.create(rt, m.id, m.source, m.tokenizer, { maxContext, maxBatch: 8 }); engines.set(m.id, e); }
    return e;
  };
  const evict = async (m: Model) => { await closeEngine(m.id); if (rt.residency(m.id).state === 'gpu') await rt.evict(m.id); };
  try {
    await rt.hostReady;
    for (const m of models) rt.register(m.id, m.source.layout);
    for (const m of models) {
      const files = [...new Set(m.source.layout.segments.map((s) => s.file))];
      const cached = Math.min(...files.map((f) => rt.addon.cachedFraction(f)));
      const r = await rt.load(m.id);
      log(`${m.id}: load disk -> pinned host ${ms(r.wallMs)} (${(r.bytes / (r.wallMs * 1e6)).toFixed(1)} GB/s; page cache ${(cached * 100).toFixed(0)}% before)`);
      results.push({ model: m.id, loadMs: r.wallMs, loadBytes: r.bytes, cachedBefore: cached });
    }
    const row = (m: Model) => results.find((x) => x.model === m.id)!;
    for (const [i, m] of models.entries()) {
      const other = models[(i + 1) % models.length];
      const floor = median(await rt.native.benchFloor(m.id, reps));
      // Warm TTFT (engine made, model resident), also the first-token id the swaps must reproduce. The GPU tier holds
      // one model: the one the previous iteration left resident goes first (else this swap-in exceeds the budget).
      for (const o of models) if (o !== m) await evict(o);
      await rt.swapIn(m.id);
      const e = await engineOf(m);
      await firstToken(e, m.prompt, performance.now()); // warm-up (kernels, allocations)
      const warm: number[] = [];
      let warmId = -1;
      for (let r = 0; r < reps; r++) { const f = await firstToken(e, m.prompt, performance.now()); warm.push(f.ttft); warmId = f.id; }
      // Batch-1 decode: greedy, EOS ignored, decodeN tokens after the prompt; median step time of 3 runs.
      const steps: number[] = [];
      for (let r = 0; r < 3; r++) {
        for await (const ev of e.generate({ prompt: m.prompt.slice(0, 16), maxTokens: decodeN + 1, temperature: 0, topP: 1, topK: 0, ignoreEos: true }) as AsyncIterable<GenerateEvent>) {
          if (ev.type === 'done') steps.push(ev.decodeMs / Math.max(1, ev.completionTokens - 1));
        }
      }
      // Swap TTFT: the other model resident, this one in the host tier only.
      const swap: number[] = [], swapCopy: number[] = [], create: number[] = [];
      let swapIds = true;
      for (let r = 0; r < reps; r++) {
        await evict(m);
        if (rt.residency(other.id).state !== 'gpu') await rt.swapIn(other.id);
        const t0 = performance.now();
        await evict(other);
        const moving = rt.swapIn(m.id);
        const eng = await engineOf(m);
        create.push(performance.now() - t0);
        const f = await firstToken(eng, m.prompt, t0);
        const mv = await moving;
        swap.push(f.ttft);
        swapCopy.push(mv.wallMs);
        swapIds &&= f.id === warmId;
      }
      const x = row(m);
      Object.assign(x, {
        types: m.types, arenaBytes: m.source.layout.totalBytes, promptTokens: m.prompt.length, floorMs: floor,
        warmTtftMs: median(warm), swapTtftMs: median(swap), swapTtftAllMs: swap, swapCopyMs: median(swapCopy), swapEngineReadyMs: median(create), sameFirstToken: swapIds,
        decodeStepMs: median(steps), decodeStepAllMs: steps, decodeReadBytes: m.readBytes,
        decodeFloorMs: Number.isFinite(bw) ? m.readBytes / (bw * 1e6) : null,
      });
      log(`${m.id}: floor ${ms(floor)} (${(m.source.layout.totalBytes / (floor * 1e6)).toFixed(1)} GB/s); swap TTFT ${ms(median(swap))} [${swap.map((s) => s.toFixed(1)).join(', ')}] (copy ${ms(median(swapCopy))}, evict + engine made at ${ms(median(create))}); warm TTFT ${ms(median(warm))}; decode ${median(steps).toFixed(3)} ms/step`);
    }
  } finally {
    for (const id of [...engines.keys()]) await closeEngine(id);
    await rt.close();
  }
  const device = rt.deviceName;
  const lines = [
    `device: ${device} (${backend}); ${new Date().toISOString()}; prompt ${P} tokens, greedy; medians of ${reps} (decode: 3 runs of ${decodeN} steps); device read bandwidth ${Number.isFinite(bw) ? `${bw.toFixed(0)} GB/s (bench/quant/bandwidth.py, same call)` : 'not given'}`,
    'Weights random, drawn in the quantized domain (bench/quant/random_gguf.ts): speeds are those of real files of these types and shapes, the text is not.',
    '',
    '| model | types | arena | load disk->host | pinned copy (floor) | swap TTFT | floor + warm TTFT | warm TTFT | swap TTFT <= 0.12 s | decode step | floor (bytes / bandwidth) | of floor |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
    ...results.map((r) => {
      const n = (k: string) => r[k] as number;
      const q4km = /q4_k_m/i.test(String(r.model));
      const pct = r.decodeFloorMs ? `${((n('decodeFloorMs') / n('decodeStepMs')) * 100).toFixed(1)}%${n('decodeFloorMs') / n('decodeStepMs') >= 0.7 ? '' : ' (bar 70%)'}` : '–';
      return `| ${r.model} | ${r.types} | ${(n('arenaBytes') / 1e9).toFixed(2)} GB | ${ms(n('loadMs'))} | ${ms(n('floorMs'))} | ${ms(n('swapTtftMs'))} | ${ms(n('floorMs') + n('warmTtftMs'))} | ${ms(n('warmTtftMs'))} | ${q4km ? (n('swapTtftMs') <= 120 ? 'yes' : 'NO') : '(Q4_K_M only)'} | ${n('decodeStepMs').toFixed(3)} ms | ${r.decodeFloorMs ? `${n('decodeFloorMs').toFixed(3)} ms` : '–'} | ${pct} |`;
    }),
    '',
    `First token after a swap = the warm first token: ${results.every((r) => r.sameFirstToken) ? 'yes' : 'NO'}.`,
  ];
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  if (o.md) writeFileSync(o.md, `${md}\n`);
  if (o.out) writeFileSync(o.out, JSON.stringify({ device, backend, date: new Date().toISOString(), argv, bandwidthGBps: bw, results }, null, 2));
  return results.every((r) => r.sameFirstToken) ? 0 : 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '\0')) {
  run(process.argv.slice(2)).then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(`${(e as Error).stack ?? e}\n`); process.exitCode = 1; });
}
