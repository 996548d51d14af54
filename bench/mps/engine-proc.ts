// One engine process of `swapserve bench mps`: opens the runtime on a device, loads one model to the GPU (disk ->
// staging -> GPU), builds the engine, then runs the cells its parent sends on stdin (one JSON line each) and answers
// each on stdout (one JSON line). Run by bench/mps/mps.ts, never by hand:
//   node --import tsx bench/mps/engine-proc.ts --model DIR --max-batch N --max-context N [--device N]
// stdin:  {"cmd":"run","requests":N,"concurrency":C,"prompt":P,"output":O,"seed":S} | {"cmd":"quit"}
// stdout: {"ready":true,"loadMs":..} then per run {"startMs","endMs","promptTokens","outputTokens","gapsMs":[..]}
//         (gapsMs: the time between consecutive tokens of each sequence, its TPOT samples), or {"error": "..."}.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Engine } from '../../native/ts/engine.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer } from '../../native/ts/tokenizer/index.ts';

const { values } = parseArgs({
  options: { model: { type: 'string' }, 'max-batch': { type: 'string' }, 'max-context': { type: 'string' }, device: { type: 'string' }, 'scratch-gib': { type: 'string' } },
});
const say = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };

interface RunCmd { cmd: 'run'; requests: number; concurrency: number; prompt: number; output: number; seed: number }

async function main(): Promise<void> {
  const t0 = performance.now();
  const source = await openModel(values.model!);
  const bytes = source.layout.totalBytes;
  const rt = Runtime.open({
    backend: (process.env.SWAPSERVE_BACKEND as 'cpu' | 'cuda' | undefined) ?? 'cuda', device: Number(values.device ?? 0),
    hostBudgetBytes: 64 * 2 ** 20, gpuBudgetBytes: bytes + 2 ** 20, scratchBudgetBytes: Number(values['scratch-gib'] ?? 6) * 2 ** 30,
  });
  rt.register('m', source.layout);
  await rt.loadToGpu('m');
  const tokenizer = await loadTokenizer(source);
  const engine = await Engine.create(rt, 'm', source, tokenizer, {
    maxBatch: Number(values['max-batch']), maxContext: Number(values['max-context']), warn: () => undefined,
  });
  say({ ready: true, loadMs: performance.now() - t0, device: rt.deviceName, bytes });

  const vocab = Math.min(tokenizer.vocabSize, source.config.vocabSize);
  const one = async (cmd: RunCmd, i: number, gaps: number[]): Promise<{ p: number; o: number }> => {
    let s = (cmd.seed * 7919 + i * 104729) >>> 0;
    const prompt = Array.from({ length: cmd.prompt }, () => ((s = (s * 1103515245 + 12345) >>> 0) % (vocab - 16)) + 8);
    let last = 0;
    let o = 0;
    for await (const ev of engine.generate({ prompt, maxTokens: cmd.output, temperature: 1, topP: 1, topK: 0, seed: cmd.seed + i })) {
      if (ev.type !== 'token') continue;
      const now = performance.now();
      if (o > 0) gaps.push(now - last);
      last = now;
      o++;
    }
    return { p: prompt.length, o };
  };

  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = JSON.parse(line) as RunCmd | { cmd: 'quit' };
    if (cmd.cmd === 'quit') break;
    try {
      const gaps: number[] = [];
      let next = 0;
      let promptTokens = 0;
      let outputTokens = 0;
      const startMs = performance.timeOrigin + performance.now();
      await Promise.all(Array.from({ length: Math.min(cmd.concurrency, cmd.requests) }, async () => {
        while (next < cmd.requests) {
          const r = await one(cmd, next++, gaps);
          promptTokens += r.p;
          outputTokens += r.o;
        }
      }));
      say({ startMs, endMs: performance.timeOrigin + performance.now(), promptTokens, outputTokens, gapsMs: gaps.map((g) => Math.round(g * 100) / 100) });
    } catch (e) {
      say({ error: (e as Error).message });
    }
  }
  await engine.close();
  await rt.close();
  // The parent keeps our stdin open: without an explicit exit the process would live on after quit (the parent then
  // waited 20 s and killed it, once per arm).
  process.exit(0);
}

main().catch((e: unknown) => {
  say({ error: (e as Error).message });
  process.exit(1);
});
