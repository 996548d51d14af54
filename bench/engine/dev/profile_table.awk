# Per-op table from the CUDA backend's PROFILE lines (SWAPSERVE_CUDA_PROFILE=1): for each decode batch size B
# (passes with T == B, one token a sequence), the mean ms of each op over those passes and its share of the pass.
# Usage: awk -f bench/engine/dev/profile_table.awk stderr.log
/^PROFILE T=/ {
  split($2, t, "="); split($3, b, "="); T = t[2]; B = b[2];
  if (T != B) next;
  n[B]++; tot[B] += $5;
  for (i = 7; i < NF; i += 2) {
    op = $i; if (!((B, op) in ms)) { order[B] = order[B] " " op } ms[B, op] += $(i + 1);
  }
}
END {
  for (B in n) {
    printf "\nbatch %d: %d passes, %.3f ms a pass (profiled: no graphs, no PDL)\n\n| op | ms | share |\n|---|---:|---:|\n", B, n[B], tot[B] / n[B];
    k = split(order[B], ops, " ");
    for (j = 1; j <= k; j++) printf "| %s | %.3f | %.1f%% |\n", ops[j], ms[B, ops[j]] / n[B], 100 * ms[B, ops[j]] / tot[B];
  }
}
