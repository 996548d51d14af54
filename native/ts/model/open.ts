// openModel: a Hugging Face folder or a .gguf file → a validated ModelSource with its planned WeightLayout.
import { basename, join, resolve } from 'node:path';

import { DTYPE_BYTES, type DType, type ModelConfig, type ModelSource, type TokenizerSource } from '../types.ts';
import { inferLlama3Scaling, parseGgufConfig, parseHfConfig } from './config.ts';
import { ModelFileError } from './errors.ts';
import { withCursor } from './file-reader.ts';
import { GGML_DTYPE, metaString, readGguf, type GgufFile } from './gguf.ts';
import { planLayout, type SourceTensor } from './layout.ts';
import { isQuant, QUANT_BLOCK } from './quant.ts';
import { readSafetensors, ST_TO_DTYPE, type SafetensorsTensor } from './safetensors.ts';
import { checkAgainstFiles } from './limits.ts';
import { MODEL_IO_DEFAULTS, pathExists, readSmallText, statModelPath, type ModelIoOptions } from './safe-io.ts';
import { expectedTensors, ggufToCanonical, hfToCanonical } from './tensors.ts';

/** Largest JSON side file read (config.json, index, tokenizer_config.json), bytes. */
const MAX_JSON = 64 << 20;

/** Bytes a value of `dtype` takes (a fraction for block-quantized types: block bytes / block values). */
function bytesPerElement(dtype: DType): number {
  return isQuant(dtype) ? QUANT_BLOCK[dtype].bytes / QUANT_BLOCK[dtype].elems : DTYPE_BYTES[dtype];
}

/** A tensor found in a file, under its canonical name. */
interface Found {
  name: string;
  fileName: string;
  dtype: DType;
  shape: number[];
  file: string;
  fileOffset: number;
  bytes: number;
}

