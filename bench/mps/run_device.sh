#!/usr/bin/env bash
# One device call for `swapserve bench mps` (issue 14), from the repo root on the GPU machine (.carry carried): writes
# the Qwen2.5-shaped models (bench/mps/make_models.py, random bf16 weights) while the addon builds (scripts/uncarry.sh),
# then the four-arm table (bench/mps/mps.ts: one engine, one at twice the batch, two time-sliced, two under MPS) and
# the kill -9 chaos check of two co-located workers under MPS (bench/mps/chaos.ts). Sized for ~6 min on an H100: the
# table's budget is what is left after the build minus the chaos check's share; cells past it are listed as cut.
# Writes under $OUT: mps.json, mps.md (the table), chaos.json, run.log. SKIP_UNCARRY=1: addon already built, Node on PATH.
# MODELS=0.5b,1.5b,3b,7b picks the shapes; PROMPTS=128,512,2048; TOTAL_S=330 (the whole script's target).
set -u
OUT=${OUT:-/tmp/mps-out}; mkdir -p "$OUT"
START=$(date +%s)
# Whatever this script leaves behind (a daemon at one of our pipe folders, a chaos run's workers) is ended on exit.
quit_mps() { for p in "$OUT/mps-data/mps/pipe" /tmp/mps-chaos/mps/pipe; do [ -d "$p" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY="$p" nvidia-cuda-mps-control >/dev/null 2>&1; done; }
CHAOS_PG=""
trap 'quit_mps; [ -n "$CHAOS_PG" ] && kill -9 -- -"$CHAOS_PG" 2>/dev/null' EXIT
quit_mps
el() { echo $(( $(date +%s) - START )); }
M=${MPS_MODELS_DIR:-/tmp/mps-models}
L=/tmp/mps-logs; mkdir -p $L
{ nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv; command -v nvidia-cuda-mps-control || echo "nvidia-cuda-mps-control: not on PATH"; nproc; free -g | head -2; } > "$L/env.log" 2>&1
cat "$L/env.log"
(python3 bench/mps/make_models.py "$M" "${MODELS:-0.5b,1.5b,3b,7b}" > "$L/make.log" 2>&1; echo "make rc=$?" >> "$L/make.log") &
MAKE=$!
if [ "${SKIP_UNCARRY:-0}" != 1 ]; then source scripts/uncarry.sh > "$L/build.log" 2>&1 || echo "build failed"; tail -3 "$L/build.log"; fi
echo "build done +$(el)s"
wait $MAKE; cat "$L/make.log"; echo "models done +$(el)s"
TOTAL=${TOTAL_S:-330}
CHAOS_S=${CHAOS_S:-75}
# TOTAL_S is a deadline: the bench's timeout ends CHAOS_S + 5 s before it (the bench stops starting cells at BUDGET,
# 30 s earlier still, and rewrites its table after every arm), the chaos check's after it.
BUDGET=$(( TOTAL - $(el) - CHAOS_S - 35 )); [ $BUDGET -lt 30 ] && BUDGET=30
BT=$(( TOTAL - $(el) - CHAOS_S - 5 )); [ $BT -lt 40 ] && BT=40
# No MPS control here: both runs go on without MPS (the table's mps-2 arm is skipped; the chaos check time-slices).
command -v nvidia-cuda-mps-control >/dev/null || { echo "no nvidia-cuda-mps-control: --no-mps for both runs"; MPS_ARGS="${MPS_ARGS:-} --no-mps"; CHAOS_ARGS="${CHAOS_ARGS:-} --no-mps"; }
echo "=== bench mps (budget ${BUDGET}s, timeout ${BT}s) +$(el)s"
setsid timeout $BT node --import tsx bench/mps/mps.ts --models-dir "$M" --models "${MODELS:-0.5b,1.5b,3b,7b}" --prompts "${PROMPTS:-128,512,2048}" \
  --budget-s $BUDGET --out "$OUT" ${MPS_ARGS:-} > "$L/bench.log" 2>&1 &
BENCH_PG=$!
wait $BENCH_PG
echo "bench rc=$? +$(el)s"
kill -9 -- -"$BENCH_PG" 2>/dev/null  # engine processes a timed-out run left
grep -E "^\[bench mps\]" "$L/bench.log" | cut -c1-300 | tail -20
cat "$OUT/mps.md" 2>/dev/null || tail -30 "$L/bench.log"
echo "=== chaos: kill -9 of one of two co-located workers under MPS +$(el)s"
CT=$(( TOTAL - $(el) )); [ $CT -gt $CHAOS_S ] && CT=$CHAOS_S; [ $CT -lt 30 ] && CT=30
# chaos.ts writes its report (with the step it was in) at --budget-s, before this timeout can lose it.
setsid timeout $CT node --import tsx bench/mps/chaos.ts --model "$M/qwen2.5-0.5b" --out /tmp/mps-chaos --budget-s $(( CT - 8 )) ${CHAOS_ARGS:-} > "$L/chaos.log" 2>&1 &
CHAOS_PG=$!
wait $CHAOS_PG
echo "chaos rc=$? +$(el)s"
tail -12 "$L/chaos.log" | cut -c1-2000
cp /tmp/mps-chaos/chaos.json "$OUT/" 2>/dev/null
cat "$L/env.log" "$L/make.log" "$L/bench.log" "$L/chaos.log" > "$OUT/run.log" 2>/dev/null
echo "done +$(el)s"
