#!/usr/bin/env bash
# Cross-check of `hart quantize` against llama.cpp's own llama-quantize, run
# by hand (never by the project's tests: CI has no llama.cpp). For each type
# it quantizes the same F16 llama GGUF with both, exports hart's version to
# a GGUF and compares the two files tensor by tensor (names, order, types,
# shapes, bytes; general.file_type and general.quantization_version) with
# bench/gguf_compare.py, and times both on the same input in the same run.
#
#   bench/llama_quantize_xcheck.sh BUILD_DIR LLAMA_QUANTIZE WORK_DIR [LAYERS] [VOCAB] [TYPES...]
#
# The model: llama-3.2-1B's layer shape (dim 2048, ffn 8192, 32 heads, 8 kv
# heads), LAYERS layers (default 2), vocab VOCAB (default 32000), untied
# output, F16, random normal weights. Single types run with --pure (as
# `hart quantize --type T` quantizes every matrix to T); the presets
# q4_k_m / q5_k_m without it. Builds llama-quantize beforehand, e.g.
#   cmake -S /work/llama.cpp -B /work/llama.cpp/build -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /work/llama.cpp/build -j2 --target llama-quantize
# Exits 1 when any type differs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "$1"); LQ=$(realpath "$2"); WORK=$3
LAYERS=${4:-2}; VOCAB=${5:-32000}
shift $(( $# < 5 ? $# : 5 ))
TYPES=("$@")
[ ${#TYPES[@]} -gt 0 ] || TYPES=(q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k q4_k_m q5_k_m)
rm -rf "$WORK"; mkdir -p "$WORK"
/usr/bin/python3 - "$WORK/model.gguf" "$LAYERS" "$VOCAB" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/fixtures")
import make_tiny_llama as m
path, layers, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = dict(arch="llama", dim=2048, ffn=8192, heads=32, kv_heads=8, head_dim=64, vocab=vocab, layers=layers,
           ctx=4096, eps=1e-5, theta=500000.0, rope_dim=64)
rng = np.random.default_rng(17)
def mat(rows, cols, std):
    return ("f16", [rows, cols], rows * cols * 2,
            lambda: rng.normal(0, std, (rows, cols)).astype(np.float16).tobytes())
def ones(n):
    return ("f32", [n], 4 * n, lambda: (1 + rng.normal(0, 0.1, n)).astype(np.float32).tobytes())
d, f, nk = 2048, 8192, 8 * 64
entries = [("token_embd.weight",) + mat(vocab, d, 1.0)]
for i in range(layers):
    entries += [(f"blk.{i}.attn_norm.weight",) + ones(d), (f"blk.{i}.attn_q.weight",) + mat(d, d, d ** -0.5),
                (f"blk.{i}.attn_k.weight",) + mat(nk, d, d ** -0.5), (f"blk.{i}.attn_v.weight",) + mat(nk, d, d ** -0.5),
                (f"blk.{i}.attn_output.weight",) + mat(d, d, d ** -0.5), (f"blk.{i}.ffn_norm.weight",) + ones(d),
                (f"blk.{i}.ffn_gate.weight",) + mat(f, d, d ** -0.5), (f"blk.{i}.ffn_up.weight",) + mat(f, d, d ** -0.5),
                (f"blk.{i}.ffn_down.weight",) + mat(d, f, f ** -0.5)]
entries += [("output_norm.weight",) + ones(d), ("output.weight",) + mat(vocab, d, d ** -0.5)]
m.write_gguf(path, cfg, None, stream=entries)
PY
HART="$BUILD/hart --store $WORK/store --no-progress"
$HART init > /dev/null
$HART ingest "$WORK/model.gguf" --model src --license mit > /dev/null
MB=$(( $(stat -c %s "$WORK/model.gguf") / 1000000 ))
echo "# input: $MB MB F16 GGUF, $LAYERS layers, vocab $VOCAB; $(nproc) cores; $(date -u +%FT%TZ)"
echo "# $LQ (llama.cpp sources: $(realpath "$(dirname "$LQ")/../.."))"
now() { date +%s.%N; }
fails=0
for t in "${TYPES[@]}"; do
  T=${t^^}
  pure=--pure
  case $t in *_m) pure= ;; esac
  a=$(now)
  "$LQ" $pure "$WORK/model.gguf" "$WORK/lq-$t.gguf" "$T" > "$WORK/lq-$t.log" 2>&1 || { echo "$t: llama-quantize failed"; tail -5 "$WORK/lq-$t.log"; fails=1; continue; }
  b=$(now)
  $HART quantize src --type "$t" --as "h-$t" > /dev/null
  c=$(now)
  $HART export "h-$t@1" -o "$WORK/h-$t.gguf" > /dev/null
  printf '%-7s llama-quantize %s%6.2f s, hart quantize %6.2f s: ' "$t" "${pure:+--pure }" \
    "$(echo "$b - $a" | bc)" "$(echo "$c - $b" | bc)"
  if out=$(/usr/bin/python3 bench/gguf_compare.py "$WORK/lq-$t.gguf" "$WORK/h-$t.gguf"); then
    echo "$out"
  else
    echo "DIFFERS"; echo "$out"; fails=1
  fi
  rm -f "$WORK/lq-$t.gguf" "$WORK/h-$t.gguf"
done
rm -rf "$WORK"
exit $fails
