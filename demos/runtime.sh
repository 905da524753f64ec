#!/usr/bin/env bash
# The runtime: a tiny generated llama-family model run straight from its GGUF
# file and out of NinaDB, mapped and under a memory budget smaller than the
# model (same tokens either way), with sampling and a chat turn.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
HART="${HART_BIN:-$here/../build/hart}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
store="$work/store"

echo "# a tiny random llama (3 layers, Q8_0) with a byte vocabulary"
/usr/bin/python3 "$here/../tests/fixtures/make_tiny_llama.py" "$work/tiny" --type q8_0 --layers 3
model="$work/tiny/model.gguf"

echo; echo "# greedy, straight from the file, all weights mapped"
"$HART" run "$model" "Hello" -n 16 --temp 0 --stats | od -c | sed -n 1,3p

echo; echo "# into NinaDB, then run from the store under a 700 KiB budget (one layer of ~612 KiB, plus alignment for direct reads)"
"$HART" --store "$store" init >/dev/null
"$HART" --store "$store" --no-progress ingest "$model" --model tiny --license mit >/dev/null
"$HART" --store "$store" run tiny "Hello" -n 16 --temp 0 --mem-budget 700K --stats | od -c | sed -n 1,3p

echo; echo "# sampling: the same seed gives the same tokens"
a=$("$HART" run "$model" "Once" -n 16 --temp 1.1 --top-k 40 --top-p 0.9 --seed 7 | od -An -tx1)
b=$("$HART" run "$model" "Once" -n 16 --temp 1.1 --top-k 40 --top-p 0.9 --seed 7 | od -An -tx1)
[ "$a" = "$b" ] && echo "seed 7 twice: identical"

echo; echo "# a prompt longer than the context: an error, or --truncate"
"$HART" run "$model" "$(printf 'x%.0s' {1..40})" -n 4 --ctx 16 || true
"$HART" run "$model" "$(printf 'x%.0s' {1..40})" -n 4 --ctx 16 --truncate --stats | od -c | sed -n 1,2p

echo; echo "# hart chat (chatml template), one turn from stdin"
echo "hi" | "$HART" chat "$model" --chat-format chatml -n 8 --temp 0 | od -c | sed -n 1,2p

# A real trained model: llama2.c's stories260K (TinyStories) with its tokenizer
# file, from ../shared beside the clone; skipped where it is absent.
stories="$here/../../shared/testdata/tinystories"
if [ -f "$stories/stories260K.bin" ]; then
  echo; echo "# llama2.c's stories260K: ingested with its tok512.bin, greedy from the store, then under a 400 KiB budget"
  "$HART" --store "$store" --no-progress ingest "$stories/stories260K.bin" --license mit >/dev/null
  printf 'Once upon a time'
  "$HART" --store "$store" run stories260K "Once upon a time" -n 40 --temp 0
  printf 'Once upon a time'
  "$HART" --store "$store" run stories260K "Once upon a time" -n 40 --temp 0 --mem-budget 400K --stats
else
  echo; echo "# (no $stories: skipping the stories260K demo)"
fi
