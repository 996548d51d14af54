"""Random Hugging Face models of each family the CUDA engine supports, and the writer of the engine's arena.

The arena layout is the project's (native/ts/types.ts): group 0 = embeddings, group i+1 = layer i, group L+1 =
final norm + output head, every tensor 256-byte aligned, canonical names. desc.txt carries the ModelDesc fields.
"""
import inspect
import math

import numpy as np
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

LLAMA3_SCALING = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                  'original_max_position_embeddings': 8192}
SMALL = dict(vocab_size=1024, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, rms_norm_eps=1e-5,
             max_position_embeddings=4096)

# name: (config class, model class, config fields, rope theta, rope scaling, write interleaved RoPE)
FAMILIES = {
    'llama2': (LlamaConfig, LlamaForCausalLM, dict(SMALL, num_attention_heads=8, num_key_value_heads=8), 10000.0,
               None, False),
    'llama2-interleaved': (LlamaConfig, LlamaForCausalLM, dict(SMALL, num_attention_heads=8, num_key_value_heads=8),
                           10000.0, None, True),
    'llama3.1': (LlamaConfig, LlamaForCausalLM,
                 dict(SMALL, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=131072), 500000.0,
                 LLAMA3_SCALING, False),
    'llama-linear': (LlamaConfig, LlamaForCausalLM, dict(SMALL, num_attention_heads=8, num_key_value_heads=4),
                     10000.0, {'rope_type': 'linear', 'factor': 2.0}, False),
    'mistral': (MistralConfig, MistralForCausalLM,
                dict(SMALL, num_attention_heads=8, num_key_value_heads=2, sliding_window=None), 1000000.0, None,
                False),
    'qwen2': (Qwen2Config, Qwen2ForCausalLM,
              dict(SMALL, num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True), 1000000.0, None,
              False),
}


def make_config(cls, fields, theta, scaling):
    """transformers 5 keeps RoPE settings in rope_parameters; older versions in rope_theta + rope_scaling."""
    kw = dict(fields)
    if 'rope_parameters' in inspect.signature(cls.__init__).parameters:
        rp = {'rope_type': 'default', 'rope_theta': theta}
        rp.update(scaling or {})
        kw['rope_parameters'] = rp
    else:
        kw['rope_theta'] = theta
        if scaling:
            kw['rope_scaling'] = scaling
    return cls(**kw)


def expected_inv_freq(head_dim, theta, scaling):
    """The engine's host computation (engine/cuda/backend.cc RopeInvFreq), to check HF took the config as meant."""
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    if scaling and scaling['rope_type'] == 'linear':
        inv = inv / scaling['factor']
    elif scaling and scaling['rope_type'] == 'llama3':
        f, lo, hi, old = (scaling['factor'], scaling['low_freq_factor'], scaling['high_freq_factor'],
                          scaling['original_max_position_embeddings'])
        wl = 2 * math.pi / inv
        smooth = (old / wl - lo) / (hi - lo)
        inv = np.where(wl < old / hi, inv, np.where(wl > old / lo, inv / f, (1 - smooth) * inv / f + smooth * inv))
    return inv.astype(np.float32)


def build(name, seed=0):
    ccls, mcls, fields, theta, scaling, interleaved = FAMILIES[name]
    cfg = make_config(ccls, fields, theta, scaling)
    torch.manual_seed(seed)
    model = mcls(cfg).eval()
    with torch.no_grad():  # HF initialises norms to 1 and biases to 0: randomise them so they are tested
        for pname, p in model.named_parameters():
            if 'norm' in pname:
                p.uniform_(0.5, 1.5)
            elif pname.endswith('bias'):
                p.normal_(0.0, 0.1)
    return cfg, model, theta, scaling, interleaved


