#!/usr/bin/env bash
# MQE demo: query a model instead of loading it. Find components with SQL,
# walk the dataflow graph, plan what a selection needs (find -> map -> load),
# write just those tensors as a sub-model, and find which base a fine-tune came
# from. Non-interactive; exits 0 on success.
#   HART_BIN   the hart binary (default: build/hart)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HART_BIN="${HART_BIN:-$ROOT/build/hart}"
[ -x "$HART_BIN" ] || { echo "mqe.sh: no hart binary at $HART_BIN" >&2; exit 1; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mqe-demo.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HART_HOME="$WORK/store"
hart() { "$HART_BIN" --no-progress "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "Tiny llama-shaped models: a base, two fine-tunes, and an unrelated model of the same shape"
/usr/bin/python3 "$ROOT/tests/fixtures/make_models.py" "$WORK/models" >/dev/null
/usr/bin/python3 - "$WORK/models" "$ROOT/tests/fixtures" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import make_models as m
m.write_safetensors(sys.argv[1] + "/other.safetensors", m.llama_tensors(seed=99))
PY
hart init >/dev/null
hart ingest "$WORK/models/base.safetensors" --model base --license apache-2.0 >/dev/null
hart ingest "$WORK/models/ft1.safetensors" --model chat --license apache-2.0 --parent base@1 >/dev/null
hart ingest "$WORK/models/ft2.safetensors" --model code --license apache-2.0 >/dev/null
hart ingest "$WORK/models/other.safetensors" --model other --license mit >/dev/null
hart ls

step "Find: the attention query projections of base@1, by role (SQL over the tensors view)"
hart sql "SELECT name, role, layer, dtype, shape, nbytes FROM tensors WHERE ref = 'base@1' AND role = 'attn_q'"

step "The structure: blocks and their sizes (component_bytes sums a subtree)"
hart sql "SELECT name, layer, component_bytes(id) AS bytes FROM components WHERE ref = 'base@1' AND kind = 'block' AND name NOT LIKE '%.%.%' ORDER BY layer"

step "Map: everything layer 2's down projection depends on (graph walk upstream along feeds edges)"
hart sql "SELECT depth, name, role FROM graph_walk('base@1:model.layers.2.mlp.down_proj.weight', 'up', 64, 'feeds') WHERE depth <= 4"

step "The shortest dataflow path from the embedding to layer 1's value projection"
hart sql "SELECT step, name, edge FROM shortest_path('base@1:model.embed_tokens.weight', 'base@1:model.layers.1.self_attn.v_proj.weight', 'feeds')"

step "Plan: layer 3's attention with its upstream closure, and what it costs against the model"
hart plan base@1 --names 'model.layers.3.self_attn.*'

step "Plan by full-text search: the value projections of layer 1, without the closure"
hart plan base@1 --search "v_proj layer 1" --no-closure

step "Load: write exactly those tensors as a safetensors sub-model"
hart load base@1 --names 'model.layers.3.self_attn.*' -o "$WORK/part.safetensors"
ls -l "$WORK/part.safetensors"

step "The same selection as JSON for programs (summary only)"
hart --json plan base@1 --names 'model.layers.3.self_attn.*' --no-closure | /usr/bin/python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["summary"])'

step "Read-only by default: a write is refused"
if hart sql "DELETE FROM model" 2>"$WORK/err"; then echo "unexpected: write allowed" >&2; exit 1; fi
cat "$WORK/err"

step "Lineage: which stored version is chat@1 nearest to? (weight fingerprints)"
if "$HART_BIN" similar --help >/dev/null 2>&1; then
  hart similar chat@1
  hart similar code@1
else
  echo "(hart similar is not in this build)"
fi
