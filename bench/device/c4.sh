#!/usr/bin/env bash
# call 4 (≈ 7 min): issue 18's comparison in one run: the decode sweep 1..256 beside the roofline (CUDA graphs on)
# and transformers `generate` with static batches of the same sizes (bench/engine/hf_bench.py --generate; vLLM
# cannot be installed on the device machine: no network).
source bench/device/lib.sh
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
BIN=/tmp/swapserve-engine-dev/engine_dev
[ -x $BIN ] || { bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "dev build rc=$? $(el)"; }
SWAPSERVE_CUDA_GRAPHS=1 timeout 120 $BIN bench sweep > $R/sweep-graphs.log 2>&1; echo "sweep graphs rc=$? $(el)"; grep -E "^BENCH" $R/sweep-graphs.log | tail -12
LEFT=$(( 560 - ($(date +%s)-S) ))
(cd bench/engine && timeout $LEFT python3 hf_bench.py --generate $R/hf_generate.json) > $R/hf-generate.log 2>&1; echo "hf generate rc=$? $(el)"; tail -14 $R/hf-generate.log
echo "done $(el)"
