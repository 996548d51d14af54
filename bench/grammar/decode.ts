// Constrained decoding's cost next to the engine's decode step, batch 1, end to end (engine.generate): per-step
// time with and without a JSON grammar, and the grammar's own share (fillMask + accept, timed in the loop).
//   npx tsx bench/grammar/decode.ts --model DIR [--backend cpu|cuda] [--tokens 256] [--out FILE.md]
// A model whose vocab is 128,256 ids gets the synthetic Llama-3-like tokenizer (bench/grammar/synthetic-vocab.ts;
// the GPU machine has no real one offline), others their own. On CUDA the unconstrained greedy row uses the
// on-device argmax; every constrained row (and sampling at T > 0) copies the logits row back and runs the shared
// host sampler with the mask (native/src/engine/sampler.cc): that copy is part of the measured cost.
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import { readArena } from '../../native/ts/arena.ts';
import { Engine, type GenerateRequest, type TokenConstraint } from '../../native/ts/engine.ts';
import { jsonGrammar, type JsonConstraintSpec } from '../../native/ts/grammar/index.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { Runtime } from '../../native/ts/runtime.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';
import { SYNTH_V, SyntheticTokenizer } from './synthetic-vocab.ts';

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const MODEL = opt('--model', '');
const BACKEND = opt('--backend', 'cpu') as 'cpu' | 'cuda';
const TOKENS = Number(opt('--tokens', '256'));
if (!MODEL) { process.stderr.write('usage: decode.ts --model DIR [--backend cpu|cuda] [--tokens N] [--out FILE]\n'); process.exit(2); }

const EXTRACTION = {
  type: 'object', additionalProperties: false, required: ['name', 'age', 'email', 'tags', 'address', 'status'],
  properties: {
    name: { type: 'string', maxLength: 40 }, age: { type: 'integer' }, email: { type: ['string', 'null'], maxLength: 40 },
    tags: { type: 'array', items: { type: 'string', maxLength: 20 }, maxItems: 8 },
    address: { type: 'object', additionalProperties: false, required: ['city', 'zip'], properties: { street: { type: 'string', maxLength: 40 }, city: { type: 'string', maxLength: 30 }, zip: { type: 'string', maxLength: 10 } } },
    status: { enum: ['active', 'inactive', 'pending'] }, score: { type: 'number' },
  },
};

const source = await openModel(MODEL);
const V = source.config.vocabSize;
const tok: Tokenizer = V === SYNTH_V ? new SyntheticTokenizer() : await loadTokenizer(source);
const eos = V === SYNTH_V ? [...tok.eosIds] : source.config.eosTokenIds;
let engine: Engine;
let runtime: Runtime | null = null;
const ctx = 2048;
if (BACKEND === 'cuda') {
  runtime = Runtime.open({ backend: 'cuda', hostBudgetBytes: 0, gpuBudgetBytes: source.layout.totalBytes + (64 << 20), scratchBudgetBytes: 4 * 2 ** 30 });
  runtime.register('m', source.layout);
  await runtime.loadToGpu('m');
  engine = await Engine.create(runtime, 'm', source, tok, { maxBatch: 1, maxContext: ctx });
} else {
  engine = await Engine.createOnHostArena(await readArena(source), source, tok, { maxBatch: 1, maxContext: ctx });
}
const prompt = tok.encode('Extract the person as JSON: Ann Smith, 34, lives at 1 Main St, Springfield 12345, active.', { addBos: true }).slice(0, 64);

/** Grammar time inside the engine loop: each fillMask and accept of the wrapped matcher. */
let grammarMs = 0;
let grammarSteps = 0;
function timed(spec: JsonConstraintSpec): () => TokenConstraint {
  const g = jsonGrammar(tok, V, eos, spec);
  return () => {
    const m = g.matcher();
    return {
      fillMask(mask, off, remaining) { const t = performance.now(); m.fillMask(mask, off, remaining); grammarMs += performance.now() - t; grammarSteps++; },
      accept(id) { const t = performance.now(); const ok = m.accept(id); grammarMs += performance.now() - t; return ok; },
      isTerminated() { return m.isTerminated(); },
    };
  };
}

interface Row { label: string; msPerStep: number; steps: number; grammarUs: number | null; docs: number }
async function measure(label: string, extra: Partial<GenerateRequest>, warm: boolean): Promise<Row> {
  let decodeMs = 0, steps = 0, docs = 0, seed = 1;
  grammarMs = 0; grammarSteps = 0;
  const want = warm ? TOKENS : 16;
  while (steps < want) {
    const req: GenerateRequest = { prompt, maxTokens: Math.min(TOKENS, ctx - prompt.length), temperature: 0, topP: 1, topK: 0, seed: seed++, ...extra };
    for await (const e of engine.generate(req)) {
      if (e.type === 'done') { decodeMs += e.decodeMs; steps += Math.max(0, e.completionTokens - 1); docs++; }
    }
  }
  return { label, msPerStep: decodeMs / steps, steps, grammarUs: grammarSteps ? (grammarMs / grammarSteps) * 1000 : null, docs };
}

const modes: [string, Partial<GenerateRequest>][] = [
  ['greedy, unconstrained', {}],
  ['T=1, unconstrained', { temperature: 1 }],
  ['greedy, json_schema (extraction)', { constraint: timed({ type: 'json_schema', schema: EXTRACTION }) }],
  ['T=1, json_schema (extraction)', { temperature: 1, constraint: timed({ type: 'json_schema', schema: EXTRACTION }) }],
  ['greedy, json_object', { constraint: timed({ type: 'json_object' }) }],
];
const rows: Row[] = [];
for (const [label, extra] of modes) {
  await measure(label, extra, false); // warm-up: JIT, KV, and the grammar's first masks
  rows.push(await measure(label, extra, true));
}
await engine.close();
await runtime?.close();

const base = rows[0].msPerStep;
let commit = 'unknown';
try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
const dev = BACKEND === 'cuda' ? (runtime?.deviceName ?? 'cuda') : 'cpu';
const md = [
  `# Constrained decoding vs the decode step, batch 1 (${BACKEND})`,
  '',
  `- date: ${new Date().toISOString()}, commit ${commit}, device ${dev}`,
  `- model: ${MODEL} (${source.config.numLayers} layers, hidden ${source.config.hiddenSize}, vocab ${V}); tokenizer: ${V === SYNTH_V ? 'SYNTHETIC 128K (bench/grammar/synthetic-vocab.ts)' : 'the model\'s own'}`,
  `- command: \`npx tsx bench/grammar/decode.ts --model ${MODEL} --backend ${BACKEND} --tokens ${TOKENS}\`; each row after a warm-up run; prompt ${prompt.length} tokens`,
  '',
  '| mode | decode ms/step | vs greedy unconstrained | grammar µs/step (fillMask + accept) | steps | generations |',
  '| --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.label} | ${r.msPerStep.toFixed(3)} | ${(((r.msPerStep - base) / base) * 100).toFixed(1)}% | ${r.grammarUs === null ? '-' : r.grammarUs.toFixed(1)} | ${r.steps} | ${r.docs} |`),
].join('\n');
process.stdout.write(md + '\n');
const out = opt('--out', '');
if (out) writeFileSync(out, md + '\n');
