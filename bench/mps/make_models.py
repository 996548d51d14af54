# Writes `swapserve bench mps`'s models once: the shapes of Qwen2.5-0.5B, 1.5B, 3B and 7B (hidden size, layers,
# heads, KV heads, MLP width, vocabulary, tied embeddings: from the public config.json of each Qwen/Qwen2.5-*B),
# random bf16 weights (N(0, 0.02), norms 1, biases 0) drawn on the GPU, safetensors shards of at most 5 GB with an
# index, and a config.json of model_type qwen2 with no eos_token_id (every request generates exactly its max tokens,
# so every arm does the same work). Tensor names and shapes are Qwen2ForCausalLM's.
#   python3 bench/mps/make_models.py DIR [0.5b,1.5b,3b,7b]  -> DIR/qwen2.5-0.5b ...
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

SHARD = 5 * 10**9
# name: (hidden, intermediate, layers, heads, kv_heads, vocab, tied)
SHAPES = {
    "0.5b": (896, 4864, 24, 14, 2, 151936, True),
    "1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "3b": (2048, 11008, 36, 16, 2, 151936, True),
    "7b": (3584, 18944, 28, 28, 4, 152064, False),
}


def log(msg):
    print(f"[make_models] {msg}", file=sys.stderr, flush=True)


def tensors(h, inter, layers, heads, kv, vocab, tied):
    hd = h // heads
    yield "model.embed_tokens.weight", (vocab, h)
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (h,)
        yield p + "self_attn.q_proj.weight", (heads * hd, h)
        yield p + "self_attn.q_proj.bias", (heads * hd,)
        yield p + "self_attn.k_proj.weight", (kv * hd, h)
        yield p + "self_attn.k_proj.bias", (kv * hd,)
        yield p + "self_attn.v_proj.weight", (kv * hd, h)
        yield p + "self_attn.v_proj.bias", (kv * hd,)
        yield p + "self_attn.o_proj.weight", (h, heads * hd)
        yield p + "post_attention_layernorm.weight", (h,)
        yield p + "mlp.gate_proj.weight", (inter, h)
        yield p + "mlp.up_proj.weight", (inter, h)
        yield p + "mlp.down_proj.weight", (h, inter)
    yield "model.norm.weight", (h,)
    if not tied:
        yield "lm_head.weight", (vocab, h)


def write(path, shape):
    if os.path.exists(os.path.join(path, "config.json")):
        log(f"{path} exists")
        return
    os.makedirs(path, exist_ok=True)
    t = time.perf_counter()
    h, inter, layers, heads, kv, vocab, tied = shape
    gen = torch.Generator(device="cuda").manual_seed(layers)
    shards, cur, size = [], {}, 0
    for name, shp in tensors(*shape):
        n = 1
        for d in shp:
            n *= d
        if cur and size + 2 * n > SHARD:
            shards.append(cur)
            cur, size = {}, 0
        if name.endswith("norm.weight"):
            cur[name] = torch.ones(shp, dtype=torch.bfloat16, device="cuda")
        elif name.endswith(".bias"):
            cur[name] = torch.zeros(shp, dtype=torch.bfloat16, device="cuda")
        else:
            cur[name] = (torch.randn(shp, generator=gen, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16)
        size += 2 * n
    shards.append(cur)
    total = sum(2 * x.numel() for s in shards for x in s.values())
    weight_map = {}
    for i, s in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: v.cpu() for k, v in s.items()}, os.path.join(path, fname), metadata={"format": "pt"})
        for k in s:
            weight_map[k] = fname
        s.clear()
        torch.cuda.empty_cache()
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": h, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": tied, "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": None,
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    log(f"{path}: {total / 1e9:.2f} GB in {len(shards)} shards, {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    root = sys.argv[1]
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(SHAPES)
    for name in names:
        write(os.path.join(root, f"qwen2.5-{name}"), SHAPES[name])
