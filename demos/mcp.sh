#!/usr/bin/env bash
# `hart mcp` and /mcp: Hartonomous as a Model Context Protocol server for AI
# agents. A tiny generated llama is ingested twice (a base and a "fine-tune"
# of it); then raw JSON-RPC lines drive `hart mcp` on stdio (what an agent
# client such as Claude Desktop or an IDE spawns), and curl drives /mcp on
# `hart serve` (Streamable HTTP: session header, SSE for a tool call's
# progress, 403 for a foreign Origin). sql_query refuses every write.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
HART="${HART_BIN:-$here/../build/hart}"
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
store="$work/store"
py=/usr/bin/python3

$py "$here/../tests/fixtures/make_tiny_llama.py" "$work/tiny" --type q8_0 --layers 2 >/dev/null
"$HART" --store "$store" init >/dev/null
"$HART" --store "$store" --no-progress ingest "$work/tiny/model.gguf" --model tiny --license mit >/dev/null
"$HART" --store "$store" --no-progress ingest "$work/tiny/model.gguf" --model tiny --license mit --parent tiny@1 >/dev/null

# Prints each answer on one short line: the result's structured content (or
# its first text), an error, or a notification.
show() {
  $py -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if "method" in m:
        p = m.get("params", {})
        print("  <- notification", m["method"], json.dumps(p)[:110]); continue
    if "error" in m:
        print("  <- error", m["error"]["code"], m["error"]["message"][:110]); continue
    r = m["result"]
    if "structuredContent" in r: out = r["structuredContent"]
    elif "content" in r: out = ("ERROR " if r.get("isError") else "") + r["content"][0]["text"]
    elif "contents" in r: out = r["contents"][0]["text"]
    else: out = r
    print("  <-", m["id"], json.dumps(out)[:150] if not isinstance(out, str) else out[:150])
'
}

init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}'
call() { printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":%s}}\n' "$1" "$2" "$3"; }

echo "# hart mcp on stdio: initialize, then tools (each answer has structured content)"
{
  echo "$init"
  echo '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  call 2 list_models '{}'
  call 3 describe_model '{"model":"tiny@2"}'
  call 4 diff_versions '{"a":"tiny@1","b":"tiny@2"}'
  call 5 search_components '{"query":"attn_q","k":2}'
  call 6 plan_load '{"version":"tiny","names":["blk.0.*"]}'
  call 7 tensor_stats '{"version":"tiny@1","names":["output_norm.weight"]}'
  echo '{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"hart://models/tiny/2"}}'
  echo '{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":"find_changed_layers","arguments":{"base":"tiny@1","finetune":"tiny@2"}}}'
  echo '{"jsonrpc":"2.0","id":10,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"compare_versions"},"argument":{"name":"a","value":"ti"}}}'
} | "$HART" --store "$store" mcp 2>/dev/null | show

echo; echo "# generate with a progressToken: one notifications/progress per piece of text"
{
  echo "$init"
  printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"generate","arguments":{"model":"tiny","prompt":"Once","max_tokens":4},"_meta":{"progressToken":"g"}}}\n'
} | "$HART" --store "$store" mcp 2>/dev/null | show

echo; echo "# sql_query: one read-only statement; every write is refused and nothing changes"
{
  echo "$init"
  call 1 sql_query '{"sql":"SELECT ref, count(*) AS tensors FROM tensors GROUP BY ref"}'
  call 2 sql_query '{"sql":"COMMIT; DELETE FROM version"}'
  call 3 sql_query '{"sql":"ATTACH DATABASE '"'"'/tmp/x.db'"'"' AS x"}'
  call 4 sql_query '{"sql":"PRAGMA writable_schema = 1"}'
  call 5 sql_query '{"sql":"DELETE FROM version"}'
  call 6 sql_query '{"sql":"SELECT load_extension('"'"'/tmp/x'"'"')"}'
  call 7 sql_query '{"sql":"SELECT count(*) AS versions FROM versions"}'
} | "$HART" --store "$store" mcp 2>/dev/null | show

echo; echo "# bad input: JSON-RPC errors with their codes"
{
  echo '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  echo "$init"
  echo '{"jsonrpc":"2.0","id":2,"method":'
  echo '{"jsonrpc":"2.0","id":3,"method":"no/such"}'
  echo '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":7}}'
  echo '[{"jsonrpc":"2.0","id":5,"method":"ping"}]'
} | "$HART" --store "$store" mcp 2>/dev/null | show

echo; echo "# /mcp on hart serve (Streamable HTTP)"
"$HART" --store "$store" serve --addr 127.0.0.1:0 --port-file "$work/port" --no-access-log 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/mcp"
hdr=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
sid=$(curl -sS -D - -o /dev/null "${hdr[@]}" -d "$init" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
echo "session: $sid"
curl -sS -o /dev/null -w "notifications/initialized -> %{http_code}\n" "${hdr[@]}" -H "mcp-session-id: $sid" \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$url"
echo "a tools/call answered as server-sent events (progress, then the result):"
curl -sS "${hdr[@]}" -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-11-25' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"generate","arguments":{"model":"tiny","prompt":"Hi","max_tokens":3},"_meta":{"progressToken":1}}}' \
  "$url" | sed -n 's/^data: //p' | show
curl -sS -o /dev/null -w "no session header -> %{http_code}\n" "${hdr[@]}" -d '{"jsonrpc":"2.0","id":2,"method":"ping"}' "$url"
curl -sS -o /dev/null -w "foreign Origin (DNS rebinding) -> %{http_code}\n" "${hdr[@]}" -H 'origin: http://evil.example' -d "$init" "$url"
curl -sS -o /dev/null -w "unsupported MCP-Protocol-Version -> %{http_code}\n" "${hdr[@]}" -H 'mcp-protocol-version: 1999-01-01' \
  -H "mcp-session-id: $sid" -d '{"jsonrpc":"2.0","id":3,"method":"ping"}' "$url"
curl -sS -o /dev/null -w "DELETE (end the session) -> %{http_code}\n" -X DELETE -H "mcp-session-id: $sid" "$url"
curl -sS -o /dev/null -w "the ended session -> %{http_code}\n" "${hdr[@]}" -H "mcp-session-id: $sid" -d '{"jsonrpc":"2.0","id":4,"method":"ping"}' "$url"
kill -TERM "$pid"; wait "$pid"; pid=""
echo "drained, exit 0"
