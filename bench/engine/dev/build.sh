#!/usr/bin/env bash
# Builds the CUDA engine's dev harness (bench/engine/dev/*.cc + the CUDA engine sources) on the GPU machine.
# Output: $ENGINE_DEV_BUILD/engine_dev (default /tmp/swapserve-engine-dev). Needs nvcc, cuBLAS and node_modules
# (for the N-API headers that common/weights.h includes). Run from anywhere; it works from the repo root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${SWAPSERVE_CUDA_ARCH:-90a}
OUT=${ENGINE_DEV_BUILD:-/tmp/swapserve-engine-dev}
mkdir -p "$OUT"
NV=("$CUDA/bin/nvcc" -std=c++17 -O3 "-gencode=arch=compute_${ARCH},code=sm_${ARCH}" -Inative/src
    --expt-relaxed-constexpr -DSWAPSERVE_CUDA -Xptxas -warn-spills)
CXX=(g++ -std=c++17 -O2 -g1 -Wall -Wno-sign-compare -DSWAPSERVE_CUDA -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS
     -Inative/src -Ibench/engine/dev -Inode_modules/node-api-headers/include -Inode_modules/node-addon-api
     "-I$CUDA/include")
SAMPLER=native/src/engine/sampler.cc
[ -f "$SAMPLER" ] || SAMPLER=bench/engine/dev/sampler_stub.cc
pids=(); objs=()
for f in native/src/engine/cuda/*.cu; do
  o="$OUT/$(basename "$f").o"; objs+=("$o"); "${NV[@]}" -c "$f" -o "$o" & pids+=($!)
done
for f in native/src/engine/cuda/*.cc native/src/common/errors.cc "$SAMPLER" bench/engine/dev/engine_dev.cc bench/engine/dev/dev_*.cc; do
  o="$OUT/$(basename "$f").o"; objs+=("$o"); "${CXX[@]}" -c "$f" -o "$o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
g++ -o "$OUT/engine_dev" "${objs[@]}" -L"$CUDA/lib64" -Wl,-rpath,"$CUDA/lib64" -lcublasLt -lcublas -lcudart -lpthread \
  -Wl,--unresolved-symbols=ignore-in-object-files  # N-API inline code from common/weights.h: never called here
echo "built $OUT/engine_dev"
