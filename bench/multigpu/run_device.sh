#!/usr/bin/env bash
# One device call for issue 16 (run from the repo root on a GPU machine of any GPU count, .carry carried — make it
# with `bash scripts/carry.sh`; numactl joins it where this machine has it):
#   1. the host: GPUs, PCIe links, GPU <-> NUMA topology (nvidia-smi topo -m), NUMA nodes, numactl;
#   2. an 8B-shaped bf16 random model (bench/headline/make_models.py's llama8b), written while the addon builds;
#      then the floor (bench/multigpu/floor.py): plain pinned host -> GPU copies, one GPU alone and all at once;
#   3. `swapserve bench multigpu` on every GPU (GPUS to override): `swapserve up` starts one worker per GPU (split host
#      budgets, NUMA binding: its placement lines are in the JSON), 2N models (one file) spread over them, then single
#      swap-ins against N at once (aggregate GB/s vs N x one link, slowest TTFT vs one swap), then the load replay as a
#      closed loop of CONC streams per GPU, on one GPU and on all (goodput vs N x one). On 1 GPU it measures the
#      single-link baselines (the ratios are then 1 by construction).
# Knobs: GPUS (all), REPS (5), CONC (16), REQS (64 per GPU), FLOOR_GIB (4), BUDGET_S (520). The trace lengths come from
# .carry/fleet-data/AzureLLMInferenceTrace_conv.csv where carried, else a fixed 512-in / 64-out request.
# Writes four files under $OUT: env.txt (host, topology, build and model logs), multigpu.md, multigpu.json, multigpu.log.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/multigpu-out}; mkdir -p "$OUT"
START=$(date +%s)
el() { echo "+$(( $(date +%s) - START ))s"; }
ENV="$OUT/env.txt"
M=${MULTIGPU_MODELS:-/tmp/mg-models}
{
  date -u; nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,pcie.link.gen.max,pcie.link.width.max,driver_version --format=csv
  nvidia-smi topo -m; nproc; free -g; df -h /tmp
  ls -d /sys/devices/system/node/node* 2>/dev/null
  nvidia-smi --query-gpu=index,pci.bus_id --format=csv,noheader | while IFS=', ' read -r i b; do
    d=$(echo "${b: -12}" | tr 'A-F' 'a-f'); echo "GPU $i $d numa_node $(cat /sys/bus/pci/devices/$d/numa_node 2>/dev/null || echo ?)"; done
  command -v numactl && numactl --hardware
} > "$ENV" 2>&1
cat "$ENV"
(python3 -c "import sys; sys.path.insert(0, 'bench/headline'); import make_models as m; m.write('$M/llama8b', m.configs()['llama8b'])" > /tmp/mg-make.log 2>&1
 echo "make rc=$?" >> /tmp/mg-make.log) &
MAKE=$!
source scripts/uncarry.sh > /tmp/mg-build.log 2>&1 || echo "build failed"
{ echo "--- build"; tail -5 /tmp/mg-build.log; } >> "$ENV"; tail -3 /tmp/mg-build.log; echo "build done $(el)"
{ echo "--- numactl after uncarry: $(command -v numactl || echo none)"; } >> "$ENV"
wait $MAKE; { echo "--- model"; cat /tmp/mg-make.log; } >> "$ENV"; tail -2 /tmp/mg-make.log; echo "model done $(el)"
# The floor: plain pinned copies, one GPU alone and all at once (torch; into env.txt).
timeout 120 python3 bench/multigpu/floor.py "${FLOOR_GIB:-4}" 3 2>&1 | tee -a "$ENV"; echo "floor done $(el)"
T=/tmp/mg-traces/azure-llm-2023; mkdir -p $T
for f in .carry/fleet-data/AzureLLMInferenceTrace_conv.csv .carry/load-data/AzureLLMInferenceTrace_conv.csv; do [ -f "$f" ] && ln -sf "$PWD/$f" $T/; done
[ -f $T/AzureLLMInferenceTrace_conv.csv ] && export SWAPSERVE_TRACES_DIR=/tmp/mg-traces
LEFT=$(( ${BUDGET_S:-520} - ($(date +%s) - START) - 60 ))
[ $LEFT -lt 90 ] && LEFT=90
echo "bench multigpu, deadline ${LEFT}s $(el)"
timeout $((LEFT + 50)) node bin/swapserve.js bench multigpu --model "$M/llama8b" ${GPUS:+--gpus $GPUS} --reps "${REPS:-5}" \
  --concurrency "${CONC:-16}" --requests "${REQS:-64}" --max-input 1024 --max-output 64 --deadline-s "$LEFT" \
  --out "$OUT/multigpu.json" --md "$OUT/multigpu.md" > /dev/null 2> "$OUT/multigpu.log"
echo "bench rc=$? $(el)"
grep -E "^\[multigpu|\[up\]|FAILED|Error" "$OUT/multigpu.log" | cut -c1-400 | tail -60
cat "$OUT/multigpu.md" 2>/dev/null