async function readJson(file: string, io: ModelIoOptions): Promise<unknown> {
  const text = await readSmallText(file, MAX_JSON, io);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFileError('bad_json', file, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Check names and shapes against the config, then plan the arena. */
function assemble(
  path: string, format: ModelSource['format'], cfg: ModelConfig, found: Map<string, Found>, files: string[],
  tokenizer: TokenizerSource | null,
): ModelSource {
  // Quantized tensors hold fewer bytes per parameter: bound the config by the densest type found.
  const perElem = Math.min(2, ...[...found.values()].map((t) => bytesPerElement(t.dtype)));
  checkAgainstFiles(files[0] ?? path, cfg, [...found.values()].reduce((n, t) => n + t.bytes, 0), perElem);
  const expected = expectedTensors(cfg);
  const sources: SourceTensor[] = [];
  for (const e of expected) {
    const t = found.get(e.name);
    if (!t) throw new ModelFileError('missing_tensor', files[0] ?? path, `tensor "${e.name}" (shape [${e.shape.join(', ')}]) is missing`);
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new ModelFileError('shape_mismatch', t.file,
        `tensor "${t.fileName}" has shape [${t.shape.join(', ')}] but the config implies [${e.shape.join(', ')}]`);
    }
    if (isQuant(t.dtype) && t.shape.length !== 2) {
      throw new ModelFileError('quant_block', t.file,
        `tensor "${t.fileName}" is ${QUANT_BLOCK[t.dtype].name}, but only weight matrices may be quantized (norms and biases must be F32, F16 or BF16)`);
    }
    sources.push({ name: e.name, dtype: t.dtype, shape: t.shape, group: e.group, file: t.file, fileOffset: t.fileOffset, bytes: t.bytes });
  }
  const used = new Set(expected.map((e) => e.name));
  for (const t of found.values()) {
    if (!used.has(t.name)) {
      throw new ModelFileError('unexpected_tensor', t.file, `tensor "${t.fileName}" is not used by a ${cfg.arch} model with this config`);
    }
  }
  const layout = planLayout(sources, cfg.numLayers + 2);
  const big = sources.find((s) => s.name === 'layers.0.wq') ?? sources[0];
  const parameterCount = sources.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return { path, format, config: cfg, layout, dtype: big.dtype, parameterCount, files, tokenizer };
}

// ---------------- Hugging Face folders ----------------

async function openHf(dir: string, io: ModelIoOptions): Promise<ModelSource> {
  const cfgFile = join(dir, 'config.json');
  if (!(await pathExists(cfgFile, io))) throw new ModelFileError('not_found', dir, 'not a model folder: config.json is missing');
  const cfg = parseHfConfig(cfgFile, await readJson(cfgFile, io));
  const indexFile = join(dir, 'model.safetensors.index.json');
  let shardNames: string[];
  let weightMap: Record<string, string> | null = null;
  if (await pathExists(indexFile, io)) {
    const idx = await readJson(indexFile, io);
    const wm = (idx as { weight_map?: unknown } | null)?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string')) {
      throw new ModelFileError('bad_index', indexFile, 'weight_map must map tensor names to shard file names');
    }
    weightMap = wm as Record<string, string>;
    shardNames = [...new Set(Object.values(weightMap))].sort();
    for (const s of shardNames) {
      if (s !== basename(s) || s === '.' || s === '..' || !s.endsWith('.safetensors')) {
        throw new ModelFileError('bad_index', indexFile, `shard "${s}" must be a .safetensors file name inside the folder`);
      }
    }
  } else if (await pathExists(join(dir, 'model.safetensors'), io)) {
    shardNames = ['model.safetensors'];
  } else {
    throw new ModelFileError('not_found', dir, 'no model.safetensors or model.safetensors.index.json in the folder');
  }
  const found = new Map<string, Found>();
  const files: string[] = [];
  for (const shard of shardNames) {
    const file = join(dir, shard);
    if (!(await pathExists(file, io))) throw new ModelFileError('not_found', file, 'shard named by the index is missing');
    const st = await readSafetensors(file, io);
    files.push(file);
    for (const t of st.tensors) {
      if (weightMap && weightMap[t.name] !== shard) {
        throw new ModelFileError('bad_index', file,
          `tensor "${t.name}" is in ${shard} but the index says ${weightMap[t.name] === undefined ? 'nothing about it' : weightMap[t.name]}`);
      }
      addHfTensor(found, cfg, file, t);
    }
  }
  if (weightMap) {
    for (const [name, shard] of Object.entries(weightMap)) {
      const canon = hfToCanonical(name);
      if (canon && !found.has(canon)) {
        throw new ModelFileError('bad_index', indexFile, `index lists "${name}" in ${shard} but that shard does not hold it`);
      }
    }
  }
  // A tied model may still ship lm_head (some exporters write the copy): the engine uses the embedding.
  if (cfg.tieWordEmbeddings) found.delete('output');
  return assemble(dir, 'safetensors', cfg, found, files, await hfTokenizer(dir, io));
}

function addHfTensor(found: Map<string, Found>, cfg: ModelConfig, file: string, t: SafetensorsTensor): void {
  const canon = hfToCanonical(t.name);
  if (canon === null) return;
  if (canon === undefined) {
    throw new ModelFileError('unexpected_tensor', file, `tensor "${t.name}" is not a ${cfg.arch} tensor swapserve knows`);
  }
  const dtype = ST_TO_DTYPE[t.stDtype];
  if (!dtype) throw new ModelFileError('unsupported_dtype', file, `tensor "${t.name}" is ${t.stDtype}; only F32, F16 and BF16 weights are supported`);
  if (found.has(canon)) throw new ModelFileError('duplicate_tensor', file, `tensor "${t.name}" occurs in more than one shard`);
  found.set(canon, { name: canon, fileName: t.name, dtype, shape: t.shape, file, fileOffset: t.fileOffset, bytes: t.bytes });
}

async function hfTokenizer(dir: string, io: ModelIoOptions): Promise<TokenizerSource | null> {
  const tj = join(dir, 'tokenizer.json');
  if (!(await pathExists(tj, io))) return null;
  let chatTemplate: string | null = null;
  const tc = join(dir, 'tokenizer_config.json');
  if (await pathExists(tc, io)) {
    const j = await readJson(tc, io);
    const t = (j as { chat_template?: unknown } | null)?.chat_template;
    if (typeof t === 'string') chatTemplate = t;
    else if (Array.isArray(t)) {
      const def = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
      if (def && typeof def.template === 'string') chatTemplate = def.template;
    }
  }
  return { kind: 'hf', path: tj, chatTemplate };
}

// ---------------- GGUF ----------------

