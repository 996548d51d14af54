# What a transformers user gets, measured on the GPU machine, for `swapserve bench swap --baseline`.
#   python3 bench/swap/hf_baseline.py make DIR             an 8B-shaped Llama (Llama-3.1-8B sizes), random bf16, save_pretrained
#   python3 bench/swap/hf_baseline.py measure DIR OUT.json from_pretrained(device_map='cuda') cold and warm,
#                                                             model.to('cuda', non_blocking=True) from pinned tensors
# Cold means the files' pages were dropped with posix_fadvise(DONTNEED) after os.sync() (checked with fincore-like
# mincore through mmap is left to the Node bench; here we report what fadvise was asked).
import json
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def log(msg):
    print(f"[hf_baseline] {msg}", file=sys.stderr, flush=True)


def config():
    return LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
        torch_dtype="bfloat16",
    )


def make(path):
    if os.path.exists(os.path.join(path, "config.json")):
        log(f"{path} exists")
        return
    t = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config())
    torch.cuda.synchronize()
    n = sum(p.numel() for p in model.parameters())
    log(f"random init on the GPU: {n / 1e9:.2f} B parameters in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    try:
        model.save_pretrained(path, max_shard_size="100GB")
    except TypeError:
        model.save_pretrained(path)
    log(f"save_pretrained: {time.perf_counter() - t:.1f} s; files: {sorted(os.listdir(path))}")
    del model
    torch.cuda.empty_cache()


def weight_files(path):
    return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]


def drop_cache(path):
    os.sync()
    for f in weight_files(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_from_pretrained(path):
    torch.cuda.synchronize()
    t = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(path, device_map="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    s = time.perf_counter() - t
    del model
    torch.cuda.empty_cache()
    return s


def measure(path, out):
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__}
    res["bytes"] = sum(os.path.getsize(f) for f in weight_files(path))
    torch.ones(1, device="cuda")  # context
    drop_cache(path)
    res["fromPretrainedColdS"] = timed_from_pretrained(path)
    log(f"from_pretrained(device_map='cuda'), page cache dropped: {res['fromPretrainedColdS']:.2f} s")
    warm = [timed_from_pretrained(path) for _ in range(2)]
    res["fromPretrainedWarmS"] = statistics.median(warm)
    res["fromPretrainedWarmAllS"] = warm
    log(f"from_pretrained(device_map='cuda'), page cache warm: {warm}")
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)  # CPU
    t = time.perf_counter()
    for p in model.parameters():
        p.data = p.data.pin_memory()
    for b in model.buffers():
        b.data = b.data.pin_memory()
    res["pinS"] = time.perf_counter() - t
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    res["toCudaPinnedS"] = time.perf_counter() - t
    log(f"pin_memory() of every tensor: {res['pinS']:.2f} s; model.to('cuda', non_blocking=True) from pinned: {res['toCudaPinnedS']:.3f} s")
    del model
    torch.cuda.empty_cache()
    with open(out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "measure":
        measure(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: hf_baseline.py make DIR | measure DIR OUT.json")
