#!/usr/bin/env bash
# Worker start-up phases on the GPU machine: `swapserve worker` started N times per mode (tsx; prebuilt bundle;
# bundle + CUDA context prewarm), each until its ready line (which reports the phases), with the budgets of the
# headline bench (GPU weights tier 24 GB, deferred 54 GB pinned host tier). Run from the repo root after
# `source scripts/uncarry.sh`. Usage: bash bench/worker-start/run_device.sh [N]
set -uo pipefail
N=${1:-3}
PORT=6411
"${SWAPSERVE_REDIS_SERVER:-redis-server}" --port $PORT --save '' --appendonly no > /dev/null &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null' EXIT
sleep 0.3
CFG=$(mktemp --suffix .json)
cat > "$CFG" <<JSON
{ "redisUrl": "redis://127.0.0.1:$PORT", "budgets": { "hostBytes": "54GB", "gpuBytes": "24GB", "scratchBytes": "8GB" }, "models": [] }
JSON
node -e "const t = performance.now(); require('./native/build/swapserve_cuda.node'); console.log('load the CUDA addon (dlopen, cuBLAS):', (performance.now() - t).toFixed(0), 'ms')"
start() {  # prints the ready line of one worker start, then stops the worker
  local log; log=$(mktemp)
  env "$@" node bin/swapserve.js worker --config "$CFG" --device 0 > "$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do grep -q " ready " "$log" && break; sleep 0.05; done
  grep " ready " "$log" | sed 's/^worker [^ ]* //' || { echo "no ready line:"; cat "$log"; }
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"
}
for mode in tsx bundle bundle+prewarm; do
  case $mode in
    tsx) vars=(SWAPSERVE_NO_BUNDLE=1 SWAPSERVE_NO_PREWARM=1) ;;
    bundle) vars=(SWAPSERVE_NO_PREWARM=1) ;;
    bundle+prewarm) vars=(SWAPSERVE_X=1) ;;
  esac
  for i in $(seq 1 "$N"); do echo "$mode #$i: $(start "${vars[@]}")"; done
done
