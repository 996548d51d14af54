#!/usr/bin/env bash
# Copies the few ggml files the GPU bench needs (ggml's CUDA mmvq + q8_1 quantize kernels and their headers) from a
# local ggml git mirror into bench/quant/.ggml (git-ignored; ~1 MB), for the lead to carry to the GPU machine:
#   bash bench/quant/fetch_ggml.sh /work/.mirror/ggml-org+ggml/repo      # (the search tool's `fetch github:ggml-org/ggml`)
# Nothing of ggml is committed; the bench builds it from this folder when present.
set -euo pipefail
MIRROR=${1:?path to a ggml git dir}
REV=${GGML_REV:-d99724f2}
DEST="$(dirname "$0")/.ggml"
rm -rf "$DEST"; mkdir -p "$DEST"
git --git-dir="$MIRROR" rev-parse --verify "$REV^{commit}" >/dev/null 2>&1 || GD="$MIRROR/.git"
GD=${GD:-$MIRROR}
files=$(git --git-dir="$GD" ls-tree -r --name-only "$REV" -- include src/ggml-cuda src | \
  grep -E '^include/[^/]+\.h$|^src/[^/]+\.h$|^src/ggml-cuda/[^/]+\.cuh$|^src/ggml-cuda/(mmvq|quantize)\.cu$|^src/ggml-cuda/vendors/' )
for f in $files; do mkdir -p "$DEST/$(dirname "$f")"; git --git-dir="$GD" show "$REV:$f" > "$DEST/$f"; done
echo "$REV" > "$DEST/REV"
du -sh "$DEST"
