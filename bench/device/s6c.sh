#!/usr/bin/env bash
# session 6, call C (≈ 4 min): issue 19's sim-vs-real replay alone (c3 without its MPS part), on a worker that now warms
# its configured models' own product shapes at start (run 15's cold median was 31.5 % off: the first cold event's
# prefill took 32 ms against 5 ms, and its copy ran at 38.6 GB/s against ~55), and with SWAPSERVE_WARM_ENGINE=1 (WARM=0
# turns it off) one zero-weight one-layer engine pass per model shape at start too (the engine's own kernels).
source bench/device/lib.sh
pkill -f "bin/swapserve.js" 2>/dev/null; pkill -f redis-server 2>/dev/null; rm -rf /tmp/hm /tmp/load-models /tmp/m8b /tmp/quant-models
command -v node >/dev/null || source scripts/uncarry.sh > $R/build.log 2>&1; export PATH=/tmp/bin:$PATH SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
[ -f native/build/swapserve_cuda.node ] || source scripts/uncarry.sh > $R/build.log 2>&1
echo "build $(el)"
export SWAPSERVE_WARM_ENGINE=${WARM:-1}
OUT=$R/fleet SKIP_UNCARRY=1 REPLAY_TIMEOUT_S=${RT:-230} REPLAY_ARGS="--duration-s ${RD:-120}" bash bench/fleet/run_device.sh 2>&1 | tail -30
grep -hE "ready \(|warm-up" $R/fleet/replay.log /tmp/fleet-logs/*.log 2>/dev/null | cut -c1-300 | head -5
echo "done $(el)"
