// The headline's three models (Llama-3.1-8B, Mistral-7B and 11B shapes): their files, tiny stand-ins for the CPU
// dry run, a tokenizer for random-weight models, and prompts of an exact token count.
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tinyHfTokenizer, writeTinyModel } from '../../native/ts/model/tiny.ts';
import { openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, type Tokenizer } from '../../native/ts/tokenizer/index.ts';

export interface BenchModel {
  id: string;
  /** Folder name under the models root (the baseline's key). */
  key: string;
  dir: string;
  label: string;
  bytes: number;
  files: string[];
}

/** The three models: Llama-3.1-8B, Mistral-7B and an 11B shape (Llama architecture, a stand-in for Falcon-11B). */
const SHAPES = [
  { id: 'llama-3.1-8b-shape', dir: 'llama8b', label: 'Llama-3.1-8B shape' },
  { id: 'mistral-7b-shape', dir: 'mistral7b', label: 'Mistral-7B shape' },
  { id: '11b-shape', dir: 'l11b', label: '11B shape (Llama arch., stand-in for Falcon-11B)' },
] as const;

function weightFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => join(dir, f));
}

/** Tiny llama3-family models of three sizes (ratios like 16 : 14.5 : 22). */
export async function writeTinyModels(root: string): Promise<void> {
  const layers = [4, 3, 6];
  for (const [i, s] of SHAPES.entries()) {
    const dir = join(root, s.dir);
    await writeTinyModel(dir, { family: 'llama3', format: 'hf', dtype: 'bf16', seed: i + 1, shards: 2, config: { hiddenSize: 256, intermediateSize: 768, numLayers: layers[i], numHeads: 8, numKvHeads: 4, headDim: 32, maxPositions: 4096, vocabSize: 4096 } });
    // Like the GPU run's random-weight models: no tokenizer of their own, a vocab larger than the tiny tokenizer's.
    rmSync(join(dir, 'tokenizer.json'));
    rmSync(join(dir, 'tokenizer_config.json'), { force: true });
  }
}

/**
 * Random-weight models carry no tokenizer: give them the tiny byte-level BPE one (prompt token counts are exact),
 * its vocab padded with `<|pad_N|>` entries up to the model's vocab_size so that every id the model samples decodes. True when it wrote one.
 */
export function ensureTokenizer(dir: string): boolean {
  if (existsSync(join(dir, 'tokenizer.json'))) return false;
  const t = tinyHfTokenizer('llama3');
  const vocabSize = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  const vocab = (t.files.tokenizerJson as { model: { vocab: Record<string, number> } }).model.vocab;
  for (let id = Object.keys(vocab).length; id < vocabSize; id++) vocab[`<|pad_${id}|>`] = id;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t.files.tokenizerJson));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(t.files.tokenizerConfig));
  return true;
}

/** A prompt that encodes (with BOS) to exactly `n` tokens, or the closest below. */
function promptOf(tok: Tokenizer, n: number): { text: string; tokens: number } {
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'then', 'it', 'ran', 'away', 'from', 'home'];
  let text = '';
  let count = tok.encode(text, { addBos: true }).length;
  for (let i = 0; count < n; i++) {
    const next = `${text}${i ? ' ' : ''}${words[i % words.length]}`;
    const c = tok.encode(next, { addBos: true }).length;
    if (c > n) {
      // Finish with short pieces until exact (or nothing fits).
      const pad = [' x', 'x', ' a', '.', ','].map((x) => `${text}${x}`).find((t) => tok.encode(t, { addBos: true }).length <= n);
      if (pad === undefined) break;
      text = pad;
      count = tok.encode(pad, { addBos: true }).length;
      continue;
    }
    text = next;
    count = c;
  }
  return { text, tokens: count };
}

/** A prompt of `n` tokens asked for, `tokens` as it encodes (with BOS). */
export interface Prompt {
  n: number;
  text: string;
  tokens: number;
}

/** The three models under `root` (each folder given a tokenizer if it has none), with their weight files' sizes. */
export function benchModels(root: string): BenchModel[] {
  return SHAPES.map((s) => {
    const dir = join(root, s.dir);
    ensureTokenizer(dir);
    const files = weightFiles(dir);
    return { id: s.id, key: s.dir, dir, label: s.label, files, bytes: files.reduce((n, f) => n + statSync(f).size, 0) };
  });
}

/** Prompts of the given lengths (tokens), in the first model's tokenizer (the three share it). */
export async function benchPrompts(models: BenchModel[], lengths: number[]): Promise<Prompt[]> {
  const tokenizer = await loadTokenizer(await openModel(models[0].dir));
  return lengths.map((n) => ({ n, ...promptOf(tokenizer, n) }));
}

/** Tier budgets (bytes) from the models' arena sizes (bytes). */
export interface Budgets {
  /** GPU weights tier: the largest model fits, no two do. */
  gpuBytes: number;
  /** Pinned host tier: all three fit, with 1 GiB to spare. */
  hostBytes: number;
  /** All three arenas. */
  totalBytes: number;
}

export function budgetsFor(arenas: number[]): Budgets {
  const largest = Math.max(...arenas);
  const totalBytes = arenas.reduce((a, b) => a + b, 0);
  const sorted = [...arenas].sort((a, b) => b - a);
  const gpuBytes = Math.min(Math.floor(largest * 1.01) + (1 << 20), sorted[1] + sorted[2] - 1);
  if (gpuBytes < largest) throw new Error('no GPU budget holds the largest model but no two models');
  return { gpuBytes, hostBytes: totalBytes + (1 << 30), totalBytes };
}
