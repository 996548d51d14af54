# Writes an 8B-shaped Llama (Llama-3.1-8B sizes, 16.06 GB bf16, safetensors shards of <= 5 GB + index + config) whose
# weights have Llama-like exponent statistics (bench/codec/synth.ts: each row Gaussian with scale
# sigma * exp(0.3 z), calibrated to the ~2.6 bits of exponent entropy DFloat11, arXiv 2504.11651, reports for
# Llama-class bf16 weights; norms 1 + 0.1 z). SYNTHETIC: not a real model. Drawn on the GPU, written shard by shard.
#   python3 bench/codec/make_model.py DIR [LAYERS]
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SHARD = 5 * 10**9
# Per-tensor scale by kind (same as bench/codec/gpu_bench.cu; the exponent entropy does not depend on it).
SIGMA = {"embed_tokens": 0.015, "q_proj": 0.03, "k_proj": 0.03, "v_proj": 0.015, "o_proj": 0.015,
         "gate_proj": 0.02, "up_proj": 0.02, "down_proj": 0.02, "lm_head": 0.02}


def log(msg):
    print(f"[make_model] {msg}", file=sys.stderr, flush=True)


def main(path, layers):
    if os.path.exists(os.path.join(path, "model.safetensors.index.json")):
        log(f"{path} exists")
        return
    cfg = LlamaConfig(num_hidden_layers=layers, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                      bos_token_id=128000, eos_token_id=128001, hidden_size=4096, intermediate_size=14336,
                      num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      torch_dtype="bfloat16")
    os.makedirs(path, exist_ok=True)
    t = time.perf_counter()
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    shapes = [(n, tuple(p.shape)) for n, p in model.state_dict().items()]
    del model
    gen = torch.Generator(device="cuda").manual_seed(15)
    shards, cur, size = [], {}, 0
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        if cur and size + 2 * n > SHARD:
            shards.append(cur)
            cur, size = {}, 0
        if name.endswith("norm.weight"):
            w = 1 + 0.1 * torch.randn(shape, generator=gen, device="cuda")
        else:
            sigma = next((v for k, v in SIGMA.items() if k in name), 0.02)
            rows = shape[0]
            scale = sigma * torch.exp(0.3 * torch.randn((rows, 1), generator=gen, device="cuda"))
            w = torch.randn(shape, generator=gen, device="cuda") * scale
        cur[name] = w.to(torch.bfloat16)
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
    cfg.save_pretrained(path)
    cfile = os.path.join(path, "config.json")
    with open(cfile) as f:
        j = json.load(f)
    rs = j.get("rope_scaling")
    if isinstance(rs, dict) and rs.get("rope_type", rs.get("type")) not in ("llama3", "linear"):
        j.pop("rope_scaling")
    theta = (j.get("rope_parameters") or {}).get("rope_theta") or 500000.0
    j.setdefault("rope_theta", theta)
    j.setdefault("architectures", ["LlamaForCausalLM"])
    with open(cfile, "w") as f:
        json.dump(j, f, indent=2)
    log(f"{path}: {total / 1e9:.2f} GB in {len(shards)} shards, {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)
