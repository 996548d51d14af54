// `swapserve bench swap --model DIR --resident 0,25,50,75`: the partial-residency curve (issue 15 item 3). For each
// resident fraction f the model is evicted keeping its first groups up to f of its bytes on the GPU, then swapped
// back in with an engine created and a `--prompt-tokens` (128) prompt started at once (execute-while-loading, as the
// worker does): swap TTFT is from the swapIn call to the first token. Beside it, in the same run: the swap's own
// time, the plain pinned cudaMemcpyAsync of the bytes moved (the copy floor), and a warm TTFT (engine alive, model
// resident). The first token of every swap is checked against the full swap's, and the GPU bytes by checksum.
import { performance } from 'node:perf_hooks';
import { dirname } from 'node:path';

import { Engine, type GenerateRequest } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { resolveBackend } from '../../native/ts/addon.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { ensureTokenizer } from '../headline/models.ts';

export interface PartialArgs {
  model: string;
  fractions: number[];
  reps: number;
  promptTokens: number;
  backend: 'auto' | 'cpu' | 'cuda';
}

export interface PartialRow {
  /** Asked for, 0..1 */
  fraction: number;
  groups: number;
  /** Resident bytes / model bytes (group boundaries round f down). */
  residentFraction: number;
  bytesMoved: number;
  swapMs: number;
  floorMs: number;
  ttftMs: number;
  ttftAllMs: number[];
  /** From the call to group 1 (embeddings + layer 0) being ready. */
  firstLayerMs: number;
  sameToken: boolean;
  checksumOk: boolean;
}

