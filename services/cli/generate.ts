// `swapserve generate <model> --prompt "…"`: streams a completion to stdout, prefill/decode timings to stderr.
//
// CPU: the engine runs on a host copy of the model's arena (no Redis, no weights runtime). CUDA (where built and
// a GPU is visible, or --backend cuda): the weights runtime loads the model to the GPU and the engine leases it.
import { HELP, parseCommand } from './args.ts';

import { resolveBackend, type Backend } from '../../native/ts/addon.ts';
import { readArena } from '../../native/ts/arena.ts';
import { SwapserveError, isSwapserveError } from '../../contracts/errors.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import type { ModelSource } from '../../native/ts/types.ts';
import { Engine } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';
import { progress } from '../dev/progress.ts';

const USAGE = `usage: swapserve generate <model.gguf | hf-folder> [options]

  --prompt TEXT        prompt text (default: empty = BOS only)
  --max-tokens N       tokens to generate (default 128)
  --temperature T      0 = greedy (default 0.8)
  --top-p P            nucleus sampling mass (default 0.95)
  --top-k K            0 = off (default 40)
  --seed S             sampling seed (default: random)
  --stop TEXT          stop string (repeatable)
  --chat               wrap the prompt in the model's chat template as one user message
  --max-context N      context window, tokens (default: min(model, 4096))
  --threads N          CPU threads, 0 = all (default 0)
  --backend B          cpu | cuda | auto (default: env SWAPSERVE_BACKEND, else auto)
`;

function num(v: string | undefined, name: string, def: number, check: (n: number) => boolean): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new SwapserveError('usage', `Expected a valid number for --${name} but received "${v}"`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand('generate', USAGE, {
    args: argv,
    allowPositionals: true,
    options: {
      prompt: { type: 'string', default: '' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      chat: { type: 'boolean', default: false },
      'max-context': { type: 'string' },
      threads: { type: 'string' },
      backend: { type: 'string' },
      ...HELP,
    },
  });
  if (typeof parsed === 'number') return parsed;
  const { values: o, positionals } = parsed;
  if (positionals.length !== 1) {
    process.stderr.write(`swapserve generate: expected one model path\n\n${USAGE}`);
    return 2;
  }
  let engine: Engine | null = null;
  let runtime: Runtime | null = null;
  try {
    const choice = o.backend ?? process.env.SWAPSERVE_BACKEND ?? 'auto';
    if (choice !== 'cpu' && choice !== 'cuda' && choice !== 'auto') throw new SwapserveError('usage', `Expected cpu, cuda or auto for --backend but received "${choice}"`);
    const maxTokens = num(o['max-tokens'], 'max-tokens', 128, (n) => Number.isInteger(n) && n >= 1);
    const temperature = num(o.temperature, 'temperature', 0.8, (n) => n >= 0);
    const topP = num(o['top-p'], 'top-p', 0.95, (n) => n > 0 && n <= 1);
    const topK = num(o['top-k'], 'top-k', 40, (n) => Number.isInteger(n) && n >= 0);
    const seed = o.seed === undefined ? undefined : num(o.seed, 'seed', 0, Number.isSafeInteger);
    const maxContext = o['max-context'] === undefined ? undefined : num(o['max-context'], 'max-context', 0, (n) => Number.isInteger(n) && n >= 1);
    const threads = num(o.threads, 'threads', 0, (n) => Number.isInteger(n) && n >= 0);

    const source = await openModel(positionals[0]);
    const tokenizer = await loadTokenizer(source);
    const prompt = o.chat
      ? tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: o.prompt }]), { addBos: false })
      : tokenizer.encode(o.prompt, { addBos: true });
    if (prompt.length === 0) throw new SwapserveError('usage', 'the prompt is empty and the model has no BOS token: pass --prompt');
    const backend: Backend = resolveBackend(choice);
    if (backend === 'cuda') {
      const ctx = maxContext ?? Math.min(source.config.maxPositions, 4096);
      runtime = Runtime.open({ backend, hostBudgetBytes: 0, gpuBudgetBytes: source.layout.totalBytes + (64 << 20), scratchBudgetBytes: kvBytes(source, ctx) * 2 + (512 << 20) });
      runtime.register('model', source.layout);
      const t0 = performance.now();
      // A bar on a terminal, plain lines in logs (services/dev/progress.ts).
      const bar = progress({ label: 'load', total: source.layout.totalBytes, unit: 'bytes', mode: source.layout.totalBytes < 64e6 ? 'off' : undefined });
      await runtime.loadToGpu('model', { onProgress: (d, t) => bar.update(d, t) });
      bar.finish(`on ${runtime.deviceName}`);
      process.stderr.write(`load: ${(source.layout.totalBytes / 1e6).toFixed(1)} MB to ${runtime.deviceName} in ${(performance.now() - t0).toFixed(1)} ms\n`);
      engine = await Engine.create(runtime, 'model', source, tokenizer, { maxContext: ctx, threads });
    } else {
      engine = await Engine.createOnHostArena(await readArena(source), source, tokenizer, { maxContext, threads });
    }
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    try {
      for await (const ev of engine.generate({ prompt, maxTokens, temperature, topP, topK, seed, stop: o.stop }, ac.signal)) {
        if (ev.type === 'token') {
          if (ev.text) process.stdout.write(ev.text);
          continue;
        }
        process.stdout.write('\n');
        const rate = (n: number, ms: number) => (ms > 0 ? `${((n * 1000) / ms).toFixed(1)} tok/s` : '-');
        const decoded = Math.max(0, ev.completionTokens - 1); // the first token comes out of prefill
        process.stderr.write(
          `prefill: ${ev.promptTokens} tokens in ${ev.prefillMs.toFixed(2)} ms (${rate(ev.promptTokens, ev.prefillMs)})\n` +
          `decode: ${decoded} tokens in ${ev.decodeMs.toFixed(2)} ms (${rate(decoded, ev.decodeMs)})\n` +
          `finish: ${ev.finishReason}; backend ${engine.backend}\n`);
      }
    } finally {
      process.off('SIGINT', onSigint);
    }
    return 0;
  } catch (e) {
    if (isSwapserveError(e, 'usage')) {
      process.stderr.write(`swapserve generate: ${e.message}\n`);
      return 2;
    }
    if (e instanceof SwapserveError) {
      process.stderr.write(`swapserve generate: ${e.code}: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await engine?.close();
    await runtime?.close();
  }
}

/** One sequence's KV cache at `ctx` positions in fp32 (an upper bound for every backend), bytes. */
function kvBytes(source: ModelSource, ctx: number): number {
  const c = source.config;
  return 2 * c.numLayers * ctx * c.numKvHeads * c.headDim * 4;
}
