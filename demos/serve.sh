#!/usr/bin/env bash
# `hart serve`: the store over HTTP on loopback. A tiny generated llama is
# ingested, then curl drives the operations routes, the REST API (the same
# JSON as the CLI's --json), a byte range of the stored file, and the
# OpenAI-compatible API (plain and streamed); SIGTERM drains and exits 0.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
HART="${HART_BIN:-$here/../build/hart}"
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
store="$work/store"

/usr/bin/python3 "$here/../tests/fixtures/make_tiny_llama.py" "$work/tiny" --type q8_0 --layers 2 >/dev/null
"$HART" --store "$store" init >/dev/null
"$HART" --store "$store" --no-progress ingest "$work/tiny/model.gguf" --model tiny --license mit >/dev/null

echo "# hart serve on 127.0.0.1, any free port (it refuses non-loopback addresses until sign-in exists)"
"$HART" --store "$store" serve --addr 0.0.0.0:8080 2>&1 | head -1 || true
"$HART" --store "$store" serve --addr 127.0.0.1:0 --port-file "$work/port" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
base="http://127.0.0.1:$(cat "$work/port")"
c() { curl -sS "$@"; echo; }

echo; echo "# operations"
c "$base/healthz"
c "$base/readyz"
curl -sS -D - -o /dev/null -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$base/healthz" \
  | grep -iE '^(x-request-id|traceparent)'
echo "openapi paths: $(curl -sS "$base/openapi.json" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["paths"]))')  (Swagger UI at $base/docs)"

echo; echo "# REST: models, a version's tensors, search, read-only SQL"
c "$base/api/models"
curl -sS "$base/api/versions/tiny@1/tensors" | /usr/bin/python3 -c 'import json,sys; t=json.load(sys.stdin); print(len(t), "tensors, first:", t[0]["name"])'
c "$base/api/search?q=tiny&k=2"
c -X POST "$base/api/sql" -H 'content-type: application/json' -d '{"sql":"SELECT name, versions FROM models"}'
echo "a write through /api/sql is refused:"
c -X POST "$base/api/sql" -H 'content-type: application/json' -d '{"sql":"DELETE FROM models"}'

echo; echo "# download a byte range of the stored GGUF (rebuilt from chunks)"
curl -sS -r 0-3 "$base/api/versions/tiny/download" | od -c | sed -n 1p

echo; echo "# OpenAI-compatible: models, a chat completion, the same streamed"
c "$base/v1/models"
c "$base/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":6,"temperature":0}'
curl -sS -N "$base/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":3,"temperature":0,"stream":true}'
echo "bad input is OpenAI's error object:"
c "$base/v1/chat/completions" -H 'content-type: application/json' -d '{"model":"nosuch","messages":[{"role":"user","content":"x"}]}'

echo; echo "# /metrics (an excerpt)"
curl -sS "$base/metrics" | grep -E '^hart_(tokens_generated_total|prompt_tokens_total|sessions_in_flight|resident_weight_bytes) '

echo; echo "# SIGTERM: stop accepting, finish what is in flight, exit 0"
kill -TERM "$pid"; wait "$pid"; echo "exit $?"; pid=""
echo "one access-log line:"; grep -m1 '"msg":"request"' "$work/serve.log"
