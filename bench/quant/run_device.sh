#!/usr/bin/env bash
# One GPU device call (~5 min): (1) quantized models on the CUDA backend vs the CPU backend (test/quant/cuda.test.ts:
# Q8_0, Q4_0, Q4_K, Q5_K, Q6_K and Q4_K_M tiny Llamas, prefill + decode logits; Q8_0 stories260K greedy ids through
# runtime + engine); (2) bench/quant/gemv_bench: each quantized GEMV on Llama-3.1-8B shapes in GB/s against the
# measured read floor, the bf16 GEMV, and ggml's CUDA mmvq kernels on the same weights when bench/quant/.ggml was
# carried (bash bench/quant/fetch_ggml.sh <ggml mirror> first). Run from the repo root; writes $OUT/quant-*.log.
set -uo pipefail
OUT=${OUT:-/tmp/quant-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/quant-device.log"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)" | tee -a "$OUT/quant-device.log"
# The GEMV bench builds from the sources alone (nvcc + cudart): start it while the addon builds.
(bash bench/quant/build.sh > "$OUT/quant-build.log" 2>&1 && timeout 150 "${QUANT_BUILD:-/tmp/swapserve-quant-bench}/gemv_bench" 20 > "$OUT/quant-gemv.log" 2>&1; echo "gemv rc=$?" >> "$OUT/quant-gemv.log") &
bench=$!
if ! command -v node >/dev/null; then source scripts/uncarry.sh > "$OUT/quant-uncarry.log" 2>&1; fi
timeout 200 node test/run.mjs test/quant/cuda.test.ts 2>&1 | tail -40 | tee "$OUT/quant-cuda-test.log"
wait $bench
cat "$OUT/quant-build.log" | tail -5
cat "$OUT/quant-gemv.log"
