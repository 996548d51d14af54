// Simulator vs reality: replays GenTD26 arrivals of its 3 most requested models (token counts from the Azure trace)
// over HTTP against the whole stack (`swapserve up`: Redis, gateway, scheduler, one worker; real sockets, streaming),
// records each response's x-swapserve-path, Server-Timing and TTFT, builds a calibration from what this run measured
// (swap and load rates, an engine pass, a decode step: services/simulator/measured-calibration.ts), replays the same arrivals in the simulator with the real
// decide() and the same budgets, and writes the comparison (per-path TTFT medians within 15%, counts within 10%).
// Before the measured arrivals, a warm-up (--warmup N requests, default 3; 0: none) on a fourth, two-layer model of the
// same widths (`fleet-warmup`) takes the process's first-request costs (the first load and swap-in of the worker, the
// first job through gateway, queue and scheduler); both sides replay it, and the comparison leaves it out.
// usage: node --import tsx bench/fleet/replay.ts --out DIR [--n 200] [--duration-s 150] [--tiny] [--models-dir DIR] [--warmup N]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tinyHfTokenizer, writeTinyModel } from '../../native/ts/model/tiny.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { PREFILL_CHUNK } from '../../services/simulator/cluster.ts';
import { fleetModelSchema } from '../../services/simulator/fleet-spec.ts';
import { buildReplay, TRACE_DEFAULTS, type SimRequest } from '../../services/simulator/trace.ts';
import { PATHS, resimulate, tableLines, type Path, type Real, type Recorded, type ReplayShape } from './resimulate.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const DATA = join(ROOT, '..', 'shared', 'data', 'traces');
const BIN = join(ROOT, 'bin', 'swapserve.js');

const { values: v } = parseArgs({ options: {
  out: { type: 'string' }, n: { type: 'string' }, 'duration-s': { type: 'string' }, tiny: { type: 'boolean' }, 'models-dir': { type: 'string' },
  'max-prompt': { type: 'string' }, 'max-output': { type: 'string' }, arrivals: { type: 'string' }, tokens: { type: 'string' }, resimulate: { type: 'string' },
  warmup: { type: 'string' },
} });
if (!v.out) throw new Error('--out DIR is required');
const N = Number(v.n ?? 200), DURATION_S = Number(v['duration-s'] ?? 150);
const MAX_PROMPT = Number(v['max-prompt'] ?? 1024), MAX_OUTPUT = Number(v['max-output'] ?? 32);
const WARMUP = Number(v.warmup ?? 3);
if (!Number.isInteger(WARMUP) || WARMUP < 0) throw new Error(`Expected a non-negative integer for --warmup but received ${v.warmup}`);
const log = (s: string): void => void process.stderr.write(`[fleet-replay] ${s}\n`);

/** Three llama3-family models of three sizes (random weights): tiny under --tiny, else ~1-3 GB bf16 shapes. */
async function makeModels(root: string): Promise<string[]> {
  const layers = v.tiny ? [2, 3, 4] : [10, 16, 22];
  const dirs: string[] = [];
  // The vocabulary of the tiny tokenizer the models carry, so every id they sample decodes.
  const vocabSize = tinyHfTokenizer('llama3').vocabSize;
  for (const [i, l] of layers.entries()) {
    const dir = join(root, `m${i}`);
    await writeTinyModel(dir, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: i + 1, config: widths(l, vocabSize) });
    dirs.push(dir);
  }
  return dirs;
}

/** The replay models' widths (make_models.py's for the GPU run) at `layers` layers. */
function widths(layers: number, vocabSize: number) {
  return v.tiny
    ? { hiddenSize: 128, intermediateSize: 384, numLayers: layers, numHeads: 4, numKvHeads: 2, headDim: 32, maxPositions: 2048, vocabSize }
    : { hiddenSize: 2048, intermediateSize: 8192, numLayers: layers, numHeads: 32, numKvHeads: 8, headDim: 64, maxPositions: 2048, vocabSize };
}

const WARM_ID = 'fleet-warmup';

interface Streamed {
  status: number; headerPath: string; path: string; timing: Record<string, number>; ttftMs: number; endMs: number;
  promptTokens: number; completionTokens: number; text: string;
}

