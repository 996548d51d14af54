# Sourced by bench/device/c*.sh: results under /tmp/r, packed into $OUT/r.tgz (plus the summary and EXTRA files) on
# exit, so the device tool's 8-file limit never drops any; el = seconds since the start; all output also to summary.log.
# The device tool kills a command at its limit (600 s), maybe with no EXIT trap run: a watchdog packs at HARD_S (585) too, so
# a call that runs long still returns its tarball, and the summary is written to $OUT as it grows.
set -u
export PYTHONUNBUFFERED=1
: "${OUT:?OUT, the output folder of the device tool, is not set}"
R=/tmp/r; rm -rf $R; mkdir -p $R
S=$(date +%s); el(){ echo "+$(( $(date +%s)-S ))s"; }
pack(){ eval "set -- ${EXTRA:-}"; cp -f "$@" "$OUT/" 2>/dev/null; tar czf "$OUT/r.tgz.part" -C /tmp r 2>/dev/null; mv -f "$OUT/r.tgz.part" "$OUT/r.tgz"; }
watchdog(){ sleep "${HARD_S:-585}" </dev/null >/dev/null 2>&1 & local p=$!; trap 'kill $p 2>/dev/null; exit 0' TERM; wait $p || return; echo "[lib.sh] $(el): the call is near its 600 s limit: packing now"; pack; }
watchdog & WD=$!
trap 'kill $WD 2>/dev/null; pack' EXIT
exec > >(tee -a $R/summary.log "$OUT/summary.log") 2>&1
# The two 8B-shaped quantized files (bench/quant/random_gguf.ts) in $M = /tmp/quant-models, written in the background
# unless an earlier call on this machine left them; wait_8b_files waits for those writers by pid (never a bare `wait`:
# it would wait for the watchdog and the tee above too, and never return).
start_8b_files(){ M=/tmp/quant-models; mkdir -p $M; WRITERS=(); local t; for t in q8_0 q4_k_m; do
  [ -f $M/llama8b-$t.gguf ] && continue
  node --import tsx bench/quant/random_gguf.ts $M --shape 8b --types $t > $R/write-$t.log 2>&1 & WRITERS+=($!)
done; }
wait_8b_files(){ [ ${#WRITERS[@]} -gt 0 ] && wait "${WRITERS[@]}"; echo "files $(el)"; ls -la $M; }
