#!/usr/bin/env bash
# One device call (≈ 5–7 min) for issue 17's whole-stack part, on 8B-shaped quantized models:
#   1. writes Llama-3.1-8B-shaped GGUF files, Q8_0 (8.5 GB) and Q4_K_M (4.9 GB), with bench/quant/random_gguf.ts:
#      RANDOM weights drawn directly in the quantized domain (random quants, f16 scales giving sd ≈ 0.02), the
#      project's GGUF layout and metadata, the tiny BPE tokenizer padded to the 128,256-token vocab. Written while
#      the addon builds (Node and node_modules come from .carry; the files are kept across calls on a warm machine);
#   2. measures the device read bandwidth (bench/quant/bandwidth.py, torch) for the decode floor;
#   3. bench/quant/stack.ts: per file, load disk -> pinned host, the plain pinned copy of the same bytes (floor),
#      swap TTFT for a 128-token prompt (another model resident: evict, swapIn, engine made, first token, as a worker
#      serves it), warm TTFT, batch-1 decode step time beside bytes-read / bandwidth. Bars: Q4_K_M swap TTFT ≤ 0.12 s,
#      decode ≥ 70 % of the floor. QUANT_BF16=1 adds the bf16 8B shape (bench/headline/make_models.py) to the table;
#   4. bench/quant/gateway.ts: the two files through the whole stack (private Redis, gateway, scheduler, one worker),
#      swap and warm TTFT of streamed requests from the traces;
#   5. test/quant/cuda.test.ts: CUDA vs CPU logits (tiny models of every type, random models at 8B row widths, and
#      the two whole 8B-shaped files via SWAPSERVE_QUANT_8B_FILES); stories260K is found in .carry/data when carried.
# Run from the repo root with .carry carried (scripts/carry.sh here first). Writes under $OUT: quant-stack.log (all
# output), quant-stack.md (the table), quant-stack.json (raw), quant-stack-test.log.
# A dry run of the plumbing without a GPU: QUANT_SHAPE=tiny QUANT_BACKEND=cpu QUANT_SKIP_BUILD=1 (built addon kept).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/quant-stack-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/quant-stack.log") 2>&1
START=$(date +%s)
BUDGET_S=${BUDGET_S:-470}
el() { echo "+$(( $(date +%s) - START ))s"; }
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }
M=${QUANT_MODELS:-/tmp/quant-models}
# Each long step runs in its own process group (its children too: the stack's gateway, scheduler and worker, the
# test runner's file process), killed on its time limit and at its end; groups a previous call left are killed first.
PGF=/tmp/quant-stack.pgids
[ -f "$PGF" ] && while read -r g; do kill -KILL -- "-$g" 2>/dev/null; done < "$PGF"
: > "$PGF"
run_group() {
  local t=$1; shift
  setsid "$@" & local pg=$!
  echo "$pg" >> "$PGF"
  # The watcher holds no output pipe open and takes its sleep with it when told to stop.
  ( exec > /dev/null 2>&1; trap 'kill "$s"; exit 0' TERM; sleep "$t" & s=$!; wait "$s"
    kill -TERM -- "-$pg"; sleep 5; kill -KILL -- "-$pg" ) & local w=$!
  wait "$pg"; local rc=$?
  kill "$w" 2>/dev/null; wait "$w" 2>/dev/null
  kill -KILL -- "-$pg" 2>/dev/null
  [ "$rc" -eq 143 ] || [ "$rc" -eq 137 ] && echo "[stack_device] $1 ... stopped at its time limit ($t s)"
  return $rc
}
SHAPE=${QUANT_SHAPE:-8b}
mkdir -p "$M"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,pcie.link.gen.max --format=csv,noheader
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB RAM"

# Node and node_modules first (the first steps of scripts/uncarry.sh), so the writers run while the addon builds.
if ! command -v node >/dev/null; then
  xz -dc .carry/node.xz > /tmp/node && chmod +x /tmp/node && mkdir -p /tmp/bin && ln -sf /tmp/node /tmp/bin/node
  export PATH=/tmp/bin:$PATH
fi
[ -d node_modules ] || xz -dc .carry/nm.tar.xz | tar -xf -
export LD_LIBRARY_PATH="$PWD/.carry/lib:${LD_LIBRARY_PATH:-}"
[ -x .carry/redis-server ] && export SWAPSERVE_REDIS_SERVER="$PWD/.carry/redis-server"
[ -f .carry/data/models/stories260K/stories260K.gguf ] && export SWAPSERVE_SHARED_DATA="$PWD/.carry/data"
echo "node $(node --version) $(el)"

