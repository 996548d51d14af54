#!/usr/bin/env bash
# call 3: fleet sim-vs-real replay (issue 19) + MPS co-location bench and kill -9 chaos (issue 14)
source bench/device/lib.sh
pkill -f "bin/swapserve.js" 2>/dev/null; pkill -f redis-server 2>/dev/null; rm -rf /tmp/hm /tmp/load-models /tmp/m8b
command -v node >/dev/null || source scripts/uncarry.sh > $R/build.log 2>&1; export PATH=/tmp/bin:$PATH SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
[ -f native/build/swapserve_cuda.node ] || source scripts/uncarry.sh > $R/build.log 2>&1
echo "build $(el)"
OUT=$R/fleet SKIP_UNCARRY=1 REPLAY_TIMEOUT_S=${RT:-230} REPLAY_ARGS="--duration-s ${RD:-120}" bash bench/fleet/run_device.sh 2>&1 | tail -30
echo "fleet done $(el)"
rm -rf /tmp/fleet-models
LEFT=$(( 580 - ($(date +%s)-S) ))
OUT=$R/mps SKIP_UNCARRY=1 TOTAL_S=$LEFT CHAOS_S=60 bash bench/mps/run_device.sh 2>&1 | tail -40
echo "done $(el)"
