# Sourced by the server benchmarks (bench/serve_bench.sh, bench/batch_bench.sh):
# the generated model, a fresh store with it, `hart serve` in the background
# on an OS-chosen port, and its drain. Expects HART (the binary) and WORK
# (a scratch folder that exists); runs from the repository root.

# bench_model LAYERS: the llama-3.2-1B shape cut to LAYERS layers, Q8_0,
# generated once into $WORK/mLAYERS; sets $model.
bench_model() {
  model="$WORK/m$1/model.gguf"
  [ -f "$model" ] || /usr/bin/python3 tests/fixtures/make_tiny_llama.py "$WORK/m$1" --shape llama-3.2-1b \
    --type q8_0 --layers "$1" >/dev/null
}

# bench_store NAME: a new store at $WORK/store holding $model as NAME; sets $store.
bench_store() {
  store="$WORK/store"
  rm -rf "$store"
  "$HART" --store "$store" init >/dev/null
  "$HART" --store "$store" --no-progress ingest "$model" --model "$1" --license mit >/dev/null
}

# bench_serve [FLAGS...]: `hart serve` on $store in the background (stderr to
# $WORK/serve.log), killed on exit; waits up to 10 s for the port. Sets $pid,
# $port.
bench_serve() {
  rm -f "$WORK/port"
  "$HART" --store "$store" serve --addr 127.0.0.1:0 --port-file "$WORK/port" --no-access-log "$@" \
    2>"$WORK/serve.log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  port=$(cat "$WORK/port")
}

# bench_stop: SIGTERM; says so when the server drained and exited 0.
bench_stop() {
  kill -TERM "$pid"
  wait "$pid" && echo "server drained and exited 0"
}
