// Where CUDA and CPU logits part on a quantized GGUF (issue 17's 8B agreement): a 12-token prefill and one decode
// step on the CUDA backend in exact mode and in the default (bf16-rounding) mode, and on the CPU backend (fp32);
// prints max |a - b| and relative RMS for each pair. If exact-vs-default is as far apart as CUDA-vs-CPU, the gap is
// rounding amplified by the layers; if CUDA-vs-CPU is much farther, the two backends compute something different.
// Usage (GPU machine): node --import tsx bench/quant/drift.ts FILE.gguf
import { buildModelDesc, loadEngineAddon, type EngineAddon } from '../../native/ts/engine-native.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { engineTuningSchema } from '../../native/ts/tuning.ts';

const MiB = 1 << 20;
const path = process.argv[2];
if (!path) throw new Error('usage: drift.ts FILE.gguf');
const source = await openModel(path);
const bytes = source.layout.totalBytes;
const gpuRt = Runtime.open({ backend: 'cuda', hostBudgetBytes: 0, gpuBudgetBytes: bytes + 64 * MiB, scratchBudgetBytes: 4096 * MiB });
const cpuRt = Runtime.open({ backend: 'cpu', hostBudgetBytes: 0, gpuBudgetBytes: bytes + 64 * MiB, scratchBudgetBytes: 512 * MiB });
gpuRt.register('m', source.layout);
cpuRt.register('m', source.layout);
await Promise.all([gpuRt.loadToGpu('m'), cpuRt.loadToGpu('m')]);
const desc = buildModelDesc(source);
const opts = { maxBatch: 1, maxContext: 64, threads: 0 };
const prompt = [source.config.bosTokenId ?? 1, 17, 3, 40, 9, 22, 31, 8, 100, 200, 250, 260];
const steps = [
  { seqs: Int32Array.of(1), counts: Int32Array.of(12), positions: Int32Array.of(0), tokens: Int32Array.from(prompt) },
  { seqs: Int32Array.of(1), counts: Int32Array.of(1), positions: Int32Array.of(12), tokens: Int32Array.of(300) },
];
async function run(e: { logits(b: unknown): Promise<Float32Array>; close(): void }): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const s of steps) out.push(await e.logits(s));
  e.close();
  return out;
}
const G = gpuRt.addon as unknown as EngineAddon;
const logits: Record<string, Float32Array[]> = {
  cpu: await run(new (loadEngineAddon('cpu').Engine)(cpuRt.native, 'm', desc, opts)),
  'cuda exact': await run(new G.Engine(gpuRt.native, 'm', desc, { ...opts, tuning: engineTuningSchema.parse({ exact: true }) })),
  'cuda default': await run(new G.Engine(gpuRt.native, 'm', desc, opts)),
};
const pairs: [string, string][] = [['cuda exact', 'cpu'], ['cuda default', 'cpu'], ['cuda exact', 'cuda default']];
console.log(`${path.split('/').pop()}: ${source.config.numLayers ?? '?'} layers, rope theta ${source.config.ropeTheta ?? '?'}`);
for (const [a, b] of pairs)
  for (let i = 0; i < steps.length; i++) {
    const x = logits[a][i], y = logits[b][i];
    let max = 0, sq = 0, sqRef = 0;
    for (let k = 0; k < y.length; k++) { max = Math.max(max, Math.abs(x[k] - y[k])); sq += (x[k] - y[k]) ** 2; sqRef += y[k] ** 2; }
    console.log(`| ${a} vs ${b} | step ${i} | max ${max.toFixed(4)} | rel rms ${Math.sqrt(sq / sqRef).toFixed(4)} |`);
  }
// DRIFT_PROFILE_STEPS=n: n more decode steps on a CUDA default engine after the comparison, for the per-op profile
// of a quantized decode step (run with SWAPSERVE_CUDA_PROFILE=1; awk -f bench/engine/dev/profile_table.awk stderr).
const profileSteps = Number(process.env.DRIFT_PROFILE_STEPS ?? 0);
if (profileSteps > 0) {
  const e = new G.Engine(gpuRt.native, 'm', desc, opts);
  await e.logits(steps[0]);
  for (let i = 0; i < profileSteps; i++) {
    await e.logits({ seqs: Int32Array.of(1), counts: Int32Array.of(1), positions: Int32Array.of(12 + i), tokens: Int32Array.of(300 + i) });
  }
  e.close();
  console.log(`profiled ${profileSteps} decode steps (CUDA default)`);
}
await gpuRt.close();
await cpuRt.close();
