# Writes the fleet replay's three models once, with bench/headline/make_models.py's writer (random bf16 weights
# drawn on the GPU, safetensors shards): Llama-3.2-1B-like layers at three depths (16 / 22 / 28 layers of hidden
# 2048: 1.9 / 2.6 / 3.3 GB), so that the largest fits the GPU tier alone and no two do (each switch is a real swap).
# The vocabulary is the tiny llama3 tokenizer's (1,108 ids: bos 1103, eos 1104), which bench/fleet/replay.ts gives
# the models, so every sampled id decodes and prompt token counts are exact.
#   python3 bench/fleet/make_models.py DIR   -> DIR/m0, DIR/m1, DIR/m2
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "headline"))
from make_models import write  # noqa: E402
from transformers import LlamaConfig  # noqa: E402

if __name__ == "__main__":
    root = sys.argv[1]
    for i, layers in enumerate([16, 22, 28]):
        cfg = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8, num_hidden_layers=layers,
                          vocab_size=1108, max_position_embeddings=4096, rope_theta=500000.0, bos_token_id=1103, eos_token_id=1104,
                          rms_norm_eps=1e-5, tie_word_embeddings=False, torch_dtype="bfloat16")
        write(os.path.join(root, f"m{i}"), cfg)
