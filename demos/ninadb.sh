#!/usr/bin/env bash
# NinaDB demo: ingest a tiny base model and two fine-tunes, see what dedup
# saves, diff two versions, export one back byte for byte, verify the store,
# read the change feed. Non-interactive; exits 0 on success.
#   HART_BIN   the hart binary (default: build/hart)
#   HART_HOME  store to use (default: a fresh temp store, removed at the end)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HART_BIN="${HART_BIN:-$ROOT/build/hart}"
[ -x "$HART_BIN" ] || { echo "ninadb.sh: no hart binary at $HART_BIN (build it, or set HART_BIN)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ninadb-demo.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
if [ -z "${HART_HOME:-}" ]; then
  export HART_HOME="$WORK/store"
fi
hart() { "$HART_BIN" --no-progress "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "Writing tiny llama-shaped models (a base, fine-tunes changing ~10% of tensors) to $WORK/models"
/usr/bin/python3 "$ROOT/tests/fixtures/make_models.py" "$WORK/models"
ls -l "$WORK/models"

step "Creating a NinaDB store at $HART_HOME"
hart init

step "Ingesting the base model"
hart ingest "$WORK/models/base.safetensors" --model demo-base --license apache-2.0

step "Ingesting fine-tune 1 without naming its parent: the store suggests one"
hart ingest "$WORK/models/ft1.safetensors" --model demo-ft1 --license apache-2.0

step "Ingesting fine-tune 2 with its parent recorded: only its changed tensors are new bytes"
hart ingest "$WORK/models/ft2.safetensors" --model demo-ft2 --license apache-2.0 --parent demo-base@1

step "Models in the store"
hart ls

step "A version's header and tensors (which tensors it shares with other versions)"
hart show demo-ft2@1

step "Storage: logical bytes vs physical bytes after dedup"
hart stats

step "What fine-tune 2 changed from the base"
hart diff demo-base@1 demo-ft2@1

step "Exporting demo-ft2@1 and comparing SHA-256 with the original file"
hart export demo-ft2@1 -o "$WORK/ft2.exported.safetensors" --verify
orig="$(sha256sum < "$WORK/models/ft2.safetensors" | cut -d' ' -f1)"
back="$(sha256sum < "$WORK/ft2.exported.safetensors" | cut -d' ' -f1)"
echo "original $orig"
echo "exported $back"
[ "$orig" = "$back" ] || { echo "ninadb.sh: export is not byte-identical" >&2; exit 1; }
echo "byte-identical"

step "Verifying every chunk in the store"
hart verify

step "Deleting fine-tune 1, then reclaiming the bytes only it held"
hart rm demo-ft1@1
hart gc
hart verify

step "The change feed (outbox) as JSON lines"
hart events

step "Done"
