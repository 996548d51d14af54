# One device call: build, run the runtime tests on the CUDA backend, make the 8B-shaped model, measure the
# transformers baseline and `bench swap` against it. Usage (on the GPU machine, from the repo root):
#   bash native/bench/gpu-run.sh   (writes env.log, build.log, tests-cuda.log, hf.json, hf.log, swap.json, swap.log, swap.md under $OUT)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/m8b
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv > "$OUT/env.log" 2>&1
(python3 native/bench/hf_baseline.py make $M >> "$OUT/env.log" 2>&1; echo "make rc=$?" >> "$OUT/env.log") &
MAKE=$!
source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -40 "$OUT/build.log"; }
tail -3 "$OUT/build.log"
SWAPSERVE_TEST_BACKEND=cuda timeout 150 node test/run.mjs test/runtime > "$OUT/tests-cuda.log" 2>&1; echo "cuda tests rc=$?"
grep -E "^ℹ (pass|fail)|✖" "$OUT/tests-cuda.log" | head -20
wait $MAKE; cat "$OUT/env.log"
timeout 150 python3 native/bench/hf_baseline.py measure $M "$OUT/hf.json" > "$OUT/hf.log" 2>&1; echo "hf rc=$?"; cat "$OUT/hf.log" | tail -5
timeout 200 node bin/swapserve.js bench swap --model $M --baseline "$OUT/hf.json" --out "$OUT/swap.json" > "$OUT/swap.md" 2> "$OUT/swap.log"; echo "bench rc=$?"
cat "$OUT/swap.log" "$OUT/swap.md"
