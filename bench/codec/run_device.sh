#!/usr/bin/env bash
# One device call (≈ 4–6 min on an H100; .carry carried: Node, node_modules), from the repo root:
#   OUT=$OUT bash bench/codec/run_device.sh          (LAYERS=4 for a quick smoke run)
# 1. writes an 8B-shaped Llama with Llama-like exponent statistics (bench/codec/make_model.py, SYNTHETIC) while
#    the addon builds (scripts/uncarry.sh) and bench/codec/gpu_bench.cu compiles;
# 2. gpu_bench: GPU decode throughput (GB/s of output), plain pinned copy vs compressed copy + decode pipelined,
#    bit-exact (the kernel alone, no runtime);
# 3. the CUDA runtime tests of the codec path (test/codec/host-tier.test.ts with SWAPSERVE_CODEC_VERIFY=1);
# 4. `swapserve bench codec`: through the real runtime and engine, raw vs compressed swapIn against the plain
#    pinned copy in the same run, and swap TTFT at 128 tokens (bar ≤ 0.22 s) with the compression ratio.
# Writes 4 files under $OUT: codec_gpu.log (gpu_bench), codec.md (tables), codec.json, run.log (build, tests, bench).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/codec-out}; mkdir -p "$OUT"
START=$(date +%s); el() { echo "+$(( $(date +%s) - START ))s"; }
M=${CODEC_MODEL:-/tmp/codec8b}
LOG="$OUT/run.log"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv; nproc; free -g | head -2
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"; } > "$LOG" 2>&1
cat "$LOG"
(python3 bench/codec/make_model.py "$M" "${LAYERS:-32}" > /tmp/codec-make.log 2>&1; echo "make rc=$?" >> /tmp/codec-make.log) &
MAKE=$!
CUDA=${CUDA_HOME:-/usr/local/cuda}; ARCH=${SWAPSERVE_CUDA_ARCH:-90a}; BIN=/tmp/swapserve-codec-gpu
("$CUDA/bin/nvcc" -std=c++17 -O3 "-gencode=arch=compute_${ARCH},code=sm_${ARCH}" -Inative/src --expt-relaxed-constexpr \
  -Xcompiler -O3,-pthread,-march=native -o "$BIN" bench/codec/gpu_bench.cu native/src/runtime/codec/cuda/decode.cu \
  native/src/runtime/codec/codec.cc native/src/runtime/hash.cc native/src/common/errors.cc > /tmp/codec-nvcc.log 2>&1; echo "nvcc rc=$?" >> /tmp/codec-nvcc.log) &
NVCC=$!
source scripts/uncarry.sh >> "$LOG" 2>&1 || echo "build failed" | tee -a "$LOG"
tail -2 "$LOG"; echo "addon built $(el)"
wait $NVCC; cat /tmp/codec-nvcc.log >> "$LOG"; tail -1 /tmp/codec-nvcc.log
wait $MAKE; cat /tmp/codec-make.log | tee -a "$LOG" | tail -2; echo "model done $(el)"  # no GPU work beside the timings
# 2. The kernel alone (it generates its own 8B weights in RAM; LAYERS honoured).
env -u OUT LAYERS=${LAYERS:-32} REPS=${REPS:-3} timeout 170 "$BIN" > "$OUT/codec_gpu.log" 2>&1; echo "gpu_bench rc=$? $(el)"
grep -vE "^\s*$" "$OUT/codec_gpu.log" | tail -25
# 3. The codec path of the runtime on the CUDA backend, checksums verified on every swap.
SWAPSERVE_CODEC_VERIFY=1 SWAPSERVE_TEST_BACKEND=cuda SWAPSERVE_BACKEND=cuda timeout 90 node test/run.mjs test/codec/host-tier.test.ts >> "$LOG" 2>&1
echo "codec tests (cuda, verify) rc=$? $(el)"; grep -E "^ℹ (pass|fail)|✖" "$LOG" | tail -8
# 4. Through the runtime and the engine.
timeout 240 node bin/swapserve.js bench codec --model "$M" --backend cuda --reps ${BENCH_REPS:-3} --prompt 128 \
  --out "$OUT/codec.json" --md "$OUT/codec.md" 2>> "$LOG" > /dev/null
echo "bench codec rc=$? $(el)"
grep "^\[bench codec\]" "$LOG" | tail -8
cat "$OUT/codec.md" 2>/dev/null
ls "$OUT"
