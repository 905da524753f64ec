#!/usr/bin/env bash
# Resident memory of a base model plus three fine-tunes loaded together (one
# model registry, as `hart serve` holds them) against the base alone, from
# the registry's accounting and from RSS: bench/models_bench.cc. The base is
# the synthetic llama-3.2-1B shape in Q8_0 (tests/fixtures/make_tiny_llama.py,
# as bench/runtime_bench.sh makes it); each fine-tune changes attn_q and
# attn_v of every layer (a merged q/v LoRA), each with other values.
#
#   bench/models_bench.sh [BUILD_DIR] [WORK_DIR] [LAYERS]
#
# LAYERS (default: the shape's 16) cuts the model short for a quick run.
# Takes the bench lock exclusively (an idle machine) for the measured part only.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-models-bench}
LAYERS=${3:-}
model="$WORK/q8_0${LAYERS:+_l$LAYERS}/model.gguf"
if [ ! -f "$model" ]; then
  /usr/bin/python3 tests/fixtures/make_tiny_llama.py "$(dirname "$model")" --shape llama-3.2-1b --type q8_0 \
    ${LAYERS:+--layers "$LAYERS"} >/dev/null
fi
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
args=("$model" "$WORK/run" --finetunes 3 --tensors attn_q,attn_v)
echo "# $BUILD/models_bench ${args[*]} --step prepare (shared lock), then --step measure (exclusive)"
flock -s /tmp/bench.lock "$BUILD/models_bench" "${args[@]}" --step prepare
sync
flock -x /tmp/bench.lock "$BUILD/models_bench" "${args[@]}" --step measure
