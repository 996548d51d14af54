# One device call (~3–4 min on an H100/H200): the partial-residency curve (issue 15 item 3). Builds the addon, runs
# the partial-residency runtime tests on the CUDA backend, makes the Llama-3.1-8B-shaped bf16 model (random weights,
# bench/swap/hf_baseline.py make) and runs `swapserve bench swap --resident 0,25,50,75,100`: swap TTFT at 128 prompt
# tokens against the resident fraction, beside the pinned-copy floor of the bytes moved, in the same run.
# Usage (on the GPU machine, from the repo root, .carry/ carried): OUT=$OUT bash bench/swap/run_partial_device.sh
# Writes 3 files under $OUT: partial.md (the table), partial.json (every number), partial.log (GPU, build, tests,
# model creation, bench progress).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LOG="$OUT/partial.log"
M=${M:-/tmp/m8b}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"; } > "$LOG" 2>&1
(python3 bench/swap/hf_baseline.py make $M > /tmp/make.log 2>&1; echo "make rc=$?" >> /tmp/make.log) &
MAKE=$!
source scripts/uncarry.sh >> "$LOG" 2>&1 || echo "build failed (see partial.log)"
tail -2 "$LOG"
SWAPSERVE_TEST_BACKEND=cuda timeout 90 node test/run.mjs test/runtime/partial.test.ts >> "$LOG" 2>&1; echo "cuda partial-residency tests rc=$?"
grep -E "^ℹ (pass|fail)|✖" "$LOG" | head -10
wait $MAKE; cat /tmp/make.log >> "$LOG"; tail -1 /tmp/make.log
timeout 200 node bin/swapserve.js bench swap --model $M --resident 0,25,50,75,100 --reps 3 --prompt-tokens 128 --out "$OUT/partial.json" > "$OUT/partial.md" 2>> "$LOG"
echo "bench rc=$?"
cat "$OUT/partial.md"
