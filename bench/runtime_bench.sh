#!/usr/bin/env bash
# Runtime benchmark: a synthetic model of the llama-3.2-1B shape (dim 2048,
# 16 layers, 32 heads, 8 kv heads, ffn 8192, vocab 128256, tied head) in Q8_0
# and Q4_0; decode tok/s fully mapped against the memory-bandwidth bound, and
# streamed at budgets of 50%, 25% and one layer with the page cache dropped,
# against the storage bound. One JSON line per configuration.
#
#   bench/runtime_bench.sh [BUILD_DIR] [WORK_DIR] [TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-runtime-bench}
TOKENS=${3:-16}
for t in q8_0 q4_0; do
  model="$WORK/$t/model.gguf"
  if [ ! -f "$model" ]; then
    /usr/bin/python3 tests/fixtures/make_tiny_llama.py "$WORK/$t" --shape llama-3.2-1b --type "$t"
  fi
  echo "# $t full memory"
  "$BUILD/runtime_bench" "$model" --tokens "$TOKENS"
  for frac in 0.5 0.25; do
    echo "# $t budget ${frac} of the weights, cold"
    "$BUILD/runtime_bench" "$model" --tokens "$TOKENS" --cold --budget-frac "$frac"
  done
  echo "# $t budget one layer, cold"
  "$BUILD/runtime_bench" "$model" --tokens "$TOKENS" --cold --budget-min
done
