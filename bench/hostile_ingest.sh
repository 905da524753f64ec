#!/usr/bin/env bash
# Ingest of hostile tensor sets (issue 11), one or more hart binaries in the
# same run (e.g. main's build as the baseline, then this tree's):
#   bench/hostile_ingest.sh WORKDIR HART [HART ...]
# Files: 50,000 and 200,000 empty tensors; 2,000 identical 64 KiB tensors.
set -u
work="$1"; shift
mkdir -p "$work"; cd "$work"
gen() {  # n each out
  /usr/bin/python3 - "$@" <<'PY'
import struct, sys
n, each, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
h = "{" + ",".join('"t%d":{"dtype":"U8","shape":[%d],"data_offsets":[%d,%d]}' % (i, each, i * each, (i + 1) * each) for i in range(n)) + "}"
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h.encode()); z = bytes(each)
    for _ in range(n): f.write(z)
PY
}
[ -f empty50k.safetensors ] || gen 50000 0 empty50k.safetensors
[ -f empty200k.safetensors ] || gen 200000 0 empty200k.safetensors
[ -f lora2000.safetensors ] || gen 2000 65536 lora2000.safetensors
for bin in "$@"; do
  for f in empty50k lora2000 empty200k; do
    rm -rf store; "$bin" --store store init >/dev/null
    s=$(date +%s.%N)
    timeout 300 "$bin" --store store --no-progress ingest $f.safetensors --license mit >/dev/null; rc=$?
    e=$(date +%s.%N)
    edges=$(sqlite3 store/catalog.sqlite "select count(*) from edge")
    ties=$(sqlite3 store/catalog.sqlite "select count(*) from edge where kind='ties'")
    printf "%-40s %-10s rc=%s %7.2f s edges=%s ties=%s catalog=%s\n" "$bin" $f $rc \
      "$(echo "$e - $s" | bc)" "$edges" "$ties" "$(stat -c %s store/catalog.sqlite)"
  done
done
rm -rf store
