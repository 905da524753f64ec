#!/usr/bin/env bash
# Continuous batching and the prompt cache through the server (issue 13),
# each figure against its baseline in the same run:
#  1. aggregate decode tok/s of K = 1, 2, 4, 8 greedy streams at once
#     (POST /v1/completions, TOKENS tokens each) against one stream;
#  2. time to first token of a prompt with a ~1,000-token system part (110 words: the generated tokenizer spends ~8 tokens a word) on a
#     prompt-cache miss against a hit (same system part, another question);
#  3. one request with n = 2, 4, 8 choices (decoded in one batch, the prompt
#     once) against the same choices as n = 1 requests one after another.
# SECTIONS (default "streams ttft choices") picks which run.
# Model: the llama-3.2-1B shape cut to LAYERS layers, Q8_0 (generated once).
# Run it alone: flock -x /tmp/bench.lock bench/batch_bench.sh [BUILD] [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-batch-bench}
LAYERS=${LAYERS:-4}
TOKENS=${TOKENS:-32}
WORDS=${WORDS:-110}
SECTIONS=${SECTIONS:-streams ttft choices}
HART="$BUILD/hart"
mkdir -p "$WORK"
. bench/serve_lib.sh
bench_model "$LAYERS"
bench_store bbm
bench_serve --max-generations 8
/usr/bin/python3 bench/batch_client.py streams "$port" bbm 4 1 >/dev/null  # load the model
if [[ " $SECTIONS " == *" streams "* ]]; then
  echo "## concurrent greedy streams, $TOKENS tokens each (layers=$LAYERS)"
  for k in 1 2 4 8; do /usr/bin/python3 bench/batch_client.py streams "$port" bbm "$TOKENS" "$k"; done
fi
if [[ " $SECTIONS " == *" ttft "* ]]; then
  echo "## time to first token, $WORDS-word (~1,000-token) system prompt: miss vs prompt-cache hit"
  for i in 1 2; do /usr/bin/python3 bench/batch_client.py ttft "$port" bbm "$WORDS"; done
fi
if [[ " $SECTIONS " == *" choices "* ]]; then
  echo "## n choices in one request (one batch) vs n requests one after another, $TOKENS tokens each"
  for n in 2 4 8; do /usr/bin/python3 bench/batch_client.py choices "$port" bbm "$TOKENS" "$n"; done
fi
curl -s "http://127.0.0.1:$port/metrics" | grep -E "^hart_prompt_cache" || true
bench_stop
