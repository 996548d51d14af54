#!/usr/bin/env bash
# GPU proof of the health wire (issue 11, "Done when" 4), one device call, from the repo root (.carry carried):
# `swapserve up` on the CUDA backend with its demo models (random weights) and one worker in which a sticky device
# error is injected by a test hook:
#   MODE=move (default)  the worker's first move fails (SWAPSERVE_TEST_STICKY_ONCE: the runtime's failNext code)
#   MODE=pass            the worker's first engine pass fails (SWAPSERVE_TEST_STICKY_PASS_ONCE): on CUDA a genuine
#                        sticky error, a kernel that executes __trap() on the pass's stream, reported by the pass's own
#                        CUDA checks (cudaErrorLaunchFailure)
#   MODE=both            move, then pass, after one build
# Expected: the worker reports unhealthy, puts back what it accepted, exits 1, `up` restarts it, every request still
# completes (200), and one more after the restart too.
# Writes per mode $OUT/sticky-<mode>.md (device, date, command, commit, outcome table, what the processes said) and
# $OUT/up-<mode>.log (up's stdout and stderr), plus $OUT/build.log once.
# Locally (CPU): BACKEND=cpu BUILD=0 MODE=both bash bench/chaos/run_device.sh
set -u
OUT=${OUT:-/tmp/chaos-out}; mkdir -p "$OUT"
BACKEND=${BACKEND:-cuda}
MODE=${MODE:-move}
PORT=${PORT:-18480}
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
case "$MODE" in move|pass) MODES=$MODE ;; both) MODES="move pass" ;; *) echo "MODE must be move, pass or both, received '$MODE'" >&2; exit 2 ;; esac
DEVICE=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
DEVICE=${DEVICE:-no GPU (cpu)}
if [ "${BUILD:-1}" = 1 ]; then source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || echo "build failed"; tail -2 "$OUT/build.log"; fi
echo "build done $(el)"
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

run_mode() {
  local mode=$1 port=$2 var what
  if [ "$mode" = pass ]; then var=SWAPSERVE_TEST_STICKY_PASS_ONCE; what="its first engine pass (prefill)"
  else var=SWAPSERVE_TEST_STICKY_ONCE; what="its first move (the load for these requests)"; fi
  local data; data=$(mktemp -d /tmp/chaos-XXXX)
  local mark="$data/sticky-once" log="$OUT/up-$mode.log"; : > "$mark"
  env -u REDIS_URL SWAPSERVE_BACKEND="$BACKEND" PORT="$port" "$var=$mark" \
    node bin/swapserve.js up --data-dir "$data" --workers 1 > "$log" 2>&1 &
  local up=$! url=http://127.0.0.1:$port
  for _ in $(seq 1 240); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && break; sleep 0.5; done
  echo "$mode: ready $(el)"
  local model; model=$(curl -s "$url/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))')
  # Four requests at once: the hook fails the worker's first move or pass under them.
  local pids=() i
  for i in 1 2 3 4; do
    curl -s --max-time 180 -o "$data/r$i.json" -w "$i %{http_code} %{time_total}\n" "$url/v1/chat/completions" -H 'content-type: application/json' \
      -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello $i\"}],\"max_tokens\":8}" >> "$data/results.txt" &
    pids+=($!)
  done
  wait "${pids[@]}"
  echo "$mode: requests done $(el)"
  local after; after=$(curl -s --max-time 120 -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"again\"}],\"max_tokens\":8}")
  kill -TERM $up; wait $up
  # A genuine CUDA error names the failing CUDA call and its cudaError (the CPU backend's injected code says so).
  local genuine; genuine=$(grep -cE "failed at [^ ]+:[0-9]+ on device [0-9]+: cudaError" "$log")
  {
    echo "# Sticky device error in a $mode under \`swapserve up\` ($BACKEND backend)"
    echo
    echo "- device: $DEVICE"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $COMMIT"
    echo "- command: \`BACKEND=$BACKEND MODE=$MODE bash bench/chaos/run_device.sh\` (one device call)"
    echo "- injected: a sticky error in $what on worker-0 ($var)"
    echo "- model: $model (demo model, random weights); 4 concurrent chat requests, max_tokens 8, then one more"
    echo "- log lines naming a CUDA call that failed with a cudaError (a genuine device error): $genuine"
    echo
    echo "| request | HTTP status | seconds |"
    echo "| --- | ---: | ---: |"
    sort -n "$data/results.txt" | while read -r i code t; do echo "| $i | $code | $t |"; done
    echo "| after the restart | $after | |"
    echo
    echo "What the processes said (up-$mode.log):"
    echo
    echo '```'
    # The worker's JSON lines shortened to their message and cause.
    grep -E "TEST HOOK|sticky device error|became unusable|exited|ready \(" "$log" | sed "s#$data#<data>#g" \
      | sed -E 's/^\{.*"cause":"([^"]*)".*"msg":"([^"]*)".*$/[worker log] \2; cause: \1/' | cut -c1-400
    echo '```'
  } > "$OUT/sticky-$mode.md"
  cat "$OUT/sticky-$mode.md"
  rm -rf "$data"
}

p=$PORT
for m in $MODES; do run_mode "$m" "$p"; p=$((p + 1)); done