/** Byte-compare two ranges of one file in bounded chunks (early exit on the first difference). */
async function sameBytes(file: string, a: number, b: number, bytes: number, io: ModelIoOptions): Promise<boolean> {
  const CHUNK = 1 << 20;
  return withCursor(file, async (c) => {
    for (let off = 0; off < bytes; off += CHUNK) {
      const n = Math.min(CHUNK, bytes - off);
      const [x, y] = await Promise.all([c.readAt(a + off, n, 'token_embd.weight'), c.readAt(b + off, n, 'output.weight')]);
      if (!x.equals(y)) return false;
    }
    return true;
  }, io);
}

async function openGguf(file: string, io: ModelIoOptions): Promise<ModelSource> {
  const g: GgufFile = await readGguf(file, io);
  const found = new Map<string, Found>();
  let ropeFreqs: (typeof g.tensors)[number] | null = null;
  for (const t of g.tensors) {
    const canon = ggufToCanonical(t.name);
    if (canon === undefined) {
      if (t.name === 'rope_freqs.weight') { ropeFreqs = t; continue; }
      throw new ModelFileError('unexpected_tensor', file, `tensor "${t.name}" is not a tensor swapserve knows`);
    }
    found.set(canon, { name: canon, fileName: t.name, dtype: GGML_DTYPE[t.ggmlType], shape: t.shape, file, fileOffset: t.fileOffset, bytes: t.bytes });
  }
  const emb = found.get('tok_embeddings');
  if (!emb) throw new ModelFileError('missing_tensor', file, 'tensor "token_embd.weight" is missing');
  if (emb.shape.length !== 2) throw new ModelFileError('shape_mismatch', file, `token_embd.weight must be 2-D, got [${emb.shape.join(', ')}]`);
  // A separate output.weight that is byte-identical to token_embd (stories260K) is a tied head written twice:
  // treat the model as tied, do not load the copy, and count its parameters once.
  const out = found.get('output');
  if (out && out.dtype === emb.dtype && out.bytes === emb.bytes && out.shape.every((d, i) => d === emb.shape[i])
      && await sameBytes(file, emb.fileOffset, out.fileOffset, emb.bytes, io)) {
    found.delete('output');
  }
  const cfg = parseGgufConfig(g, emb.shape[0], found.has('output'));
  if (ropeFreqs) {
    // Llama 3.x scaling is stored as per-pair factors; the engine takes the parameters, so recover them.
    if (ropeFreqs.ggmlType !== 0 || ropeFreqs.shape.length !== 1 || ropeFreqs.shape[0] !== cfg.headDim / 2) {
      throw new ModelFileError('shape_mismatch', file, `rope_freqs.weight must be F32 [${cfg.headDim / 2}], got [${ropeFreqs.shape.join(', ')}]`);
    }
    if (cfg.ropeScaling) throw new ModelFileError('bad_config', file, 'both rope.scaling metadata and rope_freqs.weight are present');
    const raw = await withCursor(file, (c) => c.readAt(ropeFreqs.fileOffset, ropeFreqs.bytes, 'rope_freqs.weight'), io);
    const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    cfg.ropeScaling = inferLlama3Scaling(file, cfg.ropeTheta, cfg.headDim, values);
  }
  const tokModel = metaString(g, 'tokenizer.ggml.model');
  const tokenizer: TokenizerSource | null = tokModel === undefined ? null
    : { kind: 'gguf', path: file, chatTemplate: metaString(g, 'tokenizer.chat_template') ?? null };
  return assemble(file, 'gguf', cfg, found, [file], tokenizer);
}

/** Options of openModel. */
export type OpenModelOptions = ModelIoOptions;

/**
 * Open and validate a model: a Hugging Face folder (config.json + safetensors) or a .gguf file. Every file access
 * runs under `timeoutMs` and never blocks on a FIFO (safe-io.ts), so a bad path fails this model only.
 */
export async function openModel(path: string, opts: OpenModelOptions = {}): Promise<ModelSource> {
  const io: ModelIoOptions = { ...MODEL_IO_DEFAULTS, ...opts };
  const p = resolve(path);
  const st = await statModelPath(p, io);
  if (st.isDirectory()) return openHf(p, io);
  if (p.endsWith('.safetensors')) {
    throw new ModelFileError('not_found', p, 'open the model folder (with config.json), not a single .safetensors file');
  }
  return openGguf(p, io);
}
