#!/usr/bin/env bash
# bench/merge_bench.sh BUILD_DIR WORKDIR: `hart merge` on two 1B-shaped
# models (llama-3.2-1b shape, 16 layers, tied embedding, Q8_0 from
# tests/fixtures/make_tiny_llama.py, 1.32 GB each), against the store's own
# read bandwidth measured in the same run (O_DIRECT sequential reads of the
# packs holding the inputs, as the merge reads them).
#   - linear to bfloat16: GB/s of input (bytes read from packs / seconds of
#     the whole derivation: read, merge, scratch GGUF write, ingest) and the
#     process's peak RSS;
#   - ties (density 0.5: two radix passes for the magnitude threshold, then
#     the merge pass, so the inputs are read three times);
#   - passthrough stacking 8 + 8 layers: new bytes stored.
# Setup (generation, ingest) runs under the shared bench lock; the timed
# part takes it exclusively. With BASE_HART=/path/to/another/hart, linear
# and ties also run with that binary in the same locked section (a before /
# after on the same store and machine state). Each timed merge also reports
# its CPU time (user + sys over wall: how many cores it kept busy).
set -euo pipefail
B=$(realpath "$1"); W=$2; H=$B/hart; S=$W/store
mkdir -p "$W"
GEN=/usr/bin/python3\ $(dirname "$0")/../tests/fixtures/make_tiny_llama.py
for i in 1 2; do
  [ -f "$W/m$i/model.gguf" ] || $GEN "$W/m$i" --shape llama-3.2-1b --type q8_0 --tied --seed $i
done
rm -rf "$S"
$H --store "$S" init > /dev/null
for i in 1 2; do
  flock -s /tmp/bench.lock $H --store "$S" --no-progress ingest "$W/m$i/model.gguf" --model m$i --license mit > /dev/null
done
# The baseline binary gets its own copy of the store, so neither run finds
# the other's output already stored (dedup would skip its writes).
rm -rf "$S.base"
[ -z "${BASE_HART:-}" ] || cp -a "$S" "$S.base"
cat > "$W/lin.yaml" <<'Y'
merge_method: linear
models:
  - {model: m1, parameters: {weight: 0.5}}
  - {model: m2, parameters: {weight: 0.5}}
dtype: bfloat16
Y
cat > "$W/ties.yaml" <<'Y'
merge_method: ties
base_model: m1
models:
  - {model: m2, parameters: {weight: 0.7, density: 0.5}}
dtype: bfloat16
Y
cat > "$W/stack.yaml" <<'Y'
merge_method: passthrough
slices:
  - sources: [{model: m1, layer_range: [0, 8]}]
  - sources: [{model: m2, layer_range: [8, 16]}]
Y
flock -x /tmp/bench.lock bash -c '
  set -euo pipefail
  H=$1; S=$2; W=$3; BH=$4
  uptime
  sync
  bytes=0; t0=$(date +%s.%N)
  for p in "$S"/packs/*.pack; do
    dd if="$p" of=/dev/null bs=8M iflag=direct status=none
    bytes=$((bytes + $(stat -c %s "$p")))
  done
  t1=$(date +%s.%N)
  echo "store read (dd iflag=direct bs=8M of the packs): $bytes bytes in $(echo "$t1 - $t0" | bc) s = $(echo "scale=3; $bytes / ($t1 - $t0) / 1000000000" | bc) GB/s"
  cpu() { /usr/bin/python3 -c "import sys; u,s,e=map(float,open(sys.argv[1]).read().split()[:3]); print(\"  cpu {:.1f} s user + {:.1f} s sys over {:.1f} s wall = {:.2f} cores busy\".format(u, s, e, (u+s)/e))" "$1"; }
  for bin in $BH $H; do
    tag=$([ "$bin" = "$H" ] && echo "" || echo " [BASE_HART $bin]")
    SS=$([ "$bin" = "$H" ] && echo "$S" || echo "$S.base")
    /usr/bin/time -o "$W/lin.time" -f "%U %S %e" $bin --store "$SS" --no-progress --json merge "$W/lin.yaml" --as lin > "$W/lin.json"
    /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(\"merge linear -> bf16{}: input {:.3f} GB in {:.2f} s = {:.3f} GB/s of input; output {:.3f} GB; peak RSS {:.0f} MiB; new bytes {:.3f} GB; digest {}\".format(sys.argv[2], j[\"input_bytes\"]/1e9, j[\"seconds\"], j[\"input_bytes\"]/1e9/j[\"seconds\"], j[\"output_bytes\"]/1e9, j[\"peak_rss_bytes\"]/2**20, j[\"new_bytes\"]/1e9, j.get(\"file_digest\", \"?\")))" "$W/lin.json" "$tag"
    cpu "$W/lin.time"
    /usr/bin/time -o "$W/ties.time" -f "%U %S %e" $bin --store "$SS" --no-progress --json merge "$W/ties.yaml" --as ties > "$W/ties.json"
    /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(\"merge ties (3 passes over the inputs) -> bf16{}: input {:.3f} GB in {:.2f} s = {:.3f} GB/s of input; peak RSS {:.0f} MiB; digest {}\".format(sys.argv[2], j[\"input_bytes\"]/1e9, j[\"seconds\"], j[\"input_bytes\"]/1e9/j[\"seconds\"], j[\"peak_rss_bytes\"]/2**20, j.get(\"file_digest\", \"?\")))" "$W/ties.json" "$tag"
    cpu "$W/ties.time"
  done
  $H --store "$S" --no-progress --json merge "$W/stack.yaml" --as stack > "$W/stack.json"
  /usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(\"merge passthrough 8+8 layers: {} tensors taken, {} computed, output {:.3f} GB, new bytes stored {} ({:.2f} s)\".format(j[\"tensors_taken\"], j[\"tensors_computed\"], j[\"output_bytes\"]/1e9, j[\"new_bytes\"], j[\"seconds\"]))" "$W/stack.json"
  uptime
  rm -rf "$S.base"
' _ "$H" "$S" "$W" "${BASE_HART:-}"
