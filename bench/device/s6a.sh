#!/usr/bin/env bash
# next session, call A (≈ 5 min): issue 18's batch-64 attention and issue 17's 8B drift.
#   1. engine_dev ops: the v2 decode attention (SWAPSERVE_CUDA_ATTN=v2, decode_attention_v2.cu) against the CPU
#      reference (its 26 "decode attention v2" checks must pass) beside the existing kernels;
#   2. the decode sweep with CUDA graphs, default attention and v2, and the per-op profile at batch 1 and 64 of both;
#   3. bench/quant/drift.ts on the 8B Q4_K_M file: CUDA exact vs default vs CPU (rounding amplified, or a real gap?).
source bench/device/lib.sh
CAP=${CAP:-560}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 10 )); [ $l -gt $1 ] && l=$1; [ $l -lt 10 ] && l=10; echo $l; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
command -v node >/dev/null && [ -d node_modules ] || source scripts/uncarry.sh > $R/build.log 2>&1
export PATH=/tmp/bin:$PATH SWAPSERVE_SHARED_DATA=$PWD/.carry/data
M=/tmp/quant-models; mkdir -p $M
[ -f $M/llama8b-q4_k_m.gguf ] || (node --import tsx bench/quant/random_gguf.ts $M --shape 8b --types q4_k_m > $R/write.log 2>&1; echo "write rc=$?" >> $R/write.log) &
WR=$!
bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "dev build rc=$? $(el)"; tail -1 $R/dev-build.log
B=/tmp/swapserve-engine-dev/engine_dev
timeout $(lim 150) $B ops > $R/ops.log 2>&1; echo "ops rc=$? $(el)"; grep -cE "PASS" $R/ops.log; grep -E "FAIL|mismatch" $R/ops.log | head -10; grep -E "decode attention v2" $R/ops.log | head -30
for a in v1 v2; do
  SWAPSERVE_CUDA_ATTN=$a SWAPSERVE_CUDA_GRAPHS=1 timeout $(lim 100) $B bench sweep > $R/sweep-$a.log 2>&1; echo "sweep attn=$a rc=$? $(el)"; grep -E "^BENCH \| [0-9]" $R/sweep-$a.log
  SWAPSERVE_CUDA_ATTN=$a SWAPSERVE_CUDA_PROFILE=1 BENCH_SWEEP_BATCHES=1,64 timeout $(lim 90) $B bench sweep > $R/profile-$a.log 2> $R/profile-$a.err; echo "profile attn=$a rc=$? $(el)"
  awk -f bench/engine/dev/profile_table.awk $R/profile-$a.err | tee $R/profile-$a.md | grep -E "^batch|attention"
done
wait $WR; tail -1 $R/write.log 2>/dev/null
timeout $(lim 150) node --import tsx bench/quant/drift.ts $M/llama8b-q4_k_m.gguf > $R/drift.log 2>&1; echo "drift rc=$? $(el)"; tail -8 $R/drift.log
echo "done $(el)"
