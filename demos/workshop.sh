#!/usr/bin/env bash
# The workshop: new versions derived inside the store from stored ones,
# streamed tensor by tensor, deduplicated, with their lineage recorded:
# quantize (ggml's block types, llama.cpp's choices), compose (blocks of
# several versions, no tensor bytes copied), rebuild (same recipe, same
# file digest). (The merge methods and LoRA append their part below.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
HART="${HART_BIN:-$here/../build/hart}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
h() { "$HART" --store "$work/store" --no-progress "$@"; }

echo "# a tiny random llama in F32, into NinaDB"
/usr/bin/python3 "$here/../tests/fixtures/make_tiny_llama.py" "$work/tiny" --type f32 --layers 2
h init >/dev/null
h ingest "$work/tiny/model.gguf" --model tiny --license mit >/dev/null

echo; echo "# quantize: every matrix to Q8_0 (as llama-quantize --pure), then llama.cpp's Q4_K_M choices"
h quantize tiny --type q8_0 --stats
h quantize tiny --type q4_k_m --as tiny-q4km
h sql "SELECT name, dtype FROM tensors WHERE ref = 'tiny-q4km@1' AND name LIKE 'blk.1.%' OR (ref = 'tiny-q4km@1' AND name = 'output.weight')"

echo; echo "# the quantized version runs, and exports as a GGUF with general.file_type set"
h run tiny-q8_0 "Once" -n 8 --temp 0 | od -c | sed -n 1,2p
h export tiny-q4km -o "$work/q4km.gguf"
h --json show tiny-q4km | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print("general.file_type =", j["version"]["metadata"]["general.file_type"])'

echo; echo "# compose: the two blocks stacked twice (4 layers); only the header is new bytes"
h compose --base tiny --blocks tiny:0-1 --blocks tiny:0-1 --as stacked
h run stacked "Once" -n 8 --temp 0 | od -c | sed -n 1,2p

echo; echo "# lineage: hart show, the derivations view, hart similar"
h show tiny-q8_0 | sed -n 1,14p
h sql "SELECT ref, method, inputs, json_extract(parameters, '\$.type') AS type FROM derivations"
h similar tiny-q8_0

echo; echo "# rebuild: the recipe again, the same file digest"
h rebuild tiny-q8_0
h rebuild stacked

echo; echo "# bad input is refused before anything is written"
h compose --base tiny --blocks tiny:0-9 || true
h quantize tiny-q8_0 --type q4_0 || true

echo; echo "# export a derived version as a Hugging Face model directory (transformers' layout)"
h export stacked --format hf -o "$work/stacked-hf"
ls "$work/stacked-hf"
/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print({k: c[k] for k in ("architectures", "num_hidden_layers", "hidden_size", "torch_dtype")})' "$work/stacked-hf/config.json"

echo; echo "# a Hugging Face checkpoint into the workshop: hart convert (only q/k rows are new bytes)"
/usr/bin/python3 "$here/../tests/fixtures/make_tiny_llama.py" "$work/hf" --format hf --type bf16 --layers 2
h ingest "$work/hf" --model tiny-hf --license mit >/dev/null
h convert tiny-hf --stats
h quantize tiny-hf-gguf --type q8_0 --as tiny-hf-q8
h run tiny-hf-q8 "Once" -n 8 --temp 0 | od -c | sed -n 1,2p
echo "# or straight from the HF version: its stored conversion is reused, the lineage shows both steps"
h quantize tiny-hf --type q4_0 --as tiny-hf-q4
h sql "SELECT ref, method, inputs FROM derivations WHERE ref IN ('tiny-hf-gguf@1', 'tiny-hf-q4@1')"