pids=()
for t in q8_0 q4_k_m; do
  if [ -f "$M/llama$SHAPE-$t.gguf" ]; then echo "$M/llama$SHAPE-$t.gguf kept from an earlier call"; continue; fi
  (node --import tsx bench/quant/random_gguf.ts "$M" --shape "$SHAPE" --types "$t" > "/tmp/quant-write-$t.log" 2>&1; echo "write $t rc=$?" >> "/tmp/quant-write-$t.log") &
  pids+=($!)
done
if [ "${QUANT_BF16:-0}" = 1 ] && [ ! -f "$M/llama8b-bf16/model.safetensors.index.json" ]; then
  (python3 -c "import sys; sys.path.insert(0, 'bench/headline'); import make_models as m; m.write(sys.argv[1], m.configs()['llama8b'])" "$M/llama8b-bf16" > /tmp/quant-write-bf16.log 2>&1; echo "write bf16 rc=$?" >> /tmp/quant-write-bf16.log) &
  pids+=($!)
fi
if [ "${QUANT_SKIP_BUILD:-0}" = 1 ]; then echo "build skipped" > /tmp/quant-build.log; else ( node native/build.mjs && node scripts/bundle.mjs ) > /tmp/quant-build.log 2>&1; fi
echo "build rc=$? $(el)"; tail -3 /tmp/quant-build.log
for p in "${pids[@]}"; do wait "$p"; done
# After the writers: the bf16 writer draws its weights on the GPU, which would lower the bandwidth measured.
python3 bench/quant/bandwidth.py 4 > /tmp/quant-bw.json 2> /tmp/quant-bw.err; echo "bandwidth rc=$?" >> /tmp/quant-bw.err
cat /tmp/quant-write-*.log /tmp/quant-bw.err 2>/dev/null | grep -v "^$" | tail -12
cat /tmp/quant-bw.json
ls -la "$M"
echo "models + bandwidth done $(el)"

BW=$(python3 -c "import json; print(json.load(open('/tmp/quant-bw.json'))['readGBps'])" 2>/dev/null || echo "")
MODELS="$M/llama$SHAPE-q4_k_m.gguf,$M/llama$SHAPE-q8_0.gguf"
if [ "${QUANT_BF16:-0}" = 1 ] && [ -f "$M/llama8b-bf16/model.safetensors.index.json" ]; then
  node --import tsx bench/load/tokenizer.ts "$M/llama8b-bf16"
  MODELS="$MODELS,$M/llama8b-bf16"
fi
T=$(left); [ "$T" -gt 240 ] && T=240; [ "$T" -lt 60 ] && T=60
run_group "$T" node --import tsx bench/quant/stack.ts --models "$MODELS" ${BW:+--bw-gbps "$BW"} --reps "${QUANT_REPS:-5}" --backend "${QUANT_BACKEND:-cuda}" \
  --out "$OUT/quant-stack.json" --md "$OUT/quant-stack.md"
echo "stack rc=$? $(el)"

# The same files through the whole stack (Redis, gateway, scheduler, one worker), TTFT from the traces.
T=$(left); [ "$T" -gt 200 ] && T=200; [ "$T" -lt 60 ] && T=60
run_group "$T" node --import tsx bench/quant/gateway.ts --models "$M/llama$SHAPE-q4_k_m.gguf,$M/llama$SHAPE-q8_0.gguf" --reps "${QUANT_GW_REPS:-3}" \
  --backend "${QUANT_BACKEND:-cuda}" --md "$OUT/quant-stack.md" 2>&1 | grep -v '^{' | tail -40
echo "gateway rc=${PIPESTATUS[0]} $(el)"

T=$(left); [ "$T" -lt 60 ] && T=60
run_group "$T" env SWAPSERVE_QUANT_8B_FILES="$M/llama$SHAPE-q8_0.gguf,$M/llama$SHAPE-q4_k_m.gguf" node test/run.mjs test/quant/cuda.test.ts > "$OUT/quant-stack-test.log" 2>&1
echo "cuda test rc=$? $(el)"
grep -E "^\s*(✔|✖|﹣|ℹ)" "$OUT/quant-stack-test.log" | cut -c1-400 | tail -40
echo "=== table"
cat "$OUT/quant-stack.md" 2>/dev/null
