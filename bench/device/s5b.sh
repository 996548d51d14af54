#!/usr/bin/env bash
# next session, call B (≈ 8 min, right after s5a on the same warm machine): the 8B quant stack (17) with the GEMV
# variant s5a found fastest for Q4_K (/tmp/qgemv.choice; QGEMV=... overrides): Q4_K_M / Q8_0 swap TTFT (bar ≤ 0.12 s),
# batch-1 decode against the bandwidth floor (bar ≥ 70 %), the gateway path, and CUDA vs CPU logits on the whole
# 8B-shaped files (exact mode at 0.05, default mode by argmax and relative RMS).
source bench/device/lib.sh
CAP=${CAP:-560}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
command -v node >/dev/null || source scripts/uncarry.sh > $R/build.log 2>&1
[ -f native/build/swapserve_cuda.node ] || source scripts/uncarry.sh > $R/build.log 2>&1
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
QG=${QGEMV:-$(cat /tmp/qgemv.choice 2>/dev/null || echo int16)}
echo "qgemv $QG; build $(el)"
T=$(( $(left) - 10 ))
mkdir -p $R/quant; SWAPSERVE_QUANT_GEMV=$QG OUT=$R/quant QUANT_SKIP_BUILD=1 BUDGET_S=$T timeout $((T + 10)) bash bench/quant/stack_device.sh > /dev/null 2>&1; echo "quant stack rc=$? $(el)"
grep -E "^\[quant stack\]|✖|stack rc|gateway rc|cuda test rc|ℹ .*(exact|default) step" $R/quant/quant-stack.log | cut -c1-400; cat $R/quant/quant-stack.md
echo "done $(el)"
