// Per-step cost of constrained decoding at a 128K vocabulary, on the CPU, without a model: the grammar's mask
// (TokenConstraint.fillMask) and advance (accept) while a random walk generates documents through the grammar.
//   npx tsx bench/grammar/mask.ts [--docs 30] [--out FILE.md]
// The vocabulary is synthetic (bench/grammar/synthetic-vocab.ts says how it is drawn). "cold" = the first
// document of a fresh grammar (every automaton state is new: its mask is computed by a trie walk); "warm" = the
// next ones (states seen before are cached masks). The engine pays fill + accept once per sampled token. Masks are
// budget-aware as in the engine (remaining = MAX_STEPS − step), so every document completes within MAX_STEPS and the
// last steps pay the budgeted walks (native/ts/grammar/design.md, "Closing within max_tokens").
import { writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';

import { Grammar, VocabIndex, compileJsonSchema, type GNode } from '../../native/ts/grammar/index.ts';
import { anyObjectNode } from '../../native/ts/grammar/schema.ts';
import { SYNTH_EOS, SYNTH_V, syntheticVocab } from './synthetic-vocab.ts';

const args = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const DOCS = Number(opt('--docs', '30'));
const MAX_STEPS = 400;

const SCHEMAS: Record<string, GNode> = {
  json_object: anyObjectNode(),
  extraction: compileJsonSchema({
    type: 'object', additionalProperties: false, required: ['name', 'age', 'email', 'tags', 'address', 'status'],
    properties: {
      name: { type: 'string' }, age: { type: 'integer' }, email: { type: ['string', 'null'] },
      tags: { type: 'array', items: { type: 'string' }, maxItems: 5 },
      address: { type: 'object', additionalProperties: false, required: ['city', 'zip'], properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', maxLength: 10 } } },
      status: { enum: ['active', 'inactive', 'pending'] }, score: { type: 'number' },
    },
  }),
  tool_args: compileJsonSchema({
    type: 'object', additionalProperties: false, required: ['location', 'unit', 'days'],
    properties: { location: { type: 'string', description: 'City and country' }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' }, hourly: { type: 'boolean' } },
  }),
};

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const us = (ms: number) => (ms * 1000).toFixed(1);

let seed = 12345;
const rand = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 4294967296; };

const t0 = performance.now();
const pieces = syntheticVocab();
const vocabMs = performance.now() - t0;
const index = new VocabIndex(pieces, SYNTH_V);
let plain = 0;
for (const w of index.plain) for (let x = w; x; x &= x - 1) plain++;
const quoteIds: number[] = [];
for (let i = 0; i < SYNTH_V; i++) if (pieces[i].includes(0x22)) quoteIds.push(i);

const lines: string[] = [];
const rows: string[] = [];
for (const [name, node] of Object.entries(SCHEMAS)) {
  const g = new Grammar(node, index, SYNTH_EOS);
  const cold = { fill: [] as number[], accept: [] as number[] };
  const warm = { fill: [] as number[], accept: [] as number[] };
  let completed = 0, steps = 0;
  const mask = new Uint32Array(index.words);
  for (let d = 0; d < DOCS; d++) {
    const m = g.matcher();
    const into = d === 0 ? cold : warm;
    for (let s = 0; s < MAX_STEPS; s++) {
      mask.fill(0);
      const a = performance.now();
      m.fillMask(mask, 0, MAX_STEPS - s); // as the engine does: the tokens left, so documents close by MAX_STEPS
      const b = performance.now();
      // The walk's policy (not timed): EOS when allowed; else a token with a quote now and then (so strings end),
      // else any allowed token.
      const allowed: number[] = [];
      for (let w = 0; w < mask.length; w++) for (let x = mask[w]; x; x &= x - 1) allowed.push(w * 32 + 31 - Math.clz32(x & -x));
      if (allowed.length === 0) throw new Error(`${name}: no allowed token at step ${s}`);
      let id: number;
      const eos = allowed.find((t) => SYNTH_EOS.includes(t));
      if (eos !== undefined) id = eos;
      else {
        const q = rand() < 0.3 ? allowed.filter((t) => pieces[t].includes(0x22) || pieces[t].includes(0x7d) || pieces[t].includes(0x5d)) : [];
        const from = q.length ? q : allowed;
        id = from[Math.floor(rand() * from.length)];
      }
      const c = performance.now();
      if (!m.accept(id)) throw new Error(`${name}: an allowed token was refused`);
      const e = performance.now();
      into.fill.push(b - a);
      into.accept.push(e - c);
      steps++;
      if (m.isTerminated()) { completed++; break; }
    }
  }
  const row = (label: string, x: { fill: number[]; accept: number[] }) => {
    const tot = x.fill.map((f, i) => f + x.accept[i]);
    rows.push(`| ${name} | ${label} | ${x.fill.length} | ${us(mean(x.fill))} | ${us(mean(x.accept))} | ${us(mean(tot))} | ${us(pct(tot, 0.5))} | ${us(pct(tot, 0.99))} | ${us(Math.max(...tot))} |`);
  };
  row('cold (1st doc)', cold);
  row(`warm (docs 2-${DOCS})`, warm);
  lines.push(`- ${name}: ${completed}/${DOCS} documents completed within ${MAX_STEPS} steps, ${steps} steps, ${g.misses} masks computed, ${g.hits} served from cache`);
}

let commit = 'unknown';
try { commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
const md = [
  `# Constrained decoding: per-step mask cost at a 128K vocabulary (CPU, no model)`,
  '',
  `- date: ${new Date().toISOString()}, commit ${commit}, node ${process.version}, ${process.platform}/${process.arch}`,
  `- command: \`npx tsx bench/grammar/mask.ts --docs ${DOCS}\``,
  `- vocabulary: SYNTHETIC, ${SYNTH_V} ids shaped like Llama 3's (bench/grammar/synthetic-vocab.ts; no real 128K tokenizer offline): drawn in ${vocabMs.toFixed(0)} ms`,
  `- VocabIndex (two byte tries + the plain-string mask; once per tokenizer): ${index.buildMs.toFixed(0)} ms; ${index.all.nodes} trie nodes, ${index.specials.nodes} in the string-special trie; ${plain} plain-string tokens; ${quoteIds.length} tokens hold a quote`,
  `- per step = fillMask (the mask the sampler applies) + accept (advance by the sampled token); random-walk policy described in the script`,
  '',
  '| grammar | documents | steps | fill µs (mean) | accept µs (mean) | step µs (mean) | p50 | p99 | max |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows,
  '',
  ...lines,
  '',
  'CPU timings on a shared 2-core box are noisy; compare rows of one run. The GPU bar (< 10% of a decode step at',
  'batch 1, 8B shape) is measured end to end by bench/grammar/run_device.sh.',
].join('\n');
process.stdout.write(md + '\n');
const out = opt('--out', '');
if (out) writeFileSync(out, md + '\n');
