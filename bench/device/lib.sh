# Sourced by bench/device/c*.sh: results under /tmp/r, packed into $OUT/r.tgz (plus the summary and EXTRA files) on
# exit, so the device tool's 8-file limit never drops any; el = seconds since the start; all output also to summary.log.
set -u
export PYTHONUNBUFFERED=1
R=/tmp/r; rm -rf $R; mkdir -p $R
S=$(date +%s); el(){ echo "+$(( $(date +%s)-S ))s"; }
pack(){ eval "set -- ${EXTRA:-}"; cp -f $R/summary.log "$@" "$OUT/" 2>/dev/null; tar czf "$OUT/r.tgz" -C /tmp r; }
trap pack EXIT
exec > >(tee -a $R/summary.log) 2>&1
