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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "headline"))
import make_models  # noqa: E402  (the shared shard writer)

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


def draw_qwen(name, shape, gen):
    """Norms 1, biases 0, every other tensor N(0, 0.02), drawn on the GPU."""
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=torch.bfloat16, device="cuda")
    return make_models.draw_plain(name, shape, gen)


def write(path, shape):
    if os.path.exists(os.path.join(path, "config.json")):
        log(f"{path} exists")
        return
    os.makedirs(path, exist_ok=True)
    t = time.perf_counter()
    h, inter, layers, heads, kv, vocab, tied = shape
    total, nshards = make_models.write_shards(path, list(tensors(*shape)), draw_qwen, layers)
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": h, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
        "tie_word_embeddings": tied, "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": None,
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    log(f"{path}: {total / 1e9:.2f} GB in {nshards} shards, {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    root = sys.argv[1]
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(SHAPES)
    for name in names:
        write(os.path.join(root, f"qwen2.5-{name}"), SHAPES[name])
