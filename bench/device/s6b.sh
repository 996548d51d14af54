#!/usr/bin/env bash
# session 6, call B (≈ 6 min): issue 18's batch-64 bar with the fixed v2 decode attention.
#   s6a (2026-12-07) found v2 hanging at its first decode step: a full-mask shuffle that the rows past the context
#   skipped (fixed in decode_attention_v2.cu). Here:
#   1. engine_dev ops attn2: only the 26 v2 checks against the CPU reference (line-buffered, so a hang shows where);
#   2. if they pass: the decode sweep with CUDA graphs under v1 and auto (v2 from 16 decode rows), the per-op
#      profile at batch 1 and 64 under auto;
#   3. in the same run, transformers `generate` with static batches 1..256 (bench/engine/hf_bench.py --generate).
source bench/device/lib.sh
CAP=${CAP:-570}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 10 )); [ $l -gt $1 ] && l=$1; [ $l -lt 10 ] && l=10; echo $l; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
command -v node >/dev/null && [ -d node_modules ] || source scripts/uncarry.sh > $R/build.log 2>&1
B=/tmp/swapserve-engine-dev/engine_dev
bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "dev build rc=$? $(el)"; tail -1 $R/dev-build.log
timeout 45 $B ops attn2 > $R/ops-attn2.log 2>&1; echo "ops attn2 rc=$? $(el)"; grep -c PASS $R/ops-attn2.log; grep -E "FAIL|OPS" $R/ops-attn2.log | head -12
if grep -q "OPS attn2 PASSED" $R/ops-attn2.log; then
  for a in v1 auto; do
    SWAPSERVE_CUDA_ATTN=$a SWAPSERVE_CUDA_GRAPHS=1 timeout $(lim 100) $B bench sweep > $R/sweep-$a.log 2>&1; echo "sweep attn=$a rc=$? $(el)"; grep -E "^BENCH" $R/sweep-$a.log | tail -8
  done
  SWAPSERVE_CUDA_ATTN=auto SWAPSERVE_CUDA_PROFILE=1 BENCH_SWEEP_BATCHES=1,64 timeout $(lim 60) $B bench sweep > $R/profile-auto.log 2> $R/profile-auto.err; echo "profile attn=auto rc=$? $(el)"
  awk -f bench/engine/dev/profile_table.awk $R/profile-auto.err | tee $R/profile-auto.md | grep -E "^batch|attention"
  (cd bench/engine && timeout $(lim 300) python3 hf_bench.py --generate $R/hf_generate.json) > $R/hf-generate.log 2>&1; echo "hf generate rc=$? $(el)"; tail -14 $R/hf-generate.log
fi
echo "done $(el)"
