// `swapserve inspect <model folder | .gguf> [--json]`: validate a model and print its architecture and layout.
import { HELP, parseCommand } from './args.ts';
import { stat } from 'node:fs/promises';

import { isModelFileError, openModel } from '../../native/ts/model/index.ts';
import { loadTokenizer, TokenizerError } from '../../native/ts/tokenizer/index.ts';
import type { ModelSource } from '../../native/ts/types.ts';

const USAGE = `usage: swapserve inspect <model folder | model.gguf> [--json]

Validates the model files (headers, offsets, tensors vs config) without reading the weights, and prints
architecture, parameter count, dtype, bytes and the arena layout. Exit 1 if the model is unusable.
  --json    one JSON object on stdout (ok, model / error)
`;

export interface InspectIo {
  out: (s: string) => void;
  err: (s: string) => void;
}
const STDIO: InspectIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** 1234567 → "1.2M"; the exact count is printed beside it. */
function short(n: number, unit = ''): string {
  const steps: [number, string][] = unit === 'B' ? [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']] : [[1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [v, s] of steps) if (n >= v) return `${(n / v).toFixed(1)} ${s}`.replace(' B', 'B').replace(/ ([MK])$/, '$1');
  return `${n}${unit ? ' ' + unit : ''}`;
}

interface Report {
  ok: true;
  model: ModelSource & { fileBytes: number; chat: { family: string; fromTemplate: boolean } | null; tokenizerError?: string };
}

function text(r: Report['model']): string {
  const c = r.config;
  const fmt = (n: number) => n.toLocaleString('en-US');
  const rope = `${c.ropeStyle}, theta ${c.ropeTheta}` + (c.ropeScaling
    ? c.ropeScaling.kind === 'linear' ? `, linear x${c.ropeScaling.factor}`
      : `, llama3 x${c.ropeScaling.factor} (low ${c.ropeScaling.lowFreqFactor}, high ${c.ropeScaling.highFreqFactor}, orig ${c.ropeScaling.originalMaxPositions})`
    : '');
  const rows: [string, string][] = [
    ['model', r.path],
    ['format', `${r.format} (${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${short(r.fileBytes, 'B')})`],
    ['arch', c.arch],
    ['parameters', `${fmt(r.parameterCount)} (${short(r.parameterCount)})`],
    ['dtype', r.dtype + (new Set(r.layout.tensors.map((t) => t.dtype)).size > 1 ? ` (norms ${r.layout.tensors.find((t) => t.shape.length === 1)?.dtype})` : '')],
    ['arena bytes', `${fmt(r.layout.totalBytes)} (${short(r.layout.totalBytes, 'B')}) in ${r.layout.groups.length} groups, ${r.layout.segments.length} reads`],
    ['layers', String(c.numLayers)],
    ['hidden', String(c.hiddenSize)],
    ['ffn', String(c.intermediateSize)],
    ['heads', `${c.numHeads} (kv ${c.numKvHeads}, head dim ${c.headDim})`],
    ['vocab', String(c.vocabSize)],
    ['context', String(c.maxPositions)],
    ['rope', rope],
    ['rms eps', String(c.rmsNormEps)],
    ['tied head', c.tieWordEmbeddings ? 'yes' : 'no'],
    ['qkv bias', c.attentionBias ? 'yes' : 'no'],
    ['bos / eos', `${c.bosTokenId ?? '-'} / ${c.eosTokenIds.join(', ') || '-'}`],
    ['tokenizer', r.tokenizer ? `${r.tokenizer.kind} (${r.tokenizer.path})` : 'none'],
    ['chat', r.chat ? `${r.chat.family}${r.chat.fromTemplate ? ' (from the model\'s template)' : ' (from the architecture)'}` : r.tokenizerError ?? '-'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join('\n') + '\n';
}

export async function run(argv: string[], io: InspectIo = STDIO): Promise<number> {
  const parsed = parseCommand('inspect', USAGE, { args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, ...HELP } }, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) { io.err(USAGE); return 2; }
  const fail = (code: string, file: string | null, message: string): number => {
    if (values.json) io.out(JSON.stringify({ ok: false, error: { code, file, message } }) + '\n');
    else io.err(`swapserve inspect: ${code}: ${message}\n`);
    return 1;
  };
  let model: ModelSource;
  try {
    model = await openModel(positionals[0]);
  } catch (e) {
    if (isModelFileError(e)) return fail(e.code, e.file, e.message);
    throw e;
  }
  let fileBytes = 0;
  for (const f of model.files) fileBytes += (await stat(f)).size;
  const report: Report['model'] = { ...model, fileBytes, chat: null };
  let tokenizerFailed = false;
  if (model.tokenizer) {
    try {
      const tok = await loadTokenizer(model) as { family?: string };
      report.chat = { family: tok.family ?? 'unknown', fromTemplate: model.tokenizer.chatTemplate !== null };
    } catch (e) {
      if (!(e instanceof TokenizerError) && !isModelFileError(e)) throw e;
      report.tokenizerError = `tokenizer unusable: ${(e as Error).message}`;
      tokenizerFailed = true;
    }
  }
  if (values.json) io.out(JSON.stringify({ ok: !tokenizerFailed, model: report }) + '\n');
  else io.out(text(report));
  return tokenizerFailed ? 1 : 0;
}
