#!/usr/bin/env bash
# `make bench`: runs every benchmark binary built in BUILD_DIR ($1) and prints
# its figures; each benchmark measures its own baseline in the same run.
set -euo pipefail
build="${1:-build}"
for b in "$build"/*_bench; do
  [ -x "$b" ] || continue
  echo "================ $(basename "$b") ================"
  "$b"
done
