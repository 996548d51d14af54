# One device call: build, run the runtime tests on the CUDA backend, make the 8B-shaped model, measure the
# transformers baseline and `bench swap` against it (default options, then --read-threads 16 as a variant).
# Usage (on the GPU machine, from the repo root): bash bench/swap/run_device.sh
# Writes under $OUT: env.log (GPU, model creation, transformers log), build.log, tests-cuda.log, hf.json,
# swap.json, swap16.json, swap.log (bench progress), swap.md (the tables).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
M=/tmp/m8b
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv > "$OUT/env.log" 2>&1
(python3 bench/swap/hf_baseline.py make $M > /tmp/make.log 2>&1; echo "make rc=$?" >> /tmp/make.log) &
MAKE=$!
source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -40 "$OUT/build.log"; }
tail -3 "$OUT/build.log"
SWAPSERVE_TEST_BACKEND=cuda timeout 150 node test/run.mjs test/runtime > "$OUT/tests-cuda.log" 2>&1; echo "cuda tests rc=$?"
grep -E "^ℹ (pass|fail|skipped)|✖" "$OUT/tests-cuda.log" | head -20
wait $MAKE; cat /tmp/make.log >> "$OUT/env.log"
timeout 150 python3 bench/swap/hf_baseline.py measure $M "$OUT/hf.json" >> "$OUT/env.log" 2>&1; echo "hf rc=$?"
grep hf_baseline "$OUT/env.log"
# Cross-check of single-stream reads outside Node (file in the page cache after the transformers runs).
{ echo "--- single-stream reads of the cached model file, outside Node:"; TIMEFORMAT='cat: %R s'; time cat $M/model.safetensors > /dev/null
  python3 -c "
import time; b=bytearray(64<<20); f=open('$M/model.safetensors','rb',buffering=0); t=time.perf_counter(); n=0
while (k:=f.readinto(b)): n+=k
print(f'python readinto 64 MiB: {n/1e9:.2f} GB in {time.perf_counter()-t:.2f} s')"; } >> "$OUT/env.log" 2>&1
tail -3 "$OUT/env.log"
timeout 150 node bin/swapserve.js bench swap --model $M --baseline "$OUT/hf.json" --out "$OUT/swap.json" > "$OUT/swap.md" 2> "$OUT/swap.log"; echo "bench rc=$?"
timeout 120 node bin/swapserve.js bench swap --model $M --baseline "$OUT/hf.json" --read-threads 16 --out "$OUT/swap16.json" >> "$OUT/swap.md" 2>> "$OUT/swap.log"; echo "bench (16 readers) rc=$?"
cat "$OUT/swap.log" "$OUT/swap.md"
