#!/usr/bin/env python3
"""Correctness of the CUDA engine against Hugging Face transformers on the GPU machine.

For each family (random weights): last-position logits of a 100-token prompt, relative error ||ours - hf|| / ||hf||
(bar: 1e-2 in bf16), and 32 greedy tokens (bar: identical in fp32). The harness (bench/engine/dev: engine_dev hf DIR)
also reports chunked prefill vs one prefill, staggered batching vs alone, and a rejected bad token id.
Usage: python3 bench/engine/hf_check.py ENGINE_DEV [WORK_DIR] [JSON_OUT]
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

import hf_models

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def to_dtype(model, dtype):
    """model.to(dtype) also casts RoPE's inv_freq buffers; from_pretrained(dtype=...) keeps them fp32: keep fp32."""
    saved = {n: b.detach().float().clone() for n, b in model.named_buffers() if 'inv_freq' in n}
    model.to('cuda', dtype)
    for n, b in saved.items():
        mod = model.get_submodule(n.rsplit('.', 1)[0])
        setattr(mod, n.rsplit('.', 1)[1], b.to('cuda'))
    return model


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@torch.no_grad()
def last_logits(m, prompt):
    return m(input_ids=torch.tensor([prompt], device='cuda')).logits[0, -1].float().cpu().numpy()


@torch.no_grad()
def greedy(m, prompt, steps):
    out = m(input_ids=torch.tensor([prompt], device='cuda'), use_cache=True)
    past, toks, margins = out.past_key_values, [], []
    for i in range(steps):
        lg = out.logits[0, -1].float()
        top = torch.topk(lg, 2)
        toks.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        if i + 1 < steps:
            out = m(input_ids=torch.tensor([[toks[-1]]], device='cuda'), past_key_values=past, use_cache=True)
            past = out.past_key_values
    return toks, margins


def main():
    harness = sys.argv[1]
    work = sys.argv[2] if len(sys.argv) > 2 else '/tmp/hf-check'
    json_out = sys.argv[3] if len(sys.argv) > 3 else None
    rng = np.random.default_rng(1234)
    rows = []
    cases = [(f, torch.bfloat16) for f in hf_models.FAMILIES] + [(f, torch.float32) for f in hf_models.FAMILIES]
    cases.append(('llama2', torch.float16))
    built = {}
    for fam, dtype in cases:
        if fam not in built:
            built[fam] = hf_models.build(fam)
        cfg, model, theta, scaling, interleaved = built[fam]
        d = os.path.join(work, f'{fam}-{str(dtype).split(".")[-1]}')
        os.makedirs(d, exist_ok=True)
        D = hf_models.write_arena(model, cfg, theta, scaling, interleaved, dtype, d)
        V = cfg.vocab_size
        prompts = [rng.integers(0, V, n).tolist() for n in (100, 37, 70)]
        with open(f'{d}/prompts.txt', 'w') as fh:
            fh.write('\n'.join(' '.join(map(str, p)) for p in prompts) + '\n')
        m = to_dtype(model, dtype)
        inv_hf = m.model.rotary_emb.inv_freq.float().cpu().numpy()
        inv_err = float(np.abs(inv_hf - hf_models.expected_inv_freq(D, theta, scaling)).max() / inv_hf.max())
        hf = last_logits(m, prompts[0])
        truth = last_logits(to_dtype(m, torch.float32), prompts[0]) if dtype != torch.float32 else hf
        m = to_dtype(model, dtype)
        hf_toks, margins = greedy(m, prompts[0], 32)
        model.to('cpu', torch.float32)
        run = subprocess.run([harness, 'hf', d], capture_output=True, text=True, timeout=300)
        log = run.stdout + run.stderr
        if run.returncode != 0:
            rows.append(dict(family=fam, dtype=str(dtype), error=log[-2000:]))
            print(f'{fam} {dtype}: harness failed:\n{log[-2000:]}', flush=True)
            continue
        ours = np.fromfile(f'{d}/ours_logits.bin', dtype=np.float32)
        ours_toks = [int(x) for x in open(f'{d}/ours_greedy.txt').read().split()]
        same = 0
        while same < 32 and ours_toks[same] == hf_toks[same]:
            same += 1
        info = {ln.split()[1]: ' '.join(ln.split()[2:]) for ln in log.splitlines() if ln.startswith('HF-DEV')}
        row = dict(family=fam, dtype=str(dtype).split('.')[-1], head_dim=D, attn=m.config._attn_implementation,
                   inv_freq_vs_hf=inv_err, rel_vs_hf=rel(ours, hf), rel_vs_truth=rel(ours, truth),
                   hf_vs_truth=rel(hf, truth), greedy_equal=same,
                   first_mismatch_margin=(margins[same] if same < 32 else None), **info)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print('\n| family | dtype | D | logits rel. err vs HF | HF vs fp32-of-same-weights | ours vs that | greedy 32 equal '
          '| chunked prefill rel. err | batched vs alone | bad token |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    ok = True
    for r in rows:
        if 'error' in r:
            print(f"| {r['family']} | {r['dtype']} | | HARNESS FAILED | | | | | | |")
            ok = False
            continue
        bar = r['rel_vs_hf'] <= 1e-2 if r['dtype'] != 'float32' else r['greedy_equal'] == 32
        ok = ok and bar
        print(f"| {r['family']} | {r['dtype']} | {r['head_dim']} | {r['rel_vs_hf']:.2e} | {r['hf_vs_truth']:.2e} | "
              f"{r['rel_vs_truth']:.2e} | {r['greedy_equal']}/32 | {r.get('chunked_prefill_relerr', '?')} | "
              f"{r.get('batched_vs_alone', '?')} | {r.get('bad_token', '?')[:40]} |")
    print(f'HF-CHECK {"PASSED" if ok else "FAILED"}')
    if json_out:
        with open(json_out, 'w') as fh:
            json.dump(rows, fh, indent=1)


if __name__ == '__main__':
    main()
