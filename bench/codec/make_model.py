# Writes an 8B-shaped Llama (Llama-3.1-8B sizes, 16.06 GB bf16, safetensors shards of <= 5 GB + index + config) whose
# weights have Llama-like exponent statistics (bench/codec/synth.ts: each row Gaussian with scale
# sigma * exp(0.3 z), calibrated to the ~2.6 bits of exponent entropy DFloat11, arXiv 2504.11651, reports for
# Llama-class bf16 weights; norms 1 + 0.1 z). SYNTHETIC: not a real model. Drawn on the GPU, written shard by shard.
#   python3 bench/codec/make_model.py DIR [LAYERS]
import os
import sys

import torch
from transformers import LlamaConfig

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "headline"))
import make_models  # noqa: E402  (the shared writer: shards, index, config)

# Per-tensor scale by kind (same as bench/codec/gpu_bench.cu; the exponent entropy does not depend on it).
SIGMA = {"embed_tokens": 0.015, "q_proj": 0.03, "k_proj": 0.03, "v_proj": 0.015, "o_proj": 0.015,
         "gate_proj": 0.02, "up_proj": 0.02, "down_proj": 0.02, "lm_head": 0.02}


def draw_llama_like(name, shape, gen):
    """Norms 1 + 0.1 z; other tensors row-wise Gaussian with scale sigma * exp(0.3 z) (Llama-like exponents)."""
    if name.endswith("norm.weight"):
        return 1 + 0.1 * torch.randn(shape, generator=gen, device="cuda")
    sigma = next((v for k, v in SIGMA.items() if k in name), 0.02)
    scale = sigma * torch.exp(0.3 * torch.randn((shape[0], 1), generator=gen, device="cuda"))
    return torch.randn(shape, generator=gen, device="cuda") * scale


def main(path, layers):
    cfg = LlamaConfig(num_hidden_layers=layers, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                      bos_token_id=128000, eos_token_id=128001, hidden_size=4096, intermediate_size=14336,
                      num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      torch_dtype="bfloat16")
    make_models.write(path, cfg, draw=draw_llama_like, seed=15)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 32)
