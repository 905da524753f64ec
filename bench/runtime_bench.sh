#!/usr/bin/env bash
# Runtime benchmark: a synthetic model of the llama-3.2-1B shape (dim 2048,
# 16 layers, 32 heads, 8 kv heads, ffn 8192, vocab 128256, tied head) in Q8_0
# and Q4_0, each also ingested into a NinaDB store of its own. Decode tok/s
# fully resident (file and store) against the memory-bandwidth bound, and
# streamed at budgets of 50% and 25% of the weights from the file and from
# the store, each process in a memory cgroup capped at budget + KV cache +
# 100 MiB with the page cache dropped before it, against the storage bound
# (O_DIRECT sequential read of the model file, measured in the same
# process); then one layer, from both. One JSON line per configuration,
# then a check line: the same greedy tokens as the resident run, and peak
# RSS within budget + KV + 100 MiB.
#
#   bench/runtime_bench.sh [BUILD_DIR] [WORK_DIR] [TOKENS] [REPEATS]
#
# Storage bandwidth on these VMs moves by 2x within minutes, so one file run
# against one store run says little: each configuration (resident included) runs
# REPEATS (default 3) times, file and store alternating, and a summary line
# gives the median tok/s of each path, their ratio, and the bytes each read
# from storage per token (/proc/self/io: the file path's kernel readahead
# shows as bytes beyond the streamed ones). BUDGETS="0.5 0.25" limits the
# budgeted configurations run (default "0.5 0.25 min"; min: one layer).
#
# The cgroup cap and the cache drop need root and cgroup v1; without them the
# runs go on uncapped (runtime_bench says so) and without the drop.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-runtime-bench}
TOKENS=${3:-16}
REPEATS=${4:-3}
drop_caches() {
  sync
  if ! echo 1 > /proc/sys/vm/drop_caches 2>/dev/null; then
    echo "# cannot drop the page cache (not root): cold runs start with whatever is cached"
  fi
}
check() {  # $1: reference JSON line, $2: this run's line
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
ref, run = json.loads(sys.argv[1]), json.loads(sys.argv[2])
same = ref["tokens"] == run["tokens"]
limit = run.get("rss_limit")
rss_ok = limit is None or run["peak_rss"] <= limit
print(f"# check: tokens {'identical' if same else 'DIFFER'} to the resident run; "
      f"peak RSS {run['peak_rss'] / 2**20:.0f} MiB" +
      (f" {'<=' if rss_ok else '>'} limit {limit / 2**20:.0f} MiB" if limit else ""))
EOF
}
# Pairs alternate which path goes first (file-store, store-file, ...): in
# one idle set the first store run of each model was its slowest, so a
# fixed order could bias the pair ratios.
order() { if [ $(($1 % 2)) -eq 1 ]; then echo file store; else echo store file; fi; }
summarize() {  # stdin: "file|store JSON" lines; $1 model type, $2 budget
  local tmp
  tmp=$(mktemp)
  cat > "$tmp"
  /usr/bin/python3 - "$tmp" "$1" "$2" <<'EOF'
import json, statistics, sys
runs = {"file": [], "store": []}
for line in open(sys.argv[1]):
    src, js = line.split(" ", 1)
    runs[src].append(json.loads(js))
med = lambda src, k: statistics.median(r[k] for r in runs[src])
f, s = med("file", "decode_tok_s"), med("store", "decode_tok_s")
bound = med("store", "storage_bound_tok_s") if "storage_bound_tok_s" in runs["store"][0] else 0
pairs = [round(b["decode_tok_s"] / a["decode_tok_s"], 2) for a, b in zip(runs["file"], runs["store"])]
print(json.dumps({"summary": sys.argv[2], "budget": sys.argv[3], "runs": len(runs["store"]),
    "file_tok_s_median": round(f, 3), "store_tok_s_median": round(s, 3), "store_over_file": round(s / f, 3),
    "store_over_storage_bound": round(s / bound, 3) if bound else None, "pair_ratios": pairs,
    "storage_mib_per_token_file": round(med("file", "storage_bytes_per_token") / 2**20, 1),
    "storage_mib_per_token_store": round(med("store", "storage_bytes_per_token") / 2**20, 1)}))
EOF
  rm -f "$tmp"
}
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
for t in q8_0 q4_0; do
  model="$WORK/$t/model.gguf"
  store="$WORK/$t/store"
  if [ ! -f "$model" ]; then
    /usr/bin/python3 tests/fixtures/make_tiny_llama.py "$WORK/$t" --shape llama-3.2-1b --type "$t"
  fi
  if [ ! -d "$store" ]; then
    "$BUILD/hart" --store "$store" init >/dev/null
    "$BUILD/hart" --store "$store" ingest "$model" --model "bench-$t" --license mit >/dev/null
  fi
  # Resident: REPEATS pairs too (one pair swung 0.90-1.05 between idle
  # runs); the first file run's tokens are the reference for every check.
  ref=""
  lines=()
  for rep in $(seq 1 "$REPEATS"); do
    for from in $(order "$rep"); do
      args=()
      [ "$from" = store ] && args=(--store "$store" --ref "bench-$t")
      echo "# $t full memory, from the $from, run $rep"
      line=$("$BUILD/runtime_bench" "$model" --tokens "$TOKENS" "${args[@]}")
      echo "$line"
      if [ -z "$ref" ]; then ref=$line; else check "$ref" "$line"; fi
      lines+=("$from $line")
    done
  done
  printf '%s\n' "${lines[@]}" | summarize "$t" resident
  for budget in ${BUDGETS:-0.5 0.25 min}; do
    budget_args=(--budget-frac "$budget")
    [ "$budget" = min ] && budget_args=(--budget-min)
    lines=()
    for rep in $(seq 1 "$REPEATS"); do
      for from in $(order "$rep"); do
        args=()
        [ "$from" = store ] && args=(--store "$store" --ref "bench-$t")
        echo "# $t budget ${budget} of the weights (min: one layer), cold, from the $from, cgroup cap, run $rep"
        drop_caches
        line=$("$BUILD/runtime_bench" "$model" --tokens "$TOKENS" --cold "${budget_args[@]}" \
                 --cgroup hart-bench "${args[@]}")
        echo "$line"
        check "$ref" "$line"
        lines+=("$from $line")
      done
    done
    printf '%s\n' "${lines[@]}" | summarize "$t" "$budget"
  done
done
