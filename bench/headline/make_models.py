# Writes the headline benchmark's three models, once: Llama-architecture configs from transformers at the sizes of
# Llama-3.1-8B (16.06 GB), Mistral-7B (14.48 GB) and an 11B shape (22.2 GB; 46 Llama-3 layers: a stand-in for
# Falcon-11B, whose own architecture swapserve's engine does not run), random bf16 weights (N(0, 0.02), norms 1),
# safetensors shards of at most 5 GB with an index, as `save_pretrained` lays them out.
#   python3 bench/headline/make_models.py DIR      -> DIR/llama8b, DIR/mistral7b, DIR/l11b
# Parameter names and shapes come from transformers' LlamaForCausalLM built on the meta device; the values are drawn
# on the GPU (fast) and written shard by shard.
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SHARD = 5 * 10**9


def configs():
    common = dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                  rms_norm_eps=1e-5, tie_word_embeddings=False, torch_dtype="bfloat16")
    return {
        "llama8b": LlamaConfig(num_hidden_layers=32, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                               bos_token_id=128000, eos_token_id=128001, **common),
        "mistral7b": LlamaConfig(num_hidden_layers=32, vocab_size=32000, max_position_embeddings=32768, rope_theta=1000000.0,
                                 bos_token_id=1, eos_token_id=2, **common),
        "l11b": LlamaConfig(num_hidden_layers=46, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                            bos_token_id=128000, eos_token_id=128001, **common),
    }


def log(msg):
    print(f"[make_models] {msg}", file=sys.stderr, flush=True)


def draw_plain(name, shape, gen):
    """The default weights: norms 1, every other tensor N(0, 0.02), drawn on the GPU."""
    if name.endswith("norm.weight"):
        return torch.ones(shape, dtype=torch.bfloat16, device="cuda")
    return (torch.randn(shape, generator=gen, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16)


def write_shards(path, shapes, draw, seed):
    """Draws each (name, shape) with draw(name, shape, gen) on the GPU and writes bf16 safetensors shards of <= SHARD
    bytes + the index at path. Returns (total bytes, shard count)."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    shards, cur, size = [], {}, 0
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        if cur and size + 2 * n > SHARD:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = draw(name, shape, gen).to(torch.bfloat16)
        size += 2 * n
    shards.append(cur)
    total = sum(2 * t_.numel() for s in shards for t_ in s.values())
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
    return total, len(shards)


def write(path, cfg, draw=draw_plain, seed=None):
    """Writes cfg's model at path as bf16 safetensors shards + index + config; draw(name, shape, gen) makes each tensor."""
    if os.path.exists(os.path.join(path, "model.safetensors.index.json")):
        log(f"{path} exists")
        return
    os.makedirs(path, exist_ok=True)
    t = time.perf_counter()
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    shapes = [(n, tuple(p.shape)) for n, p in model.state_dict().items()]
    del model
    total, nshards = write_shards(path, shapes, draw, len(shapes) if seed is None else seed)
    cfg.save_pretrained(path)
    # transformers 5 may write RoPE settings as rope_parameters / a "default" rope_scaling: keep the plain keys
    # every reader knows (rope_theta; rope_scaling only for llama3 / linear scaling).
    cfile = os.path.join(path, "config.json")
    with open(cfile) as f:
        j = json.load(f)
    rs = j.get("rope_scaling")
    if isinstance(rs, dict) and rs.get("rope_type", rs.get("type")) not in ("llama3", "linear"):
        j.pop("rope_scaling")
    theta = (j.get("rope_parameters") or {}).get("rope_theta") or getattr(cfg, "rope_theta", None)
    if theta and "rope_theta" not in j:
        j["rope_theta"] = theta
    j.setdefault("architectures", ["LlamaForCausalLM"])
    with open(cfile, "w") as f:
        json.dump(j, f, indent=2)
    log(f"{path}: {total / 1e9:.2f} GB in {nshards} shards, {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    root = sys.argv[1]
    for name, cfg in configs().items():
        write(os.path.join(root, name), cfg)