/** One streamed completion: client TTFT (first token chunk), and the path and timings of the final chunk's `swapserve`. */
function stream(url: string, body: object): Promise<Streamed> {
  const data = JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let first = -1, text = '';
      res.on('data', (c: Buffer) => {
        const s = c.toString();
        if (first < 0 && s.includes('"text"')) first = performance.now() - t0;
        text += s;
      });
      res.on('end', () => {
        const out: Streamed = { status: res.statusCode ?? 0, headerPath: String(res.headers['x-swapserve-path'] ?? ''), path: '', timing: {}, ttftMs: first,
          endMs: performance.now() - t0, promptTokens: 0, completionTokens: 0, text };
        for (const line of text.split('\n')) {
          if (!line.startsWith('data: {') || !line.includes('"swapserve"')) continue;
          const j = JSON.parse(line.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number }; swapserve: { path: string; timings: Record<string, number> } };
          out.path = j.swapserve.path;
          out.timing = j.swapserve.timings;
          out.promptTokens = j.usage?.prompt_tokens ?? 0;
          out.completionTokens = j.usage?.completion_tokens ?? 0;
        }
        resolve(out);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}


async function main(): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'fleet-replay-'));
  const root = v['models-dir'] ?? join(work, 'models');
  if (!v['models-dir']) {
    log(`writing 3 models under ${root}`);
    await makeModels(root);
  }
  const dirs = readdirSync(root).sort().map((d) => join(root, d));
  // Models made by make_models.py carry no tokenizer: they get the tiny llama3 one, whose vocabulary they were made with.
  const tok = tinyHfTokenizer('llama3');
  const warmDir = join(work, 'warmup');
  if (WARMUP > 0) await writeTinyModel(warmDir, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: 99, config: widths(2, tok.vocabSize) });
  for (const dir of WARMUP > 0 ? [...dirs, warmDir] : dirs) {
    if (existsSync(join(dir, 'tokenizer.json'))) continue;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.files.tokenizerJson));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tok.files.tokenizerConfig));
  }
  const shapeOf = async (name: string, dir: string): Promise<ReplayShape> => {
    const m = await openModel(dir);
    const c = m.config;
    const files = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
    const bytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    return { name, params: bytes / 2, weightBytes: m.layout.totalBytes, layers: c.numLayers, kvBytesPerToken: c.numLayers * c.numKvHeads * c.headDim * 2 * 2, dir, arena: m.layout.totalBytes };
  };
  const shapes: ReplayShape[] = [];
  for (const [i, dir] of dirs.entries()) shapes.push(await shapeOf(`fleet-m${i}`, dir));
  const warm = WARMUP > 0 ? await shapeOf(WARM_ID, warmDir) : null;
  const sorted = shapes.map((s) => s.arena).sort((a, b) => b - a);
  // GPU weights tier: the largest fits (beside the warm-up model), no two do (every switch is a real swap). Host tier:
  // all four fit.
  const gpuBytes = Math.min(Math.floor(sorted[0] * 1.01) + (1 << 20) + (warm?.arena ?? 0), sorted[1] + sorted[2] - 1);
  const hostBytes = sorted.reduce((a, b) => a + b, 0) + (warm?.arena ?? 0) + (1 << 30);
  const ids = shapes.map((s) => s.name);
  const SLO = 60_000;
  const cfgFile = join(work, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({
    modelRoots: [root, ...(warm ? [warmDir] : [])], dataDir: work, gateway: { port: 0, requestTimeoutMs: 120_000 }, worker: { concurrency: 4 },
    budgets: { hostBytes, gpuBytes, scratchBytes: v.tiny ? '256MiB' : '4GiB' },
    models: [...shapes, ...(warm ? [warm] : [])].map((s) => ({ id: s.name, path: s.dir, contextLength: 2048, maxTokens: MAX_OUTPUT, sloTtftMs: SLO })),
  }, null, 2));

  // The replay: GenTD26 arrivals of its 3 most requested models ('top' mapping), the first N, compressed to DURATION_S.
  const fleet = { description: 'replay', models: shapes.map((s) => fleetModelSchema.parse({ id: s.name, params: Math.round(s.params), weightBytes: s.arena, layers: s.layers, kvBytesPerToken: s.kvBytesPerToken, contextTokens: 2048, sloTtftMs: SLO, concurrency: 4 })) };
  const full = buildReplay(fleet, { ...TRACE_DEFAULTS, compress: 1, mapping: 'top',
    arrivals: v.arrivals ?? join(DATA, 'alibaba-gentd26', 'lora_request_trace.csv'), tokens: v.tokens ?? join(DATA, 'azure-llm-2023', 'AzureLLMInferenceTrace_conv.csv') });
  const first = full.requests.slice(0, N);
  const span = first[first.length - 1].at - first[0].at;
  const compress = span / (DURATION_S * 1000);
  const reqs: SimRequest[] = first.map((r, id) => ({ id, model: r.model, at: (r.at - first[0].at) / compress, promptTokens: Math.min(r.promptTokens, MAX_PROMPT), outputTokens: Math.min(r.outputTokens, MAX_OUTPUT) }));
  log(`${reqs.length} requests over ${DURATION_S} s (GenTD26 compressed x${compress.toFixed(0)}): ${ids.map((m) => `${m} ${reqs.filter((r) => r.model === m).length}`).join(', ')}`);

  // The stack: `swapserve up` with one worker (the scheduler places, evicts, swaps).
  const up: ChildProcess = spawn(process.execPath, [BIN, 'up', '--config', cfgFile, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(v.tiny ? { SWAPSERVE_BACKEND: 'cpu' } : {}) } });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const on = (d: Buffer): void => {
      out += d.toString();
      process.stderr.write(d);
      const m = /gateway on (http\S+)/.exec(out);
      if (m) resolve(m[1]);
    };
    up.stdout!.on('data', on);
    up.stderr!.on('data', on);
    up.once('exit', (c) => reject(new Error(`swapserve up exited (${c})`)));
  });
  const real: Real[] = [], warmup: Real[] = [];
  const device = process.env.FLEET_DEVICE ?? (v.tiny ? 'CPU backend' : 'unknown');
  const failures: string[] = [];
  try {
    // Wait for the stack to be ready (`up`'s ready line: the scheduler leads and the worker registered, as the simulated
    // ones are at t = 0); each model's first request is then a disk load.
    for (const end = Date.now() + 180_000; !/\[up\] ready:/.test(out); await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() > end) throw new Error('the stack did not get ready within 180 s');
    }
    await new Promise((r) => setTimeout(r, 1000)); // its first report reaches the scheduler
    const words = 'the cat sat on a mat and then it ran away from home'.split(' ');
    /** Sends `r` at t0 + r.at (ms of performance.now()) and records it in `into`, its time as sent relative to `zero`. */
    const send = async (r: SimRequest, t0: number, zero: number, into: Real[]): Promise<void> => {
      const wait = r.at - (performance.now() - t0);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      const prompt = Array.from({ length: r.promptTokens }, (_, i) => words[i % words.length]).join(' ');
      const at = performance.now() - zero;
      const s = await stream(`${url}/v1/completions`, { model: r.model, prompt, max_tokens: r.outputTokens, temperature: 0, stream: true, stream_options: { include_usage: true } })
        .catch((e: Error) => ({ status: 0, path: '', text: e.message, ttftMs: -1 } as Streamed));
      if (s.status !== 200 || s.ttftMs < 0 || !s.path) {
        failures.push(`${r.id} ${r.model}: ${s.status} ${s.text.slice(0, 200)}`);
        return;
      }
      const decodeMs = s.timing.decode_ms ?? 0;
      into.push({ id: r.id, model: r.model, at, path: s.path as Path, headerPath: s.headerPath, ttftMs: s.ttftMs, timing: s.timing,
        stepMs: s.completionTokens > 1 ? decodeMs / (s.completionTokens - 1) : null, promptTokens: s.promptTokens, outputTokens: s.completionTokens });
    };
    // The warm-up: two requests at once (a cold load and swap-in), then the rest one after another (warm); 1 s of quiet.
    const tw = performance.now();
    const wreqs: SimRequest[] = Array.from({ length: WARMUP }, (_, i) => ({ id: 1_000_000 + i, model: WARM_ID, at: 0, promptTokens: 600, outputTokens: 8 }));
    await Promise.all(wreqs.slice(0, 2).map((r) => send(r, tw, tw, warmup)));
    for (const r of wreqs.slice(2)) await send(r, performance.now(), tw, warmup);
    if (WARMUP > 0) {
      await new Promise((r) => setTimeout(r, 1000));
      log(`warm-up: ${warmup.map((r) => `${r.path} ${r.ttftMs.toFixed(1)} ms`).join(', ')}`);
    }
    const t0 = performance.now();
    for (const r of warmup) r.at -= t0 - tw; // as sent, relative to the measured arrivals' zero
    await Promise.all(reqs.map((r) => send(r, t0, t0, real)));
  } finally {
    up.kill('SIGTERM');
    await once(up, 'exit');
  }
  log(`${real.length} answered, ${failures.length} failed${failures.length ? `: ${failures.slice(0, 3).join(' | ')}` : ''}`);
  if (real.length === 0) throw new Error('no request succeeded');
  const run: Recorded = { device, compress, shapes, gpuBytes, hostBytes, ids, real, failures, sent: real.map((r) => reqs[r.id]),
    ...(warm ? { warmup: { shape: warm, real: warmup } } : {}) };
  return compare(run);
}

