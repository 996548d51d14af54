#!/usr/bin/env bash
# next session, call A (≈ 8 min): build; the chaos pass mode again (11: the cuBLAS classification fix, 30652d1);
# the quantized GEMV against ggml (17); the quant stack (17: Q4_K_M / Q8_0 swap, decode vs the bandwidth floor, and
# CUDA vs CPU logits on the whole 8B-shaped files).
source bench/device/lib.sh
CAP=${CAP:-500}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
(bash bench/engine/dev/build.sh > $R/engine-dev-build.log 2>&1; echo "rc=$?" >> $R/engine-dev-build.log) &
EB=$!
source scripts/uncarry.sh > $R/build.log 2>&1 || echo "BUILD FAILED"
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
tail -2 $R/build.log; echo "build $(el)"
OUT=$R/chaos BUILD=0 BACKEND=cuda MODE=pass timeout 100 bash bench/chaos/run_device.sh > $R/chaos.log 2>&1; echo "chaos rc=$? $(el)"
grep -hE "^\| |genuine" $R/chaos/sticky-*.md
wait $QB; tail -1 $R/quant-build.log
timeout 60 /tmp/swapserve-quant-bench/gemv_bench 10 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -32 $R/gemv.log
# issue 18: batch 64 reaches 67% of the roofline; the per-op events of batch-1 and batch-64 decode steps say why
wait $EB; tail -1 $R/engine-dev-build.log
SWAPSERVE_CUDA_PROFILE=1 BENCH_SWEEP_BATCHES=1,64 timeout 90 /tmp/swapserve-engine-dev/engine_dev bench sweep > $R/profile64.log 2> $R/profile64.err; echo "profile rc=$? $(el)"
grep -E "^BENCH \| (1|64) " $R/profile64.log; awk -f bench/engine/dev/profile_table.awk $R/profile64.err | tee $R/profile64.md
T=$(( $(left) - 10 )); [ $T -gt 330 ] && T=330
# the int16 GEMV (opt-in until measured) through the whole stack: decode vs the bandwidth floor, CUDA vs CPU logits
mkdir -p $R/quant; SWAPSERVE_QUANT_GEMV=${QGEMV:-int16} OUT=$R/quant QUANT_SKIP_BUILD=1 BUDGET_S=$T timeout $((T + 10)) bash bench/quant/stack_device.sh > /dev/null 2>&1; echo "quant stack rc=$? $(el)"
grep -E "^\[quant stack\]|✖|stack rc|gateway rc|cuda test rc" $R/quant/quant-stack.log | cut -c1-220; cat $R/quant/quant-stack.md
echo "done $(el)"
