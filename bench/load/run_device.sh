#!/usr/bin/env bash
# One device call for issue 18's load numbers (run from the repo root on the GPU machine, .carry carried):
#   1. an 8B-shaped bf16 random model (bench/headline/make_models.py's llama8b config; tiny BPE tokenizer added),
#      written while the addon builds (scripts/uncarry.sh);
#   2. a stack (private Redis, gateway, one worker) and `swapserve bench load` replaying the Azure 2023 conv trace's
#      lengths at three Poisson rates (RATES): throughput, goodput, TTFT/TPOT p50/p99, failed/lost, GPU memory;
#   3. the capacity curve: `bench load --sweep` (rate -> p99 TTFT, the highest rate inside the SLO);
#   4. the stack stopped, `swapserve profile` (moves, decode steps by batch beside the roofline, prefill, worker start,
#      max rate per request-size bucket) -> $OUT/profile/<gpu>.json + <gpu>.calibration.json.
# Needs .carry/fleet-data/AzureLLMInferenceTrace_conv.csv (../shared/data is not on that machine).
# Knobs: RATES ("1 2 4"), RUN_S (20), SWEEP_S (10), SLO_TTFT_MS (2000), SLO_TPOT_MS (100), PART (all | load | profile),
# SKIP_UNCARRY=1 (already sourced), HOST_BYTES / GPU_BYTES / SCRATCH (worker budgets: 20GB / 17GB / 40GB; a CPU
# rehearsal needs smaller ones, the CPU backend maps its "gpu" pool up front), BUDGET_S (360: the whole script's
# deadline; each later step's timeout is cut to what is left, keeping PROFILE_TIMEOUT_S for the profile, and a step
# with too little left is skipped with a line saying so). Writes under $OUT: env.log, build.log, make.log, load-<rate>.{json,md},
# sweep.{json,md}, profile/, load.log, profile.log, and prints the tables. Budget: ~6 min.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/load-out}; mkdir -p "$OUT"
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
END=$(( START + ${BUDGET_S:-360} )); PT=${PROFILE_TIMEOUT_S:-170}
left() { echo $(( END - $(date +%s) )); }
# cap DEFAULT RESERVE: DEFAULT, or what is left after RESERVE seconds for the later steps, whichever is less.
cap() { local l=$(( $(left) - $2 )); echo $(( l < $1 ? l : $1 )); }
M=${LOAD_MODELS:-/tmp/load-models}; MODEL=$M/llama8b
RATES=${RATES:-"1 2 4"}; RUN_S=${RUN_S:-20}; SWEEP_S=${SWEEP_S:-10}; PART=${PART:-all}
SLO="--slo-ttft-ms ${SLO_TTFT_MS:-2000} --slo-tpot-ms ${SLO_TPOT_MS:-100}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; free -g; df -h /tmp; } > "$OUT/env.log" 2>&1
cat "$OUT/env.log"
(python3 -c "import sys; sys.path.insert(0, 'bench/headline'); import make_models as m; m.write('$MODEL', m.configs()['llama8b'])" > "$OUT/make.log" 2>&1
 echo "make rc=$?" >> "$OUT/make.log") &
MAKE=$!
if [ "${SKIP_UNCARRY:-0}" != 1 ]; then source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || echo "build failed"; tail -3 "$OUT/build.log"; fi
echo "build done $(el)"
wait $MAKE; cat "$OUT/make.log"; echo "model done $(el)"
node --import tsx bench/load/tokenizer.ts "$MODEL"
# The traces folder layout bench/load/traces.ts reads.
T=/tmp/load-traces/azure-llm-2023; mkdir -p $T
for f in .carry/fleet-data/AzureLLMInferenceTrace_conv.csv .carry/load-data/AzureLLMInferenceTrace_conv.csv; do [ -f "$f" ] && ln -sf "$PWD/$f" $T/; done
export SWAPSERVE_TRACES_DIR=/tmp/load-traces
[ -f $T/AzureLLMInferenceTrace_conv.csv ] || echo "MISSING: .carry/fleet-data/AzureLLMInferenceTrace_conv.csv (carry it)"

if [ "$PART" != profile ]; then
  PORT=6431; GW=8431
  "${SWAPSERVE_REDIS_SERVER:-redis-server}" --port $PORT --save '' --appendonly no > /dev/null 2>&1 &
  REDIS_PID=$!
  CFG=$OUT/load-config.json
  cat > "$CFG" <<JSON
{ "redisUrl": "redis://127.0.0.1:$PORT", "prefix": "{load}", "modelRoots": ["$M"], "gateway": { "port": $GW },
  "budgets": { "hostBytes": "${HOST_BYTES:-20GB}", "gpuBytes": "${GPU_BYTES:-17GB}", "scratchBytes": "${SCRATCH:-40GB}" },
  "models": [{ "id": "llama8b", "path": "llama8b", "contextLength": 8192, "maxQueued": 100000, "maxTokens": 8192, "keepWarm": true }],
  "log": { "level": "warn" } }
