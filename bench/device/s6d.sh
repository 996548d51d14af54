#!/usr/bin/env bash
# session 6, call D (≈ 2.5 min; issue 18): the v2 decode attention after its fix, in the device time left: no addon build (engine_dev needs only the N-API headers
# from node_modules), the v2 checks, the sweep under v1 and auto, the per-op profile under auto, then transformers
# `generate` in whatever time is left.
source bench/device/lib.sh
CAP=${CAP:-230}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
lim(){ local l=$(( $(left) - 5 )); [ $l -gt $1 ] && l=$1; [ $l -lt 5 ] && l=5; echo $l; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader; date -u +%FT%TZ; } | tee $R/env.log
[ -d node_modules/node-addon-api ] || xz -dc .carry/nm.tar.xz | tar -xf - node_modules/node-addon-api node_modules/node-api-headers 2>/dev/null || xz -dc .carry/nm.tar.xz | tar -xf -
B=/tmp/swapserve-engine-dev/engine_dev
bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "dev build rc=$? $(el)"; tail -1 $R/dev-build.log
timeout 30 $B ops attn2 > $R/ops-attn2.log 2>&1; echo "ops attn2 rc=$? $(el)"; grep -c PASS $R/ops-attn2.log; grep -E "FAIL|OPS" $R/ops-attn2.log | head -12
if grep -q "OPS attn2 PASSED" $R/ops-attn2.log; then
  for a in v1 auto; do
    SWAPSERVE_CUDA_ATTN=$a SWAPSERVE_CUDA_GRAPHS=1 timeout $(lim 40) $B bench sweep > $R/sweep-$a.log 2>&1; echo "sweep attn=$a rc=$? $(el)"; grep -E "^BENCH" $R/sweep-$a.log | tail -8
  done
  SWAPSERVE_CUDA_ATTN=auto SWAPSERVE_CUDA_PROFILE=1 BENCH_SWEEP_BATCHES=1,64 timeout $(lim 30) $B bench sweep > $R/profile-auto.log 2> $R/profile-auto.err; echo "profile attn=auto rc=$? $(el)"
  awk -f bench/engine/dev/profile_table.awk $R/profile-auto.err > $R/profile-auto.md; grep -E "^batch|attention" $R/profile-auto.md
  if [ $(left) -gt 60 ]; then (cd bench/engine && timeout $(lim 300) python3 hf_bench.py --generate $R/hf_generate.json) > $R/hf-generate.log 2>&1; echo "hf generate rc=$? $(el)"; tail -14 $R/hf-generate.log; fi
fi
echo "done $(el)"
