#!/usr/bin/env bash
# session 8's plan, call B (≈ 3–5 min; issue 17; after s9a on the same machine, which built the addon and wrote the
# files): the whole-8B CUDA-vs-CPU logits test (test/quant/cuda.test.ts with SWAPSERVE_QUANT_8B_FILES) with its
# three CUDA arms (exact, default, fold) and the near-tie argmax criterion. Replaces s8b.
source bench/device/lib.sh
command -v node >/dev/null && [ -f native/build/swapserve_cuda.node ] || source scripts/uncarry.sh > $R/build.log 2>&1
export PATH=/tmp/bin:$PATH LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}" SWAPSERVE_SHARED_DATA=$PWD/.carry/data
start_8b_files
wait_8b_files
SWAPSERVE_QUANT_8B_FILES="$M/llama8b-q8_0.gguf,$M/llama8b-q4_k_m.gguf" timeout ${TT:-420} node --import tsx --test --test-reporter=spec --test-name-pattern "whole 8B" test/quant/cuda.test.ts > $R/cuda-test.log 2>&1
echo "cuda test rc=$? $(el)"
grep -E "✔|✖|step [0-9]:|^# (pass|fail)" $R/cuda-test.log | cut -c1-600 | head -30
