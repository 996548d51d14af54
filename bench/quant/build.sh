#!/usr/bin/env bash
# Builds bench/quant/gemv_bench (swapserve's quantized GEMV + the bf16 GEMV, and ggml's mmvq when bench/quant/.ggml
# holds the files fetch_ggml.sh copies). Needs nvcc and the CUDA runtime only (no cuBLAS). Output: $QUANT_BUILD.
# First builds and runs int_units_check and dp4a_check (the int16 and dp4a GEMV units replayed on the CPU; either
# fails the build on a mismatch).
set -euo pipefail
cd "$(dirname "$0")/../.."
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${SWAPSERVE_CUDA_ARCH:-90a}
OUT=${QUANT_BUILD:-/tmp/swapserve-quant-bench}
mkdir -p "$OUT"
g++ -std=c++17 -O2 -Wall -Wextra -Inative/src bench/quant/int_units_check.cc -o "$OUT/int_units_check"
"$OUT/int_units_check" | tail -1
g++ -std=c++17 -O2 -Wall -Wextra -Inative/src bench/quant/dp4a_check.cc -o "$OUT/dp4a_check"
"$OUT/dp4a_check" | tail -1
NV=("$CUDA/bin/nvcc" -std=c++17 -O3 "-gencode=arch=compute_${ARCH},code=sm_${ARCH}" -Inative/src --expt-relaxed-constexpr -DSWAPSERVE_CUDA)
srcs=(native/src/engine/cuda/quant_gemv.cu native/src/engine/cuda/quant_dp4a.cu native/src/engine/cuda/gemv.cu native/src/engine/cuda/kernels.cu)
DEFS=()
pids=(); objs=()
if [ -f bench/quant/.ggml/src/ggml-cuda/mmvq.cu ]; then
  DEFS=(-DWITH_GGML)
  G=bench/quant/.ggml
  "${NV[@]}" -I$G/include -I$G/src -I$G/src/ggml-cuda -DGGML_USE_CUDA -w -c bench/quant/ggml_ref.cu -o "$OUT/ggml_ref.o" & pids+=($!)
  objs+=("$OUT/ggml_ref.o")
fi
for f in "${srcs[@]}"; do o="$OUT/$(basename "$f").o"; objs+=("$o"); "${NV[@]}" -c "$f" -o "$o" & pids+=($!); done
"${NV[@]}" "${DEFS[@]}" -c bench/quant/gemv_bench.cu -o "$OUT/gemv_bench.o" & pids+=($!)
objs+=("$OUT/gemv_bench.o")
g++ -std=c++17 -O2 -Inative/src -I"$CUDA/include" -c native/src/common/errors.cc -o "$OUT/errors.o" & pids+=($!)
objs+=("$OUT/errors.o")
for p in "${pids[@]}"; do wait "$p"; done
g++ -o "$OUT/gemv_bench" "${objs[@]}" -L"$CUDA/lib64" -Wl,-rpath,"$CUDA/lib64" -lcudart -lpthread
echo "built $OUT/gemv_bench ${DEFS[*]}"