const log = (msg: string) => process.stderr.write(`[bench swap --resident] ${msg}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** The most leading groups whose bytes are at most `fraction` of the model. */
export function groupsFor(groupEnds: number[], fraction: number): number {
  const total = groupEnds[groupEnds.length - 1];
  let k = 0;
  while (k < groupEnds.length && groupEnds[k] <= fraction * total + 1e-9) k++;
  return k;
}

export async function runPartial(a: PartialArgs): Promise<{ rows: PartialRow[]; results: Record<string, unknown>; table: string; ok: boolean }> {
  ensureTokenizer(a.model); // random-weight models carry none (the prompt is ids; the engine wants one to decode)
  const source = await openModel(a.model);
  const tok = await loadTokenizer(source);
  const layout = source.layout;
  const total = layout.totalBytes;
  const ends = layout.groups.map((g) => g.end);
  const GiB = 1024 ** 3;
  const rt = Runtime.open({ backend: a.backend, hostBudgetBytes: total + (1 << 20), gpuBudgetBytes: total + (1 << 20), scratchBudgetBytes: resolveBackend(a.backend) === 'cpu' ? GiB / 4 : 4 * GiB });
  const id = 'm';
  const rows: PartialRow[] = [];
  try {
    await rt.hostReady;
    rt.register(id, layout);
    log(`${(total / 1e9).toFixed(2)} GB in ${layout.groups.length} groups (${dirname(a.model)}); device ${rt.deviceName}`);
    const load = await rt.load(id);
    log(`load: ${load.wallMs.toFixed(0)} ms`);
    const expected = await rt.checksum(id, 'host');
    // Ids spread over the vocabulary (deterministic); BOS first.
    const vocab = source.config.vocabSize;
    const prompt = [source.config.bosTokenId ?? 1, ...Array.from({ length: a.promptTokens - 1 }, (_, i) => 1000 + ((i * 7919) % Math.max(1, vocab - 2000)))];
    const req: GenerateRequest = { prompt, maxTokens: 1, temperature: 0, topP: 1, topK: 0, ignoreEos: true };
    const engineOpts = { maxBatch: 1, maxContext: Math.max(256, a.promptTokens + 8), prefillChunk: Math.max(512, a.promptTokens) };
    /** Issues swapIn, creates the engine at once and runs the prompt; ms to the first token. */
    const swapAndFirstToken = async () => {
      const t0 = performance.now();
      let firstLayerMs = NaN;
      const swapping = rt.swapIn(id, { onGroup: (g) => { if (g === 1 && Number.isNaN(firstLayerMs)) firstLayerMs = performance.now() - t0; } });
      const engine = await Engine.create(rt, id, source, tok, engineOpts);
      let token = -1;
      let ttftMs = NaN;
      try {
        for await (const ev of engine.generate(req)) {
          if (ev.type === 'token' && token < 0) {
            ttftMs = performance.now() - t0;
            token = ev.id;
          }
        }
      } finally {
        await engine.close();
      }
      const s = await swapping;
      return { ttftMs, token, swap: s, firstLayerMs };
    };

    // Warm-up (kernels, heuristics) and the reference token: a full swap.
    await rt.swapIn(id);
    {
      const e = await Engine.create(rt, id, source, tok, engineOpts);
      try {
        for await (const ev of e.generate(req)) void ev;
      } finally {
        await e.close();
      }
    }
    await rt.evict(id);
    const ref = await swapAndFirstToken();
    log(`reference full swap: TTFT ${ref.ttftMs.toFixed(1)} ms, first token ${ref.token}`);

    // Warm TTFT: engine alive, model resident (what no swap costs).
    const warm: number[] = [];
    {
      const e = await Engine.create(rt, id, source, tok, engineOpts);
      try {
        for (let i = 0; i < a.reps + 1; i++) {
          const t0 = performance.now();
          let at = NaN;
          for await (const ev of e.generate(req)) if (ev.type === 'token' && Number.isNaN(at)) at = performance.now() - t0;
          if (i > 0) warm.push(at);
        }
      } finally {
        await e.close();
      }
    }
    const warmMs = median(warm);
    log(`warm TTFT (engine alive, model resident): ${warmMs.toFixed(1)} ms`);

    const plan = a.fractions.map((f) => ({ f, k: groupsFor(ends, f) }));
    const got = new Map<number, { ttft: number[]; swap: number[]; first: number[]; bytes: number; same: boolean; sum: boolean }>();
    for (const p of plan) got.set(p.f, { ttft: [], swap: [], first: [], bytes: 0, same: true, sum: true });
    // Repetitions outside, fractions inside: drift over the run touches every fraction alike.
    for (let r = 0; r < a.reps; r++) {
      for (const p of plan) {
        await rt.evict(id, { keepGroups: p.k });
        const x = await swapAndFirstToken();
        const g = got.get(p.f)!;
        g.ttft.push(x.ttftMs);
        g.swap.push(x.swap.wallMs);
        g.first.push(x.firstLayerMs);
        g.bytes = x.swap.bytes;
        g.same &&= x.token === ref.token;
        if (r === 0) g.sum = (await rt.checksum(id, 'gpu')) === expected;
        log(`rep ${r + 1}/${a.reps}, resident ${(p.f * 100).toFixed(0)}% (${p.k} groups): TTFT ${x.ttftMs.toFixed(1)} ms, swap ${x.swap.wallMs.toFixed(1)} ms, ${(x.swap.bytes / 1e9).toFixed(2)} GB moved`);
      }
    }
    for (const p of plan) {
      const g = got.get(p.f)!;
      const floor = g.bytes > 0 ? median(await rt.native.benchFloor(id, Math.max(3, a.reps), g.bytes)) : 0;
      rows.push({
        fraction: p.f, groups: p.k, residentFraction: p.k ? ends[p.k - 1] / total : 0, bytesMoved: g.bytes, swapMs: median(g.swap), floorMs: floor,
        ttftMs: median(g.ttft), ttftAllMs: g.ttft, firstLayerMs: median(g.first), sameToken: g.same, checksumOk: g.sum,
      });
    }
    // The bytes are the hard check; the first token is reported (a GPU kernel that is not bit-deterministic could
    // flip a near-tie of random weights' logits without any byte differing).
    const ok = rows.every((r) => r.checksumOk);
    const fmt = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
    const lines = [
      `partial residency: ${rt.deviceName} (${rt.backend}); ${(total / 1e9).toFixed(2)} GB in ${layout.groups.length} groups; prompt ${a.promptTokens} tokens; median of ${a.reps}; ${new Date().toISOString()}`,
      '',
      '| resident (asked) | groups kept | resident bytes | moved | swapIn | pinned-copy floor of the bytes moved | swapIn / floor | swap TTFT | layer 0 ready | first token = full swap | GPU bytes checked |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...rows.map((r) => `| ${(r.fraction * 100).toFixed(0)}% | ${r.groups} | ${(r.residentFraction * 100).toFixed(1)}% | ${(r.bytesMoved / 1e9).toFixed(2)} GB | ${fmt(r.swapMs)} | ${fmt(r.floorMs)} | ${r.floorMs > 0 ? (r.swapMs / r.floorMs).toFixed(2) + 'x' : '-'} | **${fmt(r.ttftMs)}** | ${r.firstLayerMs.toFixed(1)} ms | ${r.sameToken ? 'yes' : 'NO'} | ${r.checksumOk ? 'yes' : 'NO'} |`),
      '',
      `warm TTFT (engine alive, model resident, no swap): ${fmt(warmMs)}; reference full swap (after warm-up): TTFT ${fmt(ref.ttftMs)}`,
    ];
    const results = { device: rt.deviceName, backend: rt.backend, date: new Date().toISOString(), bytes: total, groups: layout.groups.length, promptTokens: a.promptTokens, reps: a.reps, warmTtftMs: warmMs, warmAllMs: warm, referenceTtftMs: ref.ttftMs, rows };
    return { rows, results, table: lines.join('\n') + '\n', ok };
  } finally {
    await rt.close();
  }
}