JSON
  sleep 0.3
  node bin/swapserve.js gateway --config "$CFG" > "$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  node bin/swapserve.js worker --config "$CFG" > "$OUT/worker.log" 2>&1 &
  W_PID=$!
  trap 'kill $W_PID $GW_PID $REDIS_PID 2>/dev/null' EXIT
  # Up to 60 s for both; a worker or gateway that exits (an allocation refused, a bad config) ends the wait at once.
  UP=0
  for _ in $(seq 1 600); do
    grep -q " ready " "$OUT/worker.log" && grep -q "listening on" "$OUT/gateway.log" && { UP=1; break; }
    kill -0 $W_PID 2>/dev/null && kill -0 $GW_PID 2>/dev/null || break
    sleep 0.1
  done
  grep " ready " "$OUT/worker.log" | cut -c1-200
  [ $UP = 1 ] || { echo "STACK NOT UP $(el): the load runs are skipped"; tail -n 15 "$OUT/worker.log" "$OUT/gateway.log" | cut -c1-300; }
fi
if [ "$PART" != profile ] && [ $UP = 1 ]; then
  # Warm-up: the model's first load (disk -> host -> GPU) and first-use setup, outside the measured runs.
  node -e "fetch('http://127.0.0.1:$GW/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama8b', prompt: 'hello', max_tokens: 4 }), signal: AbortSignal.timeout(120000) })
    .then((r) => r.text()).then((t) => console.log(t.slice(0, 300)), (e) => console.log('warm-up failed:', e.message))"
  echo "warm $(el)"
  L="node bin/swapserve.js bench load --config $CFG --model llama8b --trace azure-conv $SLO --timeout-s 120"
  for r in $RATES; do
    T=$(cap $((RUN_S + 150)) $((PT + 45))); [ "$T" -lt $((RUN_S + 15)) ] && { echo "rate $r skipped: ${T}s left for it"; continue; }
    timeout $T $L --rate "$r" --duration-s "$RUN_S" --out "$OUT/load-$r.json" > "$OUT/load-$r.md" 2>> "$OUT/load.log"
    echo "rate $r rc=$? $(el)"; cat "$OUT/load-$r.md"
  done
  T=$(cap 150 $((PT + 5)))
  [ "$T" -lt 40 ] && echo "sweep skipped: ${T}s left for it"
  # No sweep run starts after T - SWEEP_S - 60 s (one started just before it has that long to drain); sweep.json holds
  # the points so far after every run, so even a sweep killed by this timeout keeps them.
  [ "$T" -ge 40 ] && timeout $T $L --sweep --rate "${SWEEP_START:-2}" --max-rate "${SWEEP_MAX:-64}" --sweep-steps 1 --duration-s "$SWEEP_S" \
    --deadline-s $(( T - SWEEP_S - 60 > 1 ? T - SWEEP_S - 60 : 1 )) --out "$OUT/sweep.json" > "$OUT/sweep.md" 2>> "$OUT/load.log"
  echo "sweep rc=$? $(el)"; cat "$OUT/sweep.md"
fi
if [ "$PART" != profile ]; then
  kill $W_PID $GW_PID 2>/dev/null; wait $W_PID $GW_PID 2>/dev/null; kill $REDIS_PID 2>/dev/null
  trap - EXIT
fi

if [ "$PART" != load ]; then
  T=$(cap $PT 3)
  if [ "$T" -lt 40 ]; then echo "profile skipped: ${T}s left for it"; else
  timeout $T node bin/swapserve.js profile --model-path "$MODEL" --out "$OUT/profile" --reps 1 \
    --host-bytes "${HOST_BYTES:-20GB}" --gpu-bytes "${GPU_BYTES:-17GB}" --scratch-bytes "${SCRATCH:-40GB}" --context 4096 \
    --batches 1,8,32,64,128,256 --prefill 128,512,2048 --inputs ${PROFILE_INPUTS:-1024} --outputs ${PROFILE_OUTPUTS:-128} \
    --duration-s 8 --sweep-steps 1 --start-rate 2 --max-rate 64 $SLO --deadline-s $(( T - 75 > 1 ? T - 75 : 1 )) > "$OUT/profile.md" 2> "$OUT/profile.log"
  echo "profile rc=$? $(el)"; grep -E "^\[profile\]" "$OUT/profile.log" | cut -c1-250 | tail -30; cat "$OUT/profile.md"
  fi
fi
grep -E "Error|error" "$OUT/load.log" "$OUT/worker.log" 2>/dev/null | cut -c1-300 | tail -10
echo "done $(el)"
