-- wrk script: POST one read-only SQL query (bench/serve_bench.sh).
wrk.method = "POST"
wrk.body = '{"sql":"SELECT name, versions FROM models ORDER BY name","max_rows":100}'
wrk.headers["Content-Type"] = "application/json"
