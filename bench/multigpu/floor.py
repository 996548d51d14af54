"""The floor under `swapserve bench multigpu`'s swap figures (issue 16): plain pinned host -> GPU copies with torch, one
GPU alone and every GPU at once (one thread and one pinned buffer per GPU, started together), so the bench's aggregate
GB/s can be read against what the host's memory system and PCIe links give without swapserve.

usage: python3 bench/multigpu/floor.py [GiB per copy, default 4] [reps, default 3]   (prints a markdown table)
"""
import sys
import threading
import time

import torch

GIB = 1 << 30


def main():
    size = int(float(sys.argv[1]) * GIB) if len(sys.argv) > 1 else 4 * GIB
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n = torch.cuda.device_count()
    # The buffers are pinned by this one process, wherever the default policy puts them (first touch): on a
    # multi-socket host some GPUs then read across the socket link, which is what numactl-bound workers avoid.
    src, dst = [], []
    noise = torch.randint(0, 255, (size,), dtype=torch.uint8)  # drawn once (not zeros), copied into each pinned buffer
    for d in range(n):
        with torch.cuda.device(d):
            src.append(torch.empty(size, dtype=torch.uint8, pin_memory=True).copy_(noise))
            dst.append(torch.empty(size, dtype=torch.uint8, device=f"cuda:{d}"))

    def copy(d):
        with torch.cuda.device(d):
            dst[d].copy_(src[d], non_blocking=True)
            torch.cuda.synchronize(d)

    for d in range(n):  # warm-up
        copy(d)

    def alone(d):
        t0 = time.perf_counter()
        copy(d)
        return size / (time.perf_counter() - t0) / 1e9

    def together():
        barrier = threading.Barrier(n + 1)
        ends = [0.0] * n

        def run(d):
            barrier.wait()
            copy(d)
            ends[d] = time.perf_counter()

        ts = [threading.Thread(target=run, args=(d,)) for d in range(n)]
        for t in ts:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in ts:
            t.join()
        return n * size / (max(ends) - t0) / 1e9

    med = lambda xs: sorted(xs)[len(xs) // 2]
    single = {d: med([alone(d) for _ in range(reps)]) for d in range(n)}
    agg = med([together() for _ in range(reps)])
    print(f"### floor: pinned host -> GPU, {size / GIB:.1f} GiB per copy, torch {torch.__version__}, median of {reps}\n")
    print("| GPU | alone (GB/s) |\n| ---: | ---: |")
    for d, g in single.items():
        print(f"| {d} | {g:.2f} |")
    print(f"\n**all {n} at once: {agg:.2f} GB/s aggregate = {agg / (n * single[0]):.2f} of {n} x GPU 0 alone**\n")


if __name__ == "__main__":
    main()
