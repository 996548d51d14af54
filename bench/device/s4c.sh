#!/usr/bin/env bash
# session 4, call C (≈ 9 min, after s4a/s4b on the same warm machine): 8B Q8_0 / Q4_K_M through the stack (17).
source bench/device/lib.sh
rm -rf /tmp/m8b /tmp/codec8b
OUT=$R/quant QUANT_SKIP_BUILD=1 BUDGET_S=${BUDGET_S:-500} bash bench/quant/stack_device.sh > /dev/null 2>&1; echo "quant stack rc=$? $(el)"
tail -60 $R/quant/quant-stack.log
