#!/usr/bin/env bash
# One device call for the headline benchmark (run from the repo root on the GPU machine, .carry carried):
#   write the three models (bench/headline/make_models.py) while the addon builds (scripts/uncarry.sh),
#   measure the floors and transformers alternatives in a separate process (bench/headline/baselines.py),
#   then `swapserve bench headline` on the whole stack, with whatever time is left (BUDGET_S, default 530 s).
# Writes under $OUT: env.log, build.log, hf.json, headline.json, headline.md, headline.log.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/headline-out}; mkdir -p "$OUT"
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
M=${HEADLINE_MODELS:-/tmp/hm}
{ nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv; nproc; free -g; df -h /tmp; } > "$OUT/env.log" 2>&1
cat "$OUT/env.log"
(python3 bench/headline/make_models.py "$M" > /tmp/make.log 2>&1; echo "make rc=$?" >> /tmp/make.log) &
MAKE=$!
source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || echo "build failed"
tail -3 "$OUT/build.log"; echo "build done $(el)"
wait $MAKE; cat /tmp/make.log | tee -a "$OUT/env.log"; echo "models done $(el)"; df -h /tmp | tail -1
timeout 220 python3 bench/headline/baselines.py "$M" "$OUT/hf.json" ${HEADLINE_BASELINE_ARGS:-} 2>&1 | tee -a "$OUT/env.log"
echo "baselines done $(el)"
LEFT=$(( ${BUDGET_S:-530} - ($(date +%s) - START) - 45 ))
[ $LEFT -lt 60 ] && LEFT=60
timeout $((LEFT + 40)) node bin/swapserve.js bench headline --models-dir "$M" --baseline "$OUT/hf.json" \
  --out "$OUT/headline.json" --md "$OUT/headline.md" --deadline-s $LEFT ${HEADLINE_ARGS:-} 2> "$OUT/headline.log" > /dev/null
echo "bench rc=$? $(el)"
grep -E "^\[headline|FAILED|Error" "$OUT/headline.log" | cut -c1-400 | tail -80
cat "$OUT/headline.md" 2>/dev/null | head -60
