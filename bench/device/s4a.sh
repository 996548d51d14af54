#!/usr/bin/env bash
# session 4, call A (≈ 9 min): build; chaos pass+move on CUDA (11); CUDA suites on stories260K (12, 17);
# the grammar mask's share of a CUDA decode step on the 8B (12); partial-residency curve (15).
# Also builds the engine dev harness and the GEMV bench for the next call on the same warm machine.
source bench/device/lib.sh
CAP=${CAP:-530}; left(){ echo $(( CAP - ($(date +%s)-S) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max --format=csv,noheader; git log -1 --format=%h; date -u +%FT%TZ; } | tee $R/env.log
(python3 bench/swap/hf_baseline.py make /tmp/m8b > $R/make.log 2>&1; echo "make rc=$?" >> $R/make.log) &
MAKE=$!
(bash bench/quant/build.sh > $R/quant-build.log 2>&1; echo "rc=$?" >> $R/quant-build.log) &
QB=$!
source scripts/uncarry.sh > $R/build.log 2>&1 || echo "BUILD FAILED"
export SWAPSERVE_SHARED_DATA=$PWD/.carry/data
tail -2 $R/build.log; echo "build $(el)"
(bash bench/engine/dev/build.sh > $R/dev-build.log 2>&1; echo "rc=$?" >> $R/dev-build.log) &
DB=$!
OUT=$R/chaos BUILD=0 BACKEND=cuda MODE=both timeout 170 bash bench/chaos/run_device.sh > $R/chaos.log 2>&1; echo "chaos rc=$? $(el)"
grep -hE "^\| |genuine" $R/chaos/sticky-*.md
timeout 150 node test/run.mjs test/engine/cuda.test.ts test/engine/cuda-sampling.test.ts test/quant/cuda.test.ts > $R/cuda-tests.log 2>&1; echo "cuda tests rc=$? $(el)"
grep -E "^ℹ (pass|fail|skipped)|✖" $R/cuda-tests.log | head -20
wait $MAKE; tail -1 $R/make.log; echo "m8b $(el)"
mkdir -p $R/grammar
T=$(( $(left) - 150 )); [ $T -gt 150 ] && T=150
timeout $T node --import tsx bench/grammar/decode.ts --model /tmp/m8b --backend cuda --tokens 128 --out $R/grammar/decode.md 2> $R/grammar/decode.err
echo "grammar decode rc=$? $(el)"; cat $R/grammar/decode.md; tail -3 $R/grammar/decode.err
T=$(( $(left) - 5 )); [ $T -gt 200 ] && T=200
timeout $T node bin/swapserve.js bench swap --model /tmp/m8b --resident 0,25,50,75,100 --reps 3 --prompt-tokens 128 --out $R/partial.json > $R/partial.md 2> $R/partial.log
echo "partial rc=$? $(el)"; cat $R/partial.md; tail -3 $R/partial.log
wait $QB $DB; tail -qn1 $R/quant-build.log $R/dev-build.log
echo "done $(el)"