def _bytes(t):
    t = t.detach().to('cpu').contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def _interleave_rows(w, heads, head_dim):
    """HF 'half' RoPE pairs (i, i+D/2); reorder each head's rows so that 'interleaved' pairs (2i, 2i+1) match."""
    perm = torch.stack([torch.arange(head_dim // 2), torch.arange(head_dim // 2) + head_dim // 2], 1).flatten()
    shape = w.shape
    return w.reshape(heads, head_dim, *shape[1:])[:, perm].reshape(shape)


def write_arena(model, cfg, theta, scaling, interleaved, dtype, out_dir):
    dname = {torch.float32: 'f32', torch.float16: 'f16', torch.bfloat16: 'bf16'}[dtype]
    m = model.model
    L = cfg.num_hidden_layers
    H, KVH = cfg.num_attention_heads, cfg.num_key_value_heads
    D = getattr(cfg, 'head_dim', None) or cfg.hidden_size // H
    groups, tensors, blobs = [], [], []
    off = 0

    def put(name, t):
        nonlocal off
        t = t.detach().to(dtype)
        b = _bytes(t)
        tensors.append((name, off))
        blobs.append((off, b))
        off += (len(b) + 255) // 256 * 256

    def group(items):
        start = off
        for n, t in items:
            put(n, t)
        groups.append((start, off))

    group([('tok_embeddings', m.embed_tokens.weight)])
    for i, layer in enumerate(m.layers):
        a, f = layer.self_attn, layer.mlp
        wq, wk = a.q_proj.weight, a.k_proj.weight
        bq = a.q_proj.bias
        bk = a.k_proj.bias
        if interleaved:
            wq, wk = _interleave_rows(wq, H, D), _interleave_rows(wk, KVH, D)
            if bq is not None:
                bq, bk = _interleave_rows(bq, H, D), _interleave_rows(bk, KVH, D)
        items = [(f'layers.{i}.attn_norm', layer.input_layernorm.weight), (f'layers.{i}.wq', wq)]
        if bq is not None:  # biases between the matrices: exercises the engine's unfused q/k/v path
            items += [(f'layers.{i}.bq', bq), (f'layers.{i}.wk', wk), (f'layers.{i}.bk', bk),
                      (f'layers.{i}.wv', a.v_proj.weight), (f'layers.{i}.bv', a.v_proj.bias)]
        else:
            items += [(f'layers.{i}.wk', wk), (f'layers.{i}.wv', a.v_proj.weight)]
        items += [(f'layers.{i}.wo', a.o_proj.weight), (f'layers.{i}.ffn_norm', layer.post_attention_layernorm.weight),
                  (f'layers.{i}.w1', f.gate_proj.weight), (f'layers.{i}.w3', f.up_proj.weight),
                  (f'layers.{i}.w2', f.down_proj.weight)]
        group(items)
    tail = [('norm', m.norm.weight)]
    if not cfg.tie_word_embeddings:
        tail.append(('output', model.lm_head.weight))
    group(tail)
    arena = bytearray(off)
    for o, b in blobs:
        arena[o:o + len(b)] = b
    with open(f'{out_dir}/arena.bin', 'wb') as fh:
        fh.write(arena)
    lines = [f'hidden {cfg.hidden_size}', f'intermediate {cfg.intermediate_size}', f'layers {L}', f'heads {H}',
             f'kv_heads {KVH}', f'head_dim {D}', f'vocab {cfg.vocab_size}',
             f'max_positions {cfg.max_position_embeddings}', f'rms_eps {cfg.rms_norm_eps}', f'rope_theta {theta}',
             f'rope_interleaved {1 if interleaved else 0}', f'arena_bytes {off}']
    if scaling:
        lines.append(f"rope_scaling {scaling['rope_type']}")
        lines.append(f"rope_factor {scaling['factor']}")
        if scaling['rope_type'] == 'llama3':
            lines += [f"rope_low {scaling['low_freq_factor']}", f"rope_high {scaling['high_freq_factor']}",
                      f"rope_orig {scaling['original_max_position_embeddings']}"]
    lines += [f'group {s} {e}' for s, e in groups]
    lines += [f'tensor {n} {o} {dname}' for n, o in tensors]
    with open(f'{out_dir}/desc.txt', 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    return D
