#!/usr/bin/env bash
# One device call (any machine with transformers; no GPU or Node needed): transformers' apply_chat_template renders
# of the conversations in test/openai/fixtures/template-cases.json for the public templates in templates.json.
# Writes $OUT/hf-renders.json; commit it as test/openai/fixtures/hf-renders.json, and
# test/openai/templates.test.ts then compares swapserve's renders with it.
set -euo pipefail
OUT=${OUT:-/tmp/templates-out}
mkdir -p "$OUT"
python3 -c 'import transformers, jinja2; print("transformers", transformers.__version__, "jinja2", jinja2.__version__)'
python3 bench/templates/check_hf.py "$OUT/hf-renders.json"
