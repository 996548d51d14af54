// Canonical tensor names: what the architecture needs (with the shapes the config implies) and how HF / GGUF
// files name them.
import type { ModelConfig } from '../types.ts';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  group: number;
}

/** Order inside a layer group (the arena order). */
const LAYER_ORDER = ['attn_norm', 'wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3'] as const;

/** Every tensor the engine needs, in arena order: group 0 embeddings, 1..L layers, L+1 final norm + head. */
export function expectedTensors(cfg: ModelConfig): ExpectedTensor[] {
  const C = cfg.hiddenSize, F = cfg.intermediateSize, V = cfg.vocabSize;
  const Q = cfg.numHeads * cfg.headDim, KV = cfg.numKvHeads * cfg.headDim;
  const out: ExpectedTensor[] = [{ name: 'tok_embeddings', shape: [V, C], group: 0 }];
  const shapes: Record<(typeof LAYER_ORDER)[number], number[] | null> = {
    attn_norm: [C], wq: [Q, C], bq: cfg.attentionBias ? [Q] : null, wk: [KV, C], bk: cfg.attentionBias ? [KV] : null,
    wv: [KV, C], bv: cfg.attentionBias ? [KV] : null, wo: [C, Q], ffn_norm: [C], w1: [F, C], w2: [C, F], w3: [F, C],
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const k of LAYER_ORDER) {
      const shape = shapes[k];
      if (shape) out.push({ name: `layers.${i}.${k}`, shape, group: i + 1 });
    }
  }
  out.push({ name: 'norm', shape: [C], group: cfg.numLayers + 1 });
  if (!cfg.tieWordEmbeddings) out.push({ name: 'output', shape: [V, C], group: cfg.numLayers + 1 });
  return out;
}

const HF_LAYER: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm',
  'self_attn.q_proj.weight': 'wq', 'self_attn.q_proj.bias': 'bq',
  'self_attn.k_proj.weight': 'wk', 'self_attn.k_proj.bias': 'bk',
  'self_attn.v_proj.weight': 'wv', 'self_attn.v_proj.bias': 'bv',
  'self_attn.o_proj.weight': 'wo',
  'post_attention_layernorm.weight': 'ffn_norm',
  'mlp.gate_proj.weight': 'w1', 'mlp.down_proj.weight': 'w2', 'mlp.up_proj.weight': 'w3',
};
const HF_GLOBAL: Record<string, string> = {
  'model.embed_tokens.weight': 'tok_embeddings', 'model.norm.weight': 'norm', 'lm_head.weight': 'output',
};
/** Tensors some checkpoints carry that the engine recomputes (older Llama exports). */
const HF_IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** HF name → canonical name; null for a tensor that is safe to ignore; undefined when unknown. */
export function hfToCanonical(name: string): string | null | undefined {
  if (HF_IGNORED.test(name)) return null;
  const g = HF_GLOBAL[name];
  if (g) return g;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const k = HF_LAYER[m[2]];
  return k ? `layers.${Number(m[1])}.${k}` : undefined;
}

/** canonical → HF name (the writer's inverse). */
export function canonicalToHf(name: string): string {
  for (const [hf, c] of Object.entries(HF_GLOBAL)) if (c === name) return hf;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [hf, c] of Object.entries(HF_LAYER)) if (c === m[2]) return `model.layers.${m[1]}.${hf}`;
  throw new Error(`no HF name for canonical tensor "${name}"`);
}

const GGUF_LAYER: Record<string, string> = {
  'attn_norm.weight': 'attn_norm',
  'attn_q.weight': 'wq', 'attn_q.bias': 'bq', 'attn_k.weight': 'wk', 'attn_k.bias': 'bk',
  'attn_v.weight': 'wv', 'attn_v.bias': 'bv', 'attn_output.weight': 'wo',
  'ffn_norm.weight': 'ffn_norm', 'ffn_gate.weight': 'w1', 'ffn_down.weight': 'w2', 'ffn_up.weight': 'w3',
};
const GGUF_GLOBAL: Record<string, string> = {
  'token_embd.weight': 'tok_embeddings', 'output_norm.weight': 'norm', 'output.weight': 'output',
};

/** GGUF (llama.cpp) name → canonical; undefined when unknown. `rope_freqs.weight` is handled by the config. */
export function ggufToCanonical(name: string): string | undefined {
  const g = GGUF_GLOBAL[name];
  if (g) return g;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const k = GGUF_LAYER[m[2]];
  return k ? `layers.${Number(m[1])}.${k}` : undefined;
}

export function canonicalToGguf(name: string): string {
  for (const [g, c] of Object.entries(GGUF_GLOBAL)) if (c === name) return g;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [g, c] of Object.entries(GGUF_LAYER)) if (c === m[2]) return `blk.${m[1]}.${g}`;
  throw new Error(`no GGUF name for canonical tensor "${name}"`);
}
