#!/usr/bin/env bash
# Server benchmark (issue 12), each figure with its baseline in the same run:
#  1. wrk, 64 connections, 2 threads, DURATION s each, against GET /v1/models,
#     GET /api/search and POST /api/sql: requests/s, p99, errors.
#  2. Time to first token and decode tok/s of one greedy generation through
#     POST /v1/completions (streamed, same prompt) against `hart run --stats` on the
#     same model: the server's overhead.
#  3. The same generation while 1,000 idle keep-alive connections are held
#     open, against (2) on the idle server.
# Model: the llama-3.2-1B shape cut to LAYERS layers, Q8_0 (generated once).
# Run it alone: flock -x /tmp/bench.lock bench/serve_bench.sh [BUILD] [WORK]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-serve-bench}
DURATION=${DURATION:-5}
LAYERS=${LAYERS:-4}
TOKENS=${TOKENS:-64}
HART="$BUILD/hart"
mkdir -p "$WORK"
. bench/serve_lib.sh
bench_model "$LAYERS"
bench_store sbm
ulimit -n 8192
bench_serve
base="http://127.0.0.1:$port"

echo "## wrk -t2 -c64 -d${DURATION}s --latency"
for target in "/v1/models" "/api/search?q=sbm&k=10"; do
  echo "# GET $target"
  wrk -t2 -c64 -d"${DURATION}s" --latency "$base$target" | grep -E "Requests/sec|99%|Non-2xx|Socket errors|requests in"
done
echo "# POST /api/sql (bench/sql.lua)"
wrk -t2 -c64 -d"${DURATION}s" --latency -s bench/sql.lua "$base/api/sql" | grep -E "Requests/sec|99%|Non-2xx|Socket errors|requests in"

echo "## generation, $TOKENS tokens greedy"
# Warm both paths once (page cache, model load in the server).
"$HART" --store "$store" run sbm "Tell me a story." -n 8 --temp 0 >/dev/null 2>&1
/usr/bin/python3 bench/serve_client.py stream "$port" sbm 8 >/dev/null
for i in 1 2; do
  echo "# hart run (baseline), run $i"
  "$HART" --store "$store" run sbm "Tell me a story." -n "$TOKENS" --temp 0 --stats 2>&1 >/dev/null | grep -iE "prefill|decode" || true
  echo "# server, idle, run $i"
  /usr/bin/python3 bench/serve_client.py stream "$port" sbm "$TOKENS"
  echo "# server, 1000 idle keep-alive connections held, run $i"
  /usr/bin/python3 bench/serve_client.py stream "$port" sbm "$TOKENS" 1000
done
bench_stop
