#!/usr/bin/env bash
# session 4, call B (≈ 6 min, right after s4a on the same warm machine: addon, GEMV bench and engine dev harness
# built): compressed swap-in through the runtime (15), GEMV vs ggml (17), decode sweep (18) with what time is left.
source bench/device/lib.sh
CAP=${CAP:-380}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
command -v node >/dev/null || { export PATH=/tmp/bin:$PATH; }
export SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}" SWAPSERVE_SHARED_DATA=$PWD/.carry/data
[ -f native/build/swapserve_cuda.node ] && [ -x /tmp/node ] || { source scripts/uncarry.sh > $R/build.log 2>&1; echo "rebuilt $(el)"; }
git log -1 --format=%h | tee $R/env.log; nvidia-smi --query-gpu=name --format=csv,noheader | tee -a $R/env.log
(python3 bench/codec/make_model.py /tmp/codec8b 32 > $R/codec-make.log 2>&1; echo "make rc=$?" >> $R/codec-make.log) &
MAKE=$!
rm -rf /tmp/m8b
[ -x /tmp/swapserve-quant-bench/gemv_bench ] || bash bench/quant/build.sh > $R/quant-build.log 2>&1
{ timeout 40 /tmp/swapserve-quant-bench/gemv_bench 5 > $R/gemv.log 2>&1; echo "gemv rc=$? $(el)"; tail -20 $R/gemv.log; }
wait $MAKE; tail -1 $R/codec-make.log; echo "codec model $(el)"
SWAPSERVE_CODEC_VERIFY=1 SWAPSERVE_TEST_BACKEND=cuda SWAPSERVE_BACKEND=cuda timeout 80 node test/run.mjs test/codec/host-tier.test.ts > $R/codec-tests.log 2>&1
echo "codec tests (cuda, verify) rc=$? $(el)"; grep -E "^ℹ (pass|fail)|✖" $R/codec-tests.log | tail -6
T=$(( $(left) - 40 )); [ $T -gt 220 ] && T=220; [ $T -lt 90 ] && T=90
timeout $T node bin/swapserve.js bench codec --model /tmp/codec8b --backend cuda --reps 3 --prompt 128 --out $R/codec.json --md $R/codec.md 2> $R/codec.log > /dev/null
echo "bench codec rc=$? $(el)"; grep "^\[bench codec\]" $R/codec.log | tail -6; cat $R/codec.md
rm -rf /tmp/codec8b
BIN=/tmp/swapserve-engine-dev/engine_dev
T=$(( ($(left) - 10) / 2 )); [ $T -gt 110 ] && T=110
[ $T -gt 30 ] && [ -x $BIN ] && { timeout $T $BIN bench sweep > $R/sweep.log 2>&1; echo "sweep rc=$? $(el)"; tail -14 $R/sweep.log
  SWAPSERVE_CUDA_GRAPHS=1 timeout $T $BIN bench sweep > $R/sweep-graphs.log 2>&1; echo "sweep graphs rc=$? $(el)"; tail -14 $R/sweep-graphs.log; }
echo "done $(el)"
