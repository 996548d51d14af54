#!/usr/bin/env bash
# session 8's plan, call A (≈ 7–8 min; issue 17): the folded quantized decode (engine tuning quantFold, written in
# session 8 without a GPU: compiled by nvcc, its kernels checked on the CPU under bench/simt/simt.h) checked against
# the CPU backend on the GPU, and timed.
#   1. the addon built from this tree (always: the fold is new C++), the two 8B-shaped files written meanwhile;
#   2. test/quant/cuda.test.ts on the tiny models and the 2-layer models at 8B row widths (every type and Q4_K_M):
#      the default and the folded decode against the CPU backend (the whole-8B test is s9b);
#   3. bench/quant/bandwidth.py, then bench/quant/decode_arms.ts on the Q4_K_M and Q8_0 files: default, graphs, fold,
#      fold+graphs, and fold+graphs with one attention context split (batch-1 step time beside the read floor, greedy
#      ids against the default arm's);
#   4. the per-op profile of a folded Q4_K_M step (bench/quant/drift.ts with SWAPSERVE_CUDA_QUANT_FOLD=1).
source bench/device/lib.sh
CAP=${CAP:-560}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 10 )); [ $l -gt $1 ] && l=$1; [ $l -lt 10 ] && l=10; echo $l; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
# Node and node_modules first, so the 8B writers run while the addon builds.
if ! command -v node >/dev/null; then
  xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && mkdir -p /tmp/bin && ln -sf /tmp/node /tmp/bin/node
  export PATH=/tmp/bin:$PATH
fi
[ -d node_modules ] || xz -dc .carry/nm.tar.xz | tar -xf -
start_8b_files
source scripts/uncarry.sh > $R/build.log 2>&1; echo "build rc=$? $(el)"; tail -3 $R/build.log
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
timeout $(lim 200) node --import tsx --test --test-reporter=spec test/quant/cuda.test.ts > $R/cuda-test.log 2>&1
echo "cuda test rc=$? $(el)"
grep -E "✔|✖|fold step|^# (pass|fail)" $R/cuda-test.log | cut -c1-400 | head -40
wait_8b_files
python3 bench/quant/bandwidth.py 4 > $R/bw.json 2> $R/bw.err; cat $R/bw.json
BW=$(python3 -c "import json; print(json.load(open('$R/bw.json'))['readGBps'])" 2>/dev/null || echo "")
for t in q4_k_m q8_0; do
  [ $(left) -gt 60 ] || { echo "decode arms $t skipped: $(left) s left"; continue; }
  # The last arm: decode attention in one context split (no combine kernel a layer) on top of fold + graphs.
  timeout $(lim 150) node --import tsx bench/quant/decode_arms.ts --model $M/llama8b-$t.gguf ${BW:+--bw-gbps $BW} \
    --arms 'default,graphs,fold,fold+graphs,fold+graphs+split1={"quantFold":true,"cudaGraphs":true,"attnSplits":1}' \
    --md $R/arms-$t.md > $R/arms-$t.log 2>&1
  echo "decode arms $t rc=$? $(el)"; cat $R/arms-$t.md 2>/dev/null || tail -5 $R/arms-$t.log
done
if [ $(left) -gt 50 ]; then
  SWAPSERVE_CUDA_QUANT_FOLD=1 DRIFT_PROFILE_STEPS=24 SWAPSERVE_CUDA_PROFILE=1 timeout $(lim 100) node --import tsx \
    bench/quant/drift.ts $M/llama8b-q4_k_m.gguf > $R/fold-profile.log 2> $R/fold-profile.err
  echo "fold profile rc=$? $(el)"; awk -f bench/engine/dev/profile_table.awk $R/fold-profile.err | tee $R/fold-profile.md
fi
echo "done $(el)"
