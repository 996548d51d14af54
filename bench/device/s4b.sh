#!/usr/bin/env bash
# session 4, call B (≈ 9 min, after s4a on the same warm machine: addon built, /tmp/m8b made): compressed swap-in
# through the runtime (15), the grammar mask's share of a CUDA decode step on the 8B (12), decode sweep (18).
source bench/device/lib.sh
CAP=${CAP:-530}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
command -v node >/dev/null || { export PATH=/tmp/bin:$PATH; }
export SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}" SWAPSERVE_SHARED_DATA=$PWD/.carry/data
[ -f native/build/swapserve_cuda.node ] && [ -x /tmp/node ] || { source scripts/uncarry.sh > $R/build.log 2>&1; echo "rebuilt $(el)"; }
git log -1 --format=%h | tee $R/env.log; nvidia-smi --query-gpu=name --format=csv,noheader | tee -a $R/env.log
(python3 bench/codec/make_model.py /tmp/codec8b 32 > $R/codec-make.log 2>&1; echo "make rc=$?" >> $R/codec-make.log) &
MAKE=$!
mkdir -p $R/grammar
[ -d /tmp/m8b ] || python3 bench/swap/hf_baseline.py make /tmp/m8b > $R/make.log 2>&1
timeout 150 node --import tsx bench/grammar/decode.ts --model /tmp/m8b --backend cuda --tokens 128 --out $R/grammar/decode.md 2> $R/grammar/decode.err
echo "grammar decode rc=$? $(el)"; cat $R/grammar/decode.md; tail -3 $R/grammar/decode.err
wait $MAKE; tail -1 $R/codec-make.log; echo "codec model $(el)"
SWAPSERVE_CODEC_VERIFY=1 SWAPSERVE_TEST_BACKEND=cuda SWAPSERVE_BACKEND=cuda timeout 80 node test/run.mjs test/codec/host-tier.test.ts > $R/codec-tests.log 2>&1
echo "codec tests (cuda, verify) rc=$? $(el)"; grep -E "^ℹ (pass|fail)|✖" $R/codec-tests.log | tail -6
T=$(( $(left) - 130 )); [ $T -gt 220 ] && T=220; [ $T -lt 90 ] && T=90
timeout $T node bin/swapserve.js bench codec --model /tmp/codec8b --backend cuda --reps 3 --prompt 128 --out $R/codec.json --md $R/codec.md 2> $R/codec.log > /dev/null
echo "bench codec rc=$? $(el)"; grep "^\[bench codec\]" $R/codec.log | tail -6; cat $R/codec.md
rm -rf /tmp/codec8b
BIN=/tmp/swapserve-engine-dev/engine_dev
T=$(( ($(left) - 10) / 2 )); [ $T -gt 110 ] && T=110
[ $T -gt 30 ] && [ -x $BIN ] && { timeout $T $BIN bench sweep > $R/sweep.log 2>&1; echo "sweep rc=$? $(el)"; tail -14 $R/sweep.log
  SWAPSERVE_CUDA_GRAPHS=1 timeout $T $BIN bench sweep > $R/sweep-graphs.log 2>&1; echo "sweep graphs rc=$? $(el)"; tail -14 $R/sweep-graphs.log; }
echo "done $(el)"
