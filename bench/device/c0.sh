#!/usr/bin/env bash
# short call: build; templates vs transformers; CUDA correctness of everything new; op checks; GEMV vs ggml
EXTRA='$R/tpl/hf-renders.json'
source bench/device/lib.sh
CAP=${CAP:-300}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; git log -1 --format=%h; date -u +%FT%TZ; } | tee $R/env.log
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
mkdir -p $R/tpl; timeout 60 python3 bench/templates/check_hf.py $R/tpl/hf-renders.json > $R/tpl/log 2>&1; echo "templates rc=$? $(el)"; tail -3 $R/tpl/log
source scripts/uncarry.sh > $R/build.log 2>&1 || echo "BUILD FAILED"
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
(bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "rc=$?" >> $R/dev-build.log) &
DB=$!; tail -3 $R/build.log; echo "build $(el)"
timeout $(( $(left) - 60 )) node test/run.mjs test/engine/cuda.test.ts test/engine/cuda-sampling.test.ts test/quant/cuda.test.ts > $R/cuda-tests.log 2>&1; echo "cuda tests rc=$? $(el)"
grep -E "^ℹ (pass|fail|skipped)|✖" $R/cuda-tests.log | head -30
SWAPSERVE_TEST_BACKEND=cuda timeout 60 node test/run.mjs test/runtime/partial.test.ts > $R/partial-cuda.log 2>&1; echo "partial cuda rc=$? $(el)"; grep -E "^ℹ (pass|fail)|✖" $R/partial-cuda.log | head
wait $DB $QB; tail -n1 $R/dev-build.log $R/quant-build.log
[ $(left) -gt 25 ] && { timeout $(( $(left) - 20 )) /tmp/swapserve-engine-dev/engine_dev ops > $R/ops.log 2>&1; echo "ops rc=$? $(el)"; tail -5 $R/ops.log; }
[ $(left) -gt 15 ] && { timeout $(( $(left) - 5 )) /tmp/swapserve-quant-bench/gemv_bench 5 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -20 $R/gemv.log; }
echo "done $(el)"
