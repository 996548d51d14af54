# Floors and alternatives for `swapserve bench headline --baseline`, measured in a separate process while the
# swapserve stack is not running (memory), in the same device call:
#   cat / dd bs=64M of each model's files, page cache dropped (fdatasync + posix_fadvise DONTNEED, checked with
#   mincore) and cached; timed inside the child shell, from a process that holds no pinned memory and no CUDA context;
#   the plain pinned copy rate (one pinned buffer -> GPU, cudaMemcpyAsync through torch, CUDA events);
#   for the models named in --hf (default the 8B one): transformers from_pretrained(device_map='cuda') with the page
#   cache dropped and cached, model.to('cuda', non_blocking=True) from pinned CPU tensors, and the forward pass
#   (128 and 2,048-token prompts, last-token logits) that gives the first token.
#   python3 bench/headline/baselines.py DIR OUT.json [--hf llama8b[,mistral7b,...]] [--dd-cold llama8b,...]
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = ["llama8b", "mistral7b", "l11b"]
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def log(msg):
    print(f"[baselines] {msg}", file=sys.stderr, flush=True)


def files(d):
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]


def cached_fraction(path):
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        pages = (size + 4095) // 4096
        vec = (ctypes.c_ubyte * pages)()
        rc = libc.mincore(addr, size, vec)
        libc.munmap(addr, size)
        if rc != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return sum(b & 1 for b in vec) / pages
    finally:
        os.close(fd)


def drop(fs):
    for f in fs:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return max(cached_fraction(f) for f in fs)


def in_shell(cmd, fs):
    script = f's=$(date +%s%N); {cmd}; e=$(date +%s%N); echo $((e - s))'
    r = subprocess.run(["sh", "-c", script, "sh", *fs], capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1]) / 1e9


def cat(fs):
    return in_shell('cat "$@" > /dev/null', fs)


def dd(fs):
    return in_shell('for f in "$@"; do dd if="$f" of=/dev/null bs=64M 2>/dev/null || exit 1; done', fs)


def main():
    root, out = sys.argv[1], sys.argv[2]
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    hf = opts.get("--hf", "llama8b").split(",")
    dd_cold = opts.get("--dd-cold", "llama8b").split(",")
    res = {"models": {}}
    # 1. Files: no CUDA context and no pinned memory in this process yet.
    for m in MODELS:
        fs = files(os.path.join(root, m))
        r = res["models"][m] = {"bytes": sum(os.path.getsize(f) for f in fs)}
        r["cachedBeforeCold"] = drop(fs)
        r["catColdS"] = cat(fs)
        if m in dd_cold:
            r["cachedBeforeCold"] = max(r["cachedBeforeCold"], drop(fs))
            r["ddColdS"] = dd(fs)
        r["cachedBeforeWarm"] = min(cached_fraction(f) for f in fs)
        r["catWarmS"] = statistics.median([cat(fs) for _ in range(2)])
        r["ddWarmS"] = statistics.median([dd(fs) for _ in range(2)])
        log(f"{m}: {r['bytes'] / 1e9:.2f} GB; cat dropped {r['catColdS']:.2f} s (cached before {r['cachedBeforeCold'] * 100:.1f}%), "
            f"dd dropped {r.get('ddColdS', float('nan')):.2f} s; cached ({r['cachedBeforeWarm'] * 100:.1f}%): cat {r['catWarmS']:.2f} s, dd {r['ddWarmS']:.2f} s")
    with open(out, "w") as f:
        json.dump(res, f, indent=2)

    import torch
    import transformers
    from transformers import LlamaForCausalLM

    res.update(device=torch.cuda.get_device_name(0), torch=torch.__version__, transformers=transformers.__version__)
    # 2. The plain pinned copy rate.
    buf = torch.empty(2 << 30, dtype=torch.uint8, pin_memory=True)
    buf.fill_(7)
    dev = torch.empty_like(buf, device="cuda")
    times = []
    for _ in range(6):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dev.copy_(buf, non_blocking=True)
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1000)
    res["pinnedCopyGBps"] = buf.numel() / statistics.median(times[1:]) / 1e9
    log(f"pinned copy: {res['pinnedCopyGBps']:.1f} GB/s")
    del buf, dev
    torch.cuda.empty_cache()

    def from_pretrained(path):
        torch.cuda.synchronize()
        t = time.perf_counter()
        model = LlamaForCausalLM.from_pretrained(path, device_map="cuda", dtype=torch.bfloat16)
        torch.cuda.synchronize()
        s = time.perf_counter() - t
        del model
        torch.cuda.empty_cache()
        return s

    for m in hf:
        path = os.path.join(root, m)
        r = res["models"][m]
        fs = files(path)
        r["hfCachedBeforeCold"] = drop(fs)
        r["fromPretrainedColdS"] = from_pretrained(path)
        warm = [from_pretrained(path) for _ in range(2)]
        r["fromPretrainedWarmS"] = statistics.median(warm)
        log(f"{m}: from_pretrained(device_map='cuda') dropped {r['fromPretrainedColdS']:.2f} s, cached {warm}")
        model = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)  # CPU
        model.eval()
        t = time.perf_counter()
        for p in model.parameters():
            p.data = p.data.pin_memory()
        for b in model.buffers():
            b.data = b.data.pin_memory()
        r["pinS"] = time.perf_counter() - t
        torch.cuda.synchronize()
        t = time.perf_counter()
        model.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        r["toCudaPinnedS"] = time.perf_counter() - t
        r["forwardS"] = {}
        vocab = model.config.vocab_size
        with torch.inference_mode():
            for n in (128, 2048):
                ids = torch.randint(0, vocab, (1, n), device="cuda")
                ts = []
                for _ in range(4):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    model(input_ids=ids, logits_to_keep=1).logits.argmax(-1).item()
                    ts.append(time.perf_counter() - t)
                r["forwardS"][str(n)] = statistics.median(ts[1:])
                r.setdefault("forwardFirstS", {})[str(n)] = ts[0]
        log(f"{m}: pin_memory {r['pinS']:.2f} s; .to('cuda') from pinned {r['toCudaPinnedS']:.3f} s; forward {r['forwardS']} (first call {r['forwardFirstS']})")
        del model
        torch.cuda.empty_cache()
        with open(out, "w") as f:
            json.dump(res, f, indent=2)
    with open(out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
