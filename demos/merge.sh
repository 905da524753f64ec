#!/usr/bin/env bash
# The workshop's merges: three tiny llamas (4 layers, F32) merged inside the
# store by mergekit recipes (ties, and passthrough layer stacking with no new
# tensor bytes), the merge re-run by `hart rebuild` to the same digest, a bad
# recipe refused naming its field, and a PEFT LoRA adapter stored against its
# base and merged.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
HART="${HART_BIN:-$here/../build/hart}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
h() { "$HART" --store "$work/store" --no-progress "$@"; }
h init >/dev/null
for m in base ft1 ft2; do
  seed=$((RANDOM % 1000 + 1))
  /usr/bin/python3 "$here/../tests/fixtures/make_tiny_llama.py" "$work/$m" --layers 4 --seed "$seed" >/dev/null
  h ingest "$work/$m/model.gguf" --model "$m" --license mit >/dev/null
done

echo "# ties: deltas of ft1 and ft2 over base, half of each kept by magnitude, signs elected"
cat > "$work/ties.yaml" <<'Y'
merge_method: ties
base_model: base
models:
  - {model: ft1, parameters: {weight: 0.7, density: 0.5}}
  - {model: ft2, parameters: {weight: 0.3, density: 0.5}}
dtype: bfloat16
Y
h merge "$work/ties.yaml" --as ties --stats
h run ties "Hello" -n 8 --temp 0 | od -c | sed -n 1,2p

echo; echo "# passthrough: layers 0-2 of base on top of layers 1-3 of ft1 (6 layers, zero new tensor bytes)"
cat > "$work/stack.yaml" <<'Y'
merge_method: passthrough
slices:
  - sources: [{model: base, layer_range: [0, 3]}]
  - sources: [{model: ft1, layer_range: [1, 4]}]
Y
h merge "$work/stack.yaml" --as stack

echo; echo "# the recorded recipe re-runs to the same file digest"
h rebuild ties

echo; echo "# a layer range out of bounds: refused, naming the field, nothing written"
printf 'merge_method: passthrough\nslices:\n  - sources: [{model: base, layer_range: [2, 9]}]\n' > "$work/bad.yaml"
h merge "$work/bad.yaml" || true

echo; echo "# a PEFT LoRA adapter (r 8, alpha 16) stored against base, then merged at scale 0.5"
/usr/bin/python3 "$here/../tests/workshop/lora_reference.py" make "$work/base/model.gguf" "$work/lora"
h lora "$work/lora/peft" --base base --as base-lora
h merge-lora base base-lora:0.5 --as tuned
