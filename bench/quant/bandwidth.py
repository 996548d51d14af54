# The device memory bandwidth floor of a batch-1 decode step, measured on this GPU (torch): a read-only reduction
# of a 4 GiB buffer of random values (torch.sum, which reads each byte once), median of 20 after warm-up, timed with
# CUDA events; also a device-to-device copy (read + write counted) for comparison. Prints one JSON line; the read
# figure (GB/s) is what bench/quant/stack.ts divides the weights a decode step reads by.
#   python3 bench/quant/bandwidth.py [GIB]
import json
import sys

import torch

gib = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
n = int(gib * (1 << 30)) // 4
x = torch.randn(n, device="cuda", dtype=torch.float32)
y = torch.empty_like(x)


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    out.sort()
    return out[len(out) // 2]


read_ms = timed(lambda: x.sum())
copy_ms = timed(lambda: y.copy_(x))
nbytes = n * 4
print(json.dumps({
    "device": torch.cuda.get_device_name(0), "bytes": nbytes,
    "readGBps": nbytes / (read_ms * 1e6), "copyGBps": 2 * nbytes / (copy_ms * 1e6), "readMs": read_ms, "copyMs": copy_ms,
}))
