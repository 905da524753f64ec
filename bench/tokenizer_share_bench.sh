#!/usr/bin/env bash
# Tokenizer memory of a base model plus three fine-tunes loaded together,
# tokenizers shared by the digest of their inputs (the model registry) against
# each model building its own (as before): bench/tokenizer_share_bench.cc.
# The model is a tiny llama (tests/fixtures/make_tiny_llama.py, q8_0, 2
# layers, tied) given a real 100k-token byte-level BPE vocabulary
# (../shared/testdata/llama-vocab/ggml-vocab-deepseek-llm.gguf, VOCAB to
# change it); each fine-tune changes attn_q of every layer.
#
#   bench/tokenizer_share_bench.sh [BUILD_DIR] [WORK_DIR] [VOCAB]
#
# Takes the bench lock exclusively (an idle machine) for the measured part only.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-tokenizer-share-bench}
VOCAB=${3:-../shared/testdata/llama-vocab/ggml-vocab-deepseek-llm.gguf}
fx="$WORK/fx/model.gguf"
if [ ! -f "$fx" ]; then
  /usr/bin/python3 tests/fixtures/make_tiny_llama.py "$(dirname "$fx")" --type q8_0 --layers 2 --tied >/dev/null
fi
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "# $BUILD/tokenizer_share_bench $VOCAB $WORK --step prepare --fixture $fx --finetunes 3 (shared lock)"
flock -s /tmp/bench.lock "$BUILD/tokenizer_share_bench" "$VOCAB" "$WORK" --step prepare --fixture "$fx" --finetunes 3
sync
for mode in own shared; do
  echo "# $BUILD/tokenizer_share_bench $VOCAB $WORK --step measure --mode $mode (exclusive lock)"
  flock -x /tmp/bench.lock "$BUILD/tokenizer_share_bench" "$VOCAB" "$WORK" --step measure --mode "$mode"
done