/** Builds the calibration from the real run, simulates the same arrivals, and writes the comparison. */
function compare(run: Recorded): number {
  const { device, compress, shapes, gpuBytes, ids, real, failures } = run;
  // The record first: if the calibration cannot be measured (a model with no request that ran alone), the real run is
  // kept for --resimulate all the same (replaced below by the full comparison).
  mkdirSync(v.out!, { recursive: true });
  writeFileSync(join(v.out!, 'sim-vs-real.json'), JSON.stringify({ run }, null, 1));
  const { rates, cal, cluster: c, overheadMs, rows, perRequest: each } = resimulate(run, v.tiny ? 'CPU (tiny models)' : 'measured GPU');
  const { swapBytesPerS, diskBytesPerS, prefill, step } = rates;
  const w = run.warmup;
  log(`simulated moves: ${JSON.stringify(c.moves)}`);
  const md = [
    `# Simulator vs reality — ${cal.gpu}`, '',
    `- Date ${new Date().toISOString()}; ${real.length} requests answered (${failures.length} failed) over 3 models; GenTD26 top-3 arrivals compressed ×${compress.toFixed(0)}; prompts ≤ ${MAX_PROMPT} tokens, outputs ≤ ${MAX_OUTPUT} tokens.`,
    `- Command: \`${process.argv.slice(1).join(' ')}\`; device: ${device}.`,
    w ? `- Warm-up (left out of the comparison, replayed on both sides): ${w.real.length} requests to ${w.shape.name} (${w.shape.layers} layers, ${(w.shape.arena / 1e9).toFixed(2)} GB) ending ${(-Math.max(...w.real.map((r) => r.at))).toFixed(0)} ms before the first measured arrival; real TTFT ${w.real.map((r) => `${r.path} ${r.ttftMs.toFixed(1)} ms`).join(', ')}.`
      : '- No warm-up (--warmup 0): the first measured requests pay the process\'s first-request costs.',
    `- Budgets: GPU ${(gpuBytes / 1e9).toFixed(2)} GB (one model${w ? ' beside the warm-up model' : ''}), host ${(run.hostBytes / 1e9).toFixed(2)} GB (all${w ? ' four' : ' three'}); models ${shapes.map((s) => `${s.name} ${(s.arena / 1e9).toFixed(2)} GB`).join(', ')}.`,
    `- Calibration measured in this run: swap ${(swapBytesPerS / 1e9).toFixed(1)} GB/s, load ${(diskBytesPerS / 1e9).toFixed(1)} GB/s, ` +
      `request overhead (warm client TTFT - server TTFT, added to simulated TTFTs) ${overheadMs.toFixed(1)} ms; ` +
      ids.map((m) => `${m}: an engine pass (≤ ${PREFILL_CHUNK} prompt tokens) ${(prefill.get(m)!.passS * 1000).toFixed(2)} ms + ${(prefill.get(m)!.tokenS * 1e6).toFixed(2)} µs/token ` +
        `(fitted on ${prefill.get(m)!.samples} warm prefills that ran alone), decode step ${(step.get(m)!.s * 1000).toFixed(2)} ms (${step.get(m)!.samples} decodes with no prompt fed beside them)`).join('; '),
    `- Per request (both sides on the same path): median |sim - real| TTFT ${PATHS.map((p) => `${p} ${Number.isFinite(each[p].medianAbsMs) ? each[p].medianAbsMs.toFixed(1) : '–'} ms (n ${each[p].n})`).join(', ')}.`,
    '', ...tableLines(rows), '',
  ].join('\n');
  writeFileSync(join(v.out!, 'sim-vs-real.md'), md);
  writeFileSync(join(v.out!, 'sim-vs-real.json'), JSON.stringify({ run, rows, perRequest: each, real, sim: c.served, failures,
    calibration: { swapBytesPerS, diskBytesPerS, prefillChunk: PREFILL_CHUNK, prefill: Object.fromEntries(prefill), step: Object.fromEntries(step) } }, null, 1));
  process.stdout.write(md);
  return rows.every((r) => r.pass || (r.realN === 0 && r.simN === 0)) ? 0 : 1;
}

const recorded = (file: string): Recorded => {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Recorded | { run: Recorded };
  return 'run' in j ? j.run : j;
};
const entry = v.resimulate ? Promise.resolve(compare(recorded(v.resimulate))) : main();
entry.then((c) => process.exit(c), (e: Error) => { process.stderr.write(`fleet replay: ${e.stack}\n`); process.exit(2); });
