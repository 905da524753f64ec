#!/usr/bin/env bash
# `make demo`: runs every piece's demo in order on an embedded store.
# HART_BIN names the built CLI (the Makefile sets it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export HART_BIN="${HART_BIN:-$here/../build/hart}"
for demo in ninadb mqe runtime scan serve mcp workshop merge; do
  if [ -x "$here/$demo.sh" ]; then
    echo
    echo "================ demos/$demo.sh ================"
    "$here/$demo.sh"
  fi
done
