#!/usr/bin/env bash
# next session, call A (≈ 6 min): build; the chaos pass mode again (11: the cuBLAS classification fix, 30652d1);
# the quantized GEMV variants (float, int16, dp4a) against ggml (17), the fastest for Q4_K written to
# /tmp/qgemv.choice for s5b; the CUDA-vs-CPU quant tests under int16 and dp4a (their tolerances); where batch-1 and
# batch-64 decode steps spend their time (18: per-op profile) and whether cuBLASLt autotuning lifts the decode sweep.
# s5b.sh follows on the same warm machine.
source bench/device/lib.sh
CAP=${CAP:-560}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 10 )); [ $l -gt $1 ] && l=$1; [ $l -lt 10 ] && l=10; echo $l; }  # a step's timeout: at most $1, within CAP
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
source scripts/uncarry.sh > $R/build.log 2>&1 || echo "BUILD FAILED"
# after uncarry: the dev harness needs node_modules' N-API headers (session 5 started it before: napi.h missing)
(bash bench/engine/dev/build.sh > $R/engine-dev-build.log 2>&1; echo "rc=$?" >> $R/engine-dev-build.log) &
EB=$!
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
tail -2 $R/build.log; echo "build $(el)"
OUT=$R/chaos BUILD=0 BACKEND=cuda MODE=pass timeout $(lim 100) bash bench/chaos/run_device.sh > $R/chaos.log 2>&1; echo "chaos rc=$? $(el)"
grep -hE "^\| |genuine" $R/chaos/sticky-*.md
wait $QB; tail -3 $R/quant-build.log
timeout $(lim 150) /tmp/swapserve-quant-bench/gemv_bench 10 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -45 $R/gemv.log
# The variant for s5b's 8B stack: the fastest for Q4_K (Q4_K_M is mostly Q4_K), as the engine's env names it.
QG=$(grep -iE "^  q4_k: " $R/gemv.log | sed -E 's/^ *[^:]+: ([a-z0-9]+).*/\1/')
case "$QG" in float|int16|dp4a) echo "$QG" > /tmp/qgemv.choice ;; *) echo "int16" > /tmp/qgemv.choice ;; esac
echo "qgemv choice: $(cat /tmp/qgemv.choice) (from '$QG')"
# issue 18: batch 64 reaches 67% of the roofline; the per-op events of batch-1 and batch-64 decode steps say why
wait $EB; tail -1 $R/engine-dev-build.log
SWAPSERVE_CUDA_PROFILE=1 BENCH_SWEEP_BATCHES=1,64 timeout $(lim 90) /tmp/swapserve-engine-dev/engine_dev bench sweep > $R/profile64.log 2> $R/profile64.err; echo "profile rc=$? $(el)"
grep -E "^BENCH \| (1|64) " $R/profile64.log; awk -f bench/engine/dev/profile_table.awk $R/profile64.err | tee $R/profile64.md
# issue 18: does cuBLASLt have faster algorithms than its first heuristic for the decode shapes? The sweep (graphs
# on) as shipped and with SWAPSERVE_CUDA_GEMM_AUTOTUNE=8 (each shape times 8 candidates, keeps the fastest), same run
for at in 0 8; do
  env $([ $at -gt 0 ] && echo SWAPSERVE_CUDA_GEMM_AUTOTUNE=$at) SWAPSERVE_CUDA_GRAPHS=1 timeout $(lim 100) /tmp/swapserve-engine-dev/engine_dev bench sweep > $R/sweep-at$at.log 2>&1; echo "sweep autotune=$at rc=$? $(el)"
  grep -E "^BENCH \| [0-9]" $R/sweep-at$at.log; grep -E "autotune T=(8|64|256) " $R/sweep-at$at.log | head -12
done
# the logits tolerances of test/quant/cuda.test.ts (tiny and 2-layer 8B-width models) under each opt-in GEMV
for v in int16 dp4a; do
  T=$(( $(left) - 5 )); [ $T -gt 100 ] && T=100; [ $T -lt 20 ] && break
  SWAPSERVE_QUANT_GEMV=$v timeout $T node test/run.mjs test/quant/cuda.test.ts > $R/cuda-test-$v.log 2>&1; echo "cuda test $v rc=$? $(el)"
  grep -E "^\s*(✔|✖)" $R/cuda-test-$v.log | cut -c1-300 | tail -16
done
echo "done $(el)"
