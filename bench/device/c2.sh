#!/usr/bin/env bash
# call 2: load bench (Azure conv at 3 rates, sweep, profile) + headline swap phase with CUDA graphs on
EXTRA='$R/load/profile/*.json'
source bench/device/lib.sh
pkill -f "bin/swapserve.js" 2>/dev/null; pkill -f redis-server 2>/dev/null
# the models other calls leave in /tmp (quant 13 GB, MPS 25 GB, fleet 8 GB) ran the headline out of disk in session 5
rm -rf /tmp/quant-models /tmp/mps-models /tmp/fleet-models /tmp/hm /tmp/m8b
export SWAPSERVE_CUDA_GRAPHS=${GRAPHS:-1}
echo "graphs=$SWAPSERVE_CUDA_GRAPHS"
# run_device.sh sources scripts/uncarry.sh (the build, beside its model writer) in its own shell: this one then needs
# the same Node, redis-server and libraries for the headline. LB: the load script's whole budget (rates, sweep, profile).
OUT=$R/load RATES="${RATES:-2 4 8}" RUN_S=${RUN_S:-20} SWEEP_S=8 PROFILE_TIMEOUT_S=${PT:-130} BUDGET_S=${LB:-380} bash bench/load/run_device.sh 2>&1 | tail -80
export PATH=/tmp/bin:$PATH SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server" LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
echo "load done $(el)"
rm -rf /tmp/load-models
LEFT=$(( 575 - ($(date +%s)-S) ))
if [ $LEFT -gt 170 ]; then
  python3 bench/headline/make_models.py /tmp/hm > $R/hm-make.log 2>&1; echo "make rc=$? $(el)"
  python3 - <<'PY' > $R/floor.log 2>&1
import json, os, statistics, torch
res = {"models": {m: {"bytes": sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk('/tmp/hm/' + m) for f in fs if f.endswith('.safetensors'))} for m in os.listdir('/tmp/hm')}}
buf = torch.empty(2 << 30, dtype=torch.uint8, pin_memory=True); buf.fill_(7); dev = torch.empty_like(buf, device="cuda"); t = []
for _ in range(6):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True); a.record(); dev.copy_(buf, non_blocking=True); b.record(); torch.cuda.synchronize(); t.append(a.elapsed_time(b) / 1000)
res["pinnedCopyGBps"] = buf.numel() / statistics.median(t[1:]) / 1e9; res["device"] = torch.cuda.get_device_name(0)
json.dump(res, open('/tmp/r/floor.json', 'w'), indent=1); print(res)
PY
  cat $R/floor.log
  LEFT=$(( 575 - ($(date +%s)-S) - 25 ))
  [ $LEFT -lt 40 ] && echo "headline skipped: ${LEFT}s left"
  [ $LEFT -ge 40 ] && timeout $((LEFT+20)) node bin/swapserve.js bench headline --models-dir /tmp/hm --phases swap --prompts 128 --reps 3 --baseline $R/floor.json \
    --out $R/headline-graphs.json --md $R/headline-graphs.md --deadline-s $LEFT 2> $R/headline.log > /dev/null
  echo "headline rc=$? $(el)"; grep -E "swap|warm" $R/headline-graphs.md | head -20
fi
echo "done $(el)"
