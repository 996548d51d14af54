#!/usr/bin/env bash
# One device call (~1–3 min on an H100): builds bench/codec/gpu_bench.cu with nvcc (no Node, no cuBLAS needed) and
# runs it on the Llama-3.1-8B bf16 shape with Llama-like exponent statistics (bench/codec/synth.ts): CPU encode,
# then in the same run the plain pinned copy of the raw bytes vs the compressed copy + GPU decode pipelined, and
# decode-only throughput, every result checked bit for bit. Results: $OUT/codec_gpu.md and $OUT/codec_gpu.log.
# Run from the repo root:  OUT=$OUT bash bench/codec/run_device.sh   (LAYERS=4 for a quick smoke run)
set -uo pipefail
OUT=${OUT:-/tmp/codec-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${SWAPSERVE_CUDA_ARCH:-90a}
BIN=${CODEC_GPU_BIN:-/tmp/swapserve-codec-gpu}
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), arch sm_$ARCH"
time "$CUDA/bin/nvcc" -std=c++17 -O3 "-gencode=arch=compute_${ARCH},code=sm_${ARCH}" -Inative/src --expt-relaxed-constexpr \
  -Xcompiler -O3,-pthread,-march=native -o "$BIN" \
  bench/codec/gpu_bench.cu native/src/runtime/codec/cuda/decode.cu native/src/runtime/codec/codec.cc \
  native/src/runtime/hash.cc native/src/common/errors.cc || exit 1
OUT="$OUT" timeout 400 "$BIN" 2>&1 | tee "$OUT/codec_gpu.log"
rc=${PIPESTATUS[0]}
echo "codec gpu bench rc=$rc"
exit "$rc"
