#!/usr/bin/env bash
# next session, quant call (≈ 8 min; issue 17): the GEMVs with the split-K dp4a variants (dp4a-r1s4 / -r2s4: the
# 4096 x 14336 down projection, where ggml's q8_1 + mmvq still beats Q8_0 / Q4_0 by 0.87-0.89x), then the 8B quant
# stack under the per-type default kernels (Q8_0 float, Q4_0 / Q5_K / Q6_K int16, Q4_K dp4a: unset
# SWAPSERVE_QUANT_GEMV), which also runs test/quant/cuda.test.ts with the whole-8B criterion of session 6 (each CUDA
# mode within 1.25x the two modes' own distance of the CPU, same argmax).
source bench/device/lib.sh
CAP=${CAP:-560}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 10 )); [ $l -gt $1 ] && l=$1; [ $l -lt 10 ] && l=10; echo $l; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
command -v node >/dev/null && [ -f native/build/swapserve_cuda.node ] || source scripts/uncarry.sh > $R/build.log 2>&1
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
echo "build $(el)"
wait $QB; tail -3 $R/quant-build.log
timeout $(lim 170) /tmp/swapserve-quant-bench/gemv_bench 10 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -48 $R/gemv.log
unset SWAPSERVE_QUANT_GEMV
T=$(( $(left) - 10 ))
mkdir -p $R/quant; OUT=$R/quant QUANT_SKIP_BUILD=1 BUDGET_S=$T timeout $((T + 10)) bash bench/quant/stack_device.sh > /dev/null 2>&1; echo "quant stack rc=$? $(el)"
grep -E "^\[quant stack\]|✖|stack rc|gateway rc|cuda test rc|step [0-9]: exact vs cpu" $R/quant/quant-stack.log | cut -c1-400; cat $R/quant/quant-stack.md
# where a quantized batch-1 decode step spends its time (the profile of 24 steps of the Q4_K_M file, default kernels)
if [ -f /tmp/quant-models/llama8b-q4_k_m.gguf ] && [ $(left) -gt 60 ]; then
  DRIFT_PROFILE_STEPS=24 SWAPSERVE_CUDA_PROFILE=1 timeout $(lim 120) node --import tsx bench/quant/drift.ts /tmp/quant-models/llama8b-q4_k_m.gguf > $R/quant-profile.log 2> $R/quant-profile.err; echo "quant profile rc=$? $(el)"
  awk -f bench/engine/dev/profile_table.awk $R/quant-profile.err | tee $R/quant-profile.md
fi
echo "done $(el)"
