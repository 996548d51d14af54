#!/usr/bin/env bash
# Packs what the GPU machine lacks into .carry/ (git-ignored): Node, redis-server + its two libraries, and the
# runtime node_modules (not the dev-only node-llama-cpp: its llama.cpp binaries are ~700 MB), stories260K, and the
# Azure conv + GenTD26 traces (.carry/fleet-data). On the GPU machine,
# `source scripts/uncarry.sh` unpacks them (see ../shared/DEVICE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry/lib
[ -f .carry/node.xz ] || xz -T2 -c "$(command -v node)" > .carry/node.xz
cp "$(readlink -f "$(command -v redis-server)")" .carry/redis-server
cp -L /usr/lib/x86_64-linux-gnu/liblzf.so.1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 .carry/lib/
# numactl (issue 16: `up` runs each GPU's worker on its GPU's NUMA node), where this machine has it.
if command -v numactl >/dev/null; then cp "$(readlink -f "$(command -v numactl)")" .carry/numactl; cp -L /lib/x86_64-linux-gnu/libnuma.so.1 .carry/lib/; fi
tar --exclude=node_modules/typescript --exclude=node_modules/playwright-core --exclude=node_modules/openai \
  --exclude=node_modules/@types --exclude='node_modules/.cache' \
  --exclude=node_modules/node-llama-cpp --exclude=node_modules/@node-llama-cpp -cf - node_modules | xz -T2 -3 > .carry/nm.tar.xz
# stories260K (2 MB) for the tests that need the shared data there: SWAPSERVE_SHARED_DATA=$PWD/.carry/data.
if [ -f ../shared/data/models/stories260K/stories260K.gguf ]; then
  mkdir -p .carry/data/models && cp -r ../shared/data/models/stories260K .carry/data/models/
fi
# The two traces the device scripts replay (bench/fleet, bench/load, bench/multigpu read .carry/fleet-data/): 2.7 MB.
T=../shared/data/traces
if [ -f $T/azure-llm-2023/AzureLLMInferenceTrace_conv.csv ]; then
  mkdir -p .carry/fleet-data
  cp $T/azure-llm-2023/AzureLLMInferenceTrace_conv.csv .carry/fleet-data/
  [ -f $T/alibaba-gentd26/lora_request_trace.csv ] && cp $T/alibaba-gentd26/lora_request_trace.csv .carry/fleet-data/
else
  echo "carry.sh: no $T/azure-llm-2023/AzureLLMInferenceTrace_conv.csv: bench/load and bench/fleet will miss their traces on the device" >&2
fi
du -sh .carry/*
