#!/usr/bin/env bash
# Workshop benchmark (issue 17): quantize throughput in GB/s of F16 input
# against the store's read bandwidth measured in the same process
# (workshop_bench), then `hart quantize --stats` end to end (read, quantize,
# scratch GGUF, ingest) with its peak RSS, and the bytes a compose stores.
# Model: a synthetic llama of dim 2048, ffn 8192 (llama-3.2-1B's layer
# shape), LAYERS layers, vocab 32000, F16, written tensor by tensor.
# Takes the bench lock exclusively; a few minutes on 2 cores.
#
#   bench/workshop_bench.sh [BUILD_DIR] [WORK_DIR] [LAYERS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/hart-workshop-bench}
LAYERS=${3:-2}
rm -rf "$WORK"
mkdir -p "$WORK"
/usr/bin/python3 - "$WORK/model.gguf" "$LAYERS" <<'PY'
import sys
import numpy as np
sys.path.insert(0, "tests/fixtures")
import make_tiny_llama as m
path, layers = sys.argv[1], int(sys.argv[2])
cfg = dict(arch="llama", dim=2048, ffn=8192, heads=32, kv_heads=8, head_dim=64, vocab=32000, layers=layers,
           ctx=4096, eps=1e-5, theta=500000.0, rope_dim=64)
rng = np.random.default_rng(5)
def mat(rows, cols, std):
    return ("f16", [rows, cols], rows * cols * 2,
            lambda: rng.normal(0, std, (rows, cols)).astype(np.float16).tobytes())
def ones(n):
    return ("f32", [n], 4 * n, lambda: np.ones(n, np.float32).tobytes())
d, f, nk = 2048, 8192, 8 * 64
entries = [("token_embd.weight",) + mat(32000, d, 1.0)]
for i in range(layers):
    entries += [(f"blk.{i}.attn_norm.weight",) + ones(d), (f"blk.{i}.attn_q.weight",) + mat(d, d, d ** -0.5),
                (f"blk.{i}.attn_k.weight",) + mat(nk, d, d ** -0.5), (f"blk.{i}.attn_v.weight",) + mat(nk, d, d ** -0.5),
                (f"blk.{i}.attn_output.weight",) + mat(d, d, d ** -0.5), (f"blk.{i}.ffn_norm.weight",) + ones(d),
                (f"blk.{i}.ffn_gate.weight",) + mat(f, d, d ** -0.5), (f"blk.{i}.ffn_up.weight",) + mat(f, d, d ** -0.5),
                (f"blk.{i}.ffn_down.weight",) + mat(d, f, f ** -0.5)]
entries += [("output_norm.weight",) + ones(d), ("output.weight",) + mat(32000, d, d ** -0.5)]
m.write_gguf(path, cfg, None, stream=entries)
PY
HART="$BUILD/hart --store $WORK/store --no-progress"
$HART init >/dev/null
$HART ingest "$WORK/model.gguf" --model bench --license mit >/dev/null
echo "# model: $(du -m "$WORK/model.gguf" | cut -f1) MiB F16, $LAYERS layers; $(nproc) cores; $(date -u +%FT%TZ)"
summary() {  # keys of a JSON document on stdin, one line
  /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({k: j[k] for k in sys.argv[1:] if k in j}))' "$@"
}
export -f summary
flock -x /tmp/bench.lock bash -c "
  set -e
  echo '# $BUILD/workshop_bench $WORK/store bench q8_0 q4_0 q4_k q5_k q6_k'
  $BUILD/workshop_bench $WORK/store bench q8_0 q4_0 q4_k q5_k q6_k
  for t in q8_0 q4_k_m; do
    echo \"# $HART --json quantize bench --type \$t\"
    $HART --json quantize bench --type \$t | summary version seconds input_bytes output_bytes new_bytes peak_rss_bytes max_tensor_buffer
  done
  echo '# $HART --json compose --base bench --blocks bench:0-$((LAYERS-1)) --blocks bench:0-$((LAYERS-1)) --as stacked'
  $HART --json compose --base bench --blocks bench:0-$((LAYERS-1)) --blocks bench:0-$((LAYERS-1)) --as stacked \
    | summary version output_bytes file_bytes new_bytes seconds peak_rss_bytes
  echo '# $HART rebuild bench-q8_0'
  $HART rebuild bench-q8_0
"
rm -rf "$WORK"
