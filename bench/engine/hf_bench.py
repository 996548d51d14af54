#!/usr/bin/env python3
"""The alternative, timed on the same machine as the engine bench: transformers (torch, sdpa) on the
Llama-3.1-8B shape with random bf16 weights. Prefill of 128 and 2,048 tokens (only the last position's logits, as
the engine computes), and greedy decode steps with the KV cache at batch 1 and 8 after a 128-token prompt.
With --generate: only `generate` with static batches of 1, 8, 32, 64, 128, 256 prompts of 512 random tokens
(greedy, the KV cache transformers makes by default), decode tokens/s = B x 32 / (time of 33 new tokens - time of 1):
the decode sweep's comparison (bench/engine/dev/dev_bench.cc).
Usage: python3 bench/engine/hf_bench.py [--generate] [JSON_OUT]
"""
import json
import statistics
import sys
import time

import torch

import hf_models
from transformers import LlamaConfig, LlamaForCausalLM


def timed(fn, warm, reps):
    out = []
    for i in range(warm + reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        if i >= warm:
            out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)


@torch.no_grad()
def generate_sweep(model, cfg, res):
    ctx, new = 512, 32
    print('HF-BENCH | batch | ctx | ms/step | tokens/s |', flush=True)
    print('HF-BENCH |---|---|---|---|', flush=True)
    for B in (1, 8, 32, 64, 128, 256):
        ids = torch.randint(0, cfg.vocab_size, (B, ctx), device='cuda')
        mask = torch.ones_like(ids)
        kw = dict(input_ids=ids, attention_mask=mask, do_sample=False, pad_token_id=0)
        try:
            reps = 2 if B < 64 else 1  # a batch of 256 prefills 131K tokens per call
            t1 = timed(lambda: model.generate(**kw, max_new_tokens=1, min_new_tokens=1), 1, reps)
            tn = timed(lambda: model.generate(**kw, max_new_tokens=new + 1, min_new_tokens=new + 1), 1, reps)
        except torch.cuda.OutOfMemoryError:
            print(f'HF-BENCH | {B} | {ctx} | out of memory | - |', flush=True)
            torch.cuda.empty_cache()
            continue
        ms = (tn - t1) / new
        res[f'generate_b{B}_ms'] = ms
        print(f'HF-BENCH | {B} | {ctx}-{ctx + new} | {ms:.2f} | {B * 1000 / ms:.0f} |', flush=True)
        del ids, mask
        torch.cuda.empty_cache()


@torch.no_grad()
def main():
    gen_only = '--generate' in sys.argv
    args = [a for a in sys.argv[1:] if a != '--generate']
    cfg = hf_models.make_config(LlamaConfig, dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                                  max_position_embeddings=131072, rms_norm_eps=1e-5,
                                                  tie_word_embeddings=False), 500000.0, hf_models.LLAMA3_SCALING)
    cfg._attn_implementation = 'sdpa'
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    t0 = time.perf_counter()
    with torch.device('cuda'):
        model = LlamaForCausalLM(cfg).eval()
    torch.cuda.synchronize()
    print(f'HF-BENCH built on the GPU in {time.perf_counter() - t0:.1f} s; attn={model.config._attn_implementation}; '
          f'torch {torch.__version__}; {torch.cuda.get_device_name()}', flush=True)
    res = {}
    if gen_only:
        generate_sweep(model, cfg, res)
        if args:
            with open(args[0], 'w') as fh:
                json.dump(res, fh, indent=1)
        return
    for n in (128, 2048):
        ids = torch.randint(0, cfg.vocab_size, (1, n), device='cuda')
        res[f'prefill_{n}_ms'] = timed(lambda: model(input_ids=ids, logits_to_keep=1, use_cache=False), 3, 10)
        print(f'HF-BENCH prefill {n}: {res[f"prefill_{n}_ms"]:.2f} ms', flush=True)
    for B in (1, 8):
        ids = torch.randint(0, cfg.vocab_size, (B, 128), device='cuda')
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
        steps = []
        for i in range(48):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1)
            nxt.cpu()
            if i >= 8:
                steps.append((time.perf_counter() - t0) * 1e3)
        ms = statistics.median(steps)
        res[f'decode_b{B}_ms'] = ms
        print(f'HF-BENCH decode batch {B}: {ms:.2f} ms/step, {B * 1000 / ms:.1f} tokens/s', flush=True)
    if args:
        with open(args[0], 'w') as fh:
            json.dump(res, fh, indent=1)


if __name__ == '__main__':
    main()
