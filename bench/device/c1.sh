#!/usr/bin/env bash
# call 1: build; templates; CUDA correctness; engine ops + decode sweep (graphs off/on); quant GEMV vs ggml; grammar
source bench/device/lib.sh
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; git log -1 --format=%h 2>/dev/null; date -u +%FT%TZ; } | tee $R/env.log
(python3 bench/swap/hf_baseline.py make /tmp/m8b > $R/make.log 2>&1; echo "make rc=$?" >> $R/make.log) &
MAKE=$!
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
source scripts/uncarry.sh > $R/build.log 2>&1 || echo "BUILD FAILED"
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
(bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "rc=$?" >> $R/dev-build.log) &
DB=$!
tail -3 $R/build.log; echo "build $(el)"
mkdir -p $R/tpl; timeout 60 python3 bench/templates/check_hf.py $R/tpl/hf-renders.json > $R/tpl/log 2>&1; echo "templates rc=$? $(el)"; tail -3 $R/tpl/log
timeout 200 node test/run.mjs test/engine/cuda.test.ts test/engine/cuda-sampling.test.ts test/quant/cuda.test.ts > $R/cuda-tests.log 2>&1; echo "cuda tests rc=$? $(el)"
grep -E "^ℹ (pass|fail|skipped)|✖" $R/cuda-tests.log | head -30
wait $DB; tail -2 $R/dev-build.log; BIN=/tmp/swapserve-engine-dev/engine_dev
timeout 120 $BIN ops > $R/ops.log 2>&1; echo "ops rc=$? $(el)"; grep -ciE "fail|mismatch" $R/ops.log; tail -4 $R/ops.log
timeout 110 $BIN bench sweep > $R/sweep.log 2>&1; echo "sweep rc=$? $(el)"; tail -14 $R/sweep.log
SWAPSERVE_CUDA_GRAPHS=1 timeout 110 $BIN bench sweep > $R/sweep-graphs.log 2>&1; echo "sweep graphs rc=$? $(el)"; tail -14 $R/sweep-graphs.log
wait $QB; tail -2 $R/quant-build.log
timeout 90 /tmp/swapserve-quant-bench/gemv_bench 20 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -20 $R/gemv.log
mkdir -p $R/grammar
timeout 60 node --import tsx bench/grammar/mask.ts --docs 30 --out $R/grammar/mask.md > /dev/null 2> $R/grammar/mask.err; echo "mask rc=$? $(el)"
wait $MAKE; tail -1 $R/make.log
LEFT=$(( 470 - ($(date +%s)-S) )); [ $LEFT -gt 30 ] && { timeout $LEFT node --import tsx bench/grammar/decode.ts --model /tmp/m8b --backend cuda --tokens 128 --out $R/grammar/decode.md 2> $R/grammar/decode.err; echo "grammar decode rc=$? $(el)"; cat $R/grammar/decode.md; tail -3 $R/grammar/decode.err; }
echo "done $(el)"
