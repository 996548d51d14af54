#!/usr/bin/env bash
# One device call: constrained decoding's cost next to the CUDA decode step at batch 1, Llama-3.1-8B shape (random
# bf16 weights, 128,256-id vocab; the tokenizer is the synthetic Llama-3-like one: no real one offline there).
# Usage (GPU machine, repo root, .carry/ present): bash bench/grammar/run_device.sh
# Writes under $OUT: build.log, tests-cuda.log (test/engine/cuda-sampling + cuda tests), make.log, mask.md (grammar
# alone, no model), decode.md (engine end to end).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/grammar-out}; mkdir -p "$OUT"
M=${M:-/tmp/m8b}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/env.log"
[ -f "$M/config.json" ] || (python3 bench/swap/hf_baseline.py make "$M" > "$OUT/make.log" 2>&1; echo "make rc=$?" >> "$OUT/make.log") &
MAKE=$!
source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -40 "$OUT/build.log"; exit 1; }
tail -3 "$OUT/build.log"
timeout 240 node test/run.mjs test/engine/cuda-sampling.test.ts test/engine/cuda.test.ts > "$OUT/tests-cuda.log" 2>&1; echo "cuda tests rc=$?"
grep -E "^ℹ (pass|fail|skipped)|✖|﹣" "$OUT/tests-cuda.log" | head -20
timeout 200 node --import tsx bench/grammar/mask.ts --docs 30 --out "$OUT/mask.md" > /dev/null 2> "$OUT/mask.err"; echo "mask rc=$?"
wait $MAKE; tail -2 "$OUT/make.log" 2>/dev/null
timeout 300 node --import tsx bench/grammar/decode.ts --model "$M" --backend cuda --tokens 256 --out "$OUT/decode.md" 2> "$OUT/decode.err"; echo "decode rc=$?"
tail -5 "$OUT/decode.err"
cat "$OUT/mask.md" "$OUT/decode.md" 2>/dev/null
