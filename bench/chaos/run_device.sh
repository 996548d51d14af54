#!/usr/bin/env bash
# GPU proof of the health wire (issue 11, "Done when" 4), one device call, from the repo root (.carry carried):
# `swapserve up` on the CUDA backend with its demo models (random weights) and one worker whose first move is made to
# fail with a sticky device error by the test hook (SWAPSERVE_TEST_STICKY_ONCE). Expected: the worker reports
# unhealthy, puts back what it accepted, exits 1, `up` restarts it, every request still completes (200).
# Writes $OUT/sticky-device.md (device, date, command, commit, outcome table) and the logs.
# Locally (CPU): BACKEND=cpu BUILD=0 bash bench/chaos/run_device.sh
set -u
OUT=${OUT:-/tmp/chaos-out}; mkdir -p "$OUT"
BACKEND=${BACKEND:-cuda}
PORT=${PORT:-18480}
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU (cpu)"; } > "$OUT/env.log"
if [ "${BUILD:-1}" = 1 ]; then source scripts/uncarry.sh > "$OUT/build.log" 2>&1 || echo "build failed"; tail -2 "$OUT/build.log"; fi
echo "build done $(el)"
DATA=$(mktemp -d /tmp/chaos-XXXX)
MARK="$DATA/sticky-once"; : > "$MARK"
env -u REDIS_URL SWAPSERVE_BACKEND=$BACKEND PORT=$PORT SWAPSERVE_TEST_STICKY_ONCE="$MARK" \
  node bin/swapserve.js up --data-dir "$DATA" --workers 1 > "$OUT/up.log" 2> "$OUT/up.err" &
UP=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 1 240); do [ "$(curl -s -o /dev/null -w '%{http_code}' $URL/readyz)" = 200 ] && break; sleep 0.5; done
echo "ready $(el)"
MODEL=$(curl -s $URL/v1/models | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))')
# Four requests at once: the first move (a load for them) fails sticky on worker-0.
PIDS=()
for i in 1 2 3 4; do
  curl -s -o "$OUT/r$i.json" -w "$i %{http_code} %{time_total}\n" $URL/v1/chat/completions -H 'content-type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello $i\"}],\"max_tokens\":8}" >> "$OUT/results.txt" &
  PIDS+=($!)
done
wait "${PIDS[@]}"
echo "requests done $(el)"
AFTER=$(curl -s -o /dev/null -w '%{http_code}' $URL/v1/chat/completions -H 'content-type: application/json' \
  -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"again\"}],\"max_tokens\":8}")
kill -TERM $UP; wait $UP
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
{
  echo "# Sticky device error under \`swapserve up\` ($BACKEND backend)"
  echo
  echo "- device: $(head -1 "$OUT/env.log")"
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $COMMIT"
  echo "- command: \`BACKEND=$BACKEND bash bench/chaos/run_device.sh\` (one device call)"
  echo "- model: $MODEL (demo model, random weights); 4 concurrent chat requests, max_tokens 8, then one more"
  echo
  echo "| request | HTTP status | seconds |"
  echo "| --- | ---: | ---: |"
  sort -n "$OUT/results.txt" | while read -r i code t; do echo "| $i | $code | $t |"; done
  echo "| after the restart | $AFTER | |"
  echo
  echo "What the processes said (up.err):"
  echo
  echo '```'
  grep -E "TEST HOOK|sticky device error|exited|ready" "$OUT/up.err" "$OUT/up.log" | sed "s#$DATA#<data>#g" | cut -c1-300
  echo '```'
} > "$OUT/sticky-device.md"
cat "$OUT/sticky-device.md"
rm -rf "$DATA"
