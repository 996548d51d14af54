#!/usr/bin/env bash
# One device call for simulator vs reality (run from the repo root on the GPU machine, .carry carried): make the three
# models (bench/fleet/make_models.py) while the addon builds (scripts/uncarry.sh), then bench/fleet/replay.ts: the
# GenTD26 replay over HTTP against `swapserve up`, the calibration measured in that run, the same arrivals simulated.
# Writes under $OUT (3 files): replay.log (with the device, build and model logs), sim-vs-real.md, sim-vs-real.json.
# With SKIP_UNCARRY=1 (scripts/uncarry.sh already sourced: Node on PATH, addon built) it only makes models and replays.
set -u
OUT=${OUT:-/tmp/fleet-out}; mkdir -p "$OUT"
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
M=${FLEET_MODELS:-/tmp/fleet-models}
L=/tmp/fleet-logs; mkdir -p $L
{ nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv; nproc; free -g; df -h /tmp; } > "$L/env.log" 2>&1
cat "$L/env.log"
export FLEET_DEVICE="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
(python3 bench/fleet/make_models.py "$M" > "$L/make.log" 2>&1; echo "make rc=$?" >> "$L/make.log") &
MAKE=$!
if [ "${SKIP_UNCARRY:-0}" != 1 ]; then source scripts/uncarry.sh > "$L/build.log" 2>&1 || echo "build failed"; tail -3 "$L/build.log"; fi
echo "build done $(el)"
wait $MAKE; cat "$L/make.log"; echo "models done $(el)"
# ../shared/data is not on the device machine: the two trace files travel in .carry/fleet-data/ when present.
D=.carry/fleet-data; TR=""
[ -f $D/lora_request_trace.csv ] && TR="--arrivals $D/lora_request_trace.csv --tokens $D/AzureLLMInferenceTrace_conv.csv"
timeout ${REPLAY_TIMEOUT_S:-300} node --import tsx bench/fleet/replay.ts --models-dir "$M" --out "$OUT" $TR ${REPLAY_ARGS:-} > "$L/replay-run.log" 2>&1
echo "replay rc=$? $(el)"
cat "$L/env.log" "$L/make.log" "$L/replay-run.log" > "$OUT/replay.log"
grep -E "^\[fleet-replay|Error|error" "$OUT/replay.log" | cut -c1-300 | tail -20
cat "$OUT/sim-vs-real.md" 2>/dev/null
