#!/usr/bin/env bash
# One device call: build the engine's dev harness, check every op, compare with transformers, time the engine and
# transformers on the Llama-3.1-8B shape. Results under $OUT (log + JSON). Run from the repo root, after
# `source scripts/uncarry.sh` (node_modules for the N-API headers; it also builds the addon), or with just
# node_modules/node-api-headers and node_modules/node-addon-api carried. STEPS picks steps (default: all but
# decode); decode = the decode-only bench.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/engine-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
bash bench/engine/dev/build.sh 2>&1 | grep -v "^$" | tail -30 || exit 1
BIN=${ENGINE_DEV_BUILD:-/tmp/swapserve-engine-dev}/engine_dev
STEPS=${STEPS:-ops hf hfexact bench hfbench}
for step in $STEPS; do
  echo "=== $step"
  case $step in
    ops) timeout 180 "$BIN" ops ;;
    hf) (cd bench/engine && timeout 400 python3 hf_check.py "$BIN" /tmp/hf-check "$OUT/hf_check.json") ;;
    hfexact) (cd bench/engine && SWAPSERVE_CUDA_EXACT=1 timeout 400 python3 hf_check.py "$BIN" /tmp/hf-check "$OUT/hf_check_exact.json" | tail -16) ;;
    bench) timeout 300 "$BIN" bench ewl ;;
    # decode steps only (BENCH_FLIPS: engine options to compare), the batch sweep 1..256 beside the roofline, and
    # transformers generate with static batches of the same sizes
    decode) timeout 240 "$BIN" bench decode
            (cd bench/engine && timeout 300 python3 hf_bench.py --generate "$OUT/hf_generate.json")
            # the sweep again with decode steps replayed as CUDA graphs (tuning cudaGraphs; a separate process, so
            # a failure there cannot cost the numbers above)
            SWAPSERVE_CUDA_GRAPHS=1 timeout 150 "$BIN" bench sweep ;;
    hfbench) (cd bench/engine && timeout 240 python3 hf_bench.py "$OUT/hf_bench.json") ;;
  esac
  echo "=== $step rc=$?"
done
