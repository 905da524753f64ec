// MCP round-trip cost against its own baseline, in one run on one store:
//   rest:      GET /api/models on `hart serve` (the same use case, no MCP)
//   mcp-http:  tools/call list_models at /mcp (one session, JSON answers)
//   mcp-stdio: tools/call list_models to `hart mcp` over a pipe
// N sequential calls each (after 20 warm-up calls); prints median and p99
// in microseconds. Raw JSON-RPC (no SDK), so only the server is measured.
// Usage: node bench/mcp_bench.mjs [HART_BIN] [N]   (take the exclusive lock:
//   flock -x /tmp/bench.lock node bench/mcp_bench.mjs build/hart 500)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HART = process.argv[2] || join(dirname(fileURLToPath(import.meta.url)), '../build/hart');
const N = Number(process.argv[3] || 500);
const src = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'hart_mcp_bench_'));
const store = join(dir, 'store');
execFileSync('/usr/bin/python3', [join(src, 'tests/fixtures/make_tiny_llama.py'), dir, '--type', 'q8_0', '--layers', '2'],
  { stdio: 'ignore' });
execFileSync(HART, ['--store', store, 'init'], { stdio: 'ignore' });
execFileSync(HART, ['--store', store, '--no-progress', 'ingest', join(dir, 'model.gguf'), '--model', 'tiny', '--license', 'mit'],
  { stdio: 'ignore' });

async function measure(name, call) {
  for (let i = 0; i < 20; i++) await call(i);
  const t = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await call(i);
    t.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  t.sort((a, b) => a - b);
  console.log(`${name.padEnd(10)} n=${N}  median ${t[Math.floor(N / 2)].toFixed(0)} us  p99 ${t[Math.floor(N * 0.99)].toFixed(0)} us`);
}

const server = spawn(HART, ['--store', store, 'serve', '--addr', '127.0.0.1:0', '--port-file', join(dir, 'port'),
  '--no-access-log'], { stdio: ['ignore', 'ignore', 'inherit'] });
for (let i = 0; i < 600 && !(existsSync(join(dir, 'port')) && readFileSync(join(dir, 'port'), 'utf8').trim()); i++) {
  await new Promise((r) => setTimeout(r, 50));
}
const base = `http://127.0.0.1:${readFileSync(join(dir, 'port'), 'utf8').trim()}`;
const call = (id) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'list_models', arguments: {} } });
const init = JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25' } });

await measure('rest', async () => {
  const r = await fetch(`${base}/api/models`);
  if (r.status !== 200) throw new Error(`rest ${r.status}`);
  await r.json();
});

const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const ir = await fetch(`${base}/mcp`, { method: 'POST', headers: { ...h, accept: 'application/json' }, body: init });
const sid = ir.headers.get('mcp-session-id');
await ir.json();
await measure('mcp-http', async (i) => {
  const r = await fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', 'mcp-session-id': sid }, body: call(i) });
  const j = await r.json();
  if (!j.result || j.result.isError) throw new Error(JSON.stringify(j));
});

const child = spawn(HART, ['--store', store, 'mcp'], { stdio: ['pipe', 'pipe', 'ignore'] });
const lines = createInterface({ input: child.stdout });
const waiting = [];
lines.on('line', (l) => waiting.shift()?.(l));
const rpc = (text) => new Promise((res) => { waiting.push(res); child.stdin.write(text + '\n'); });
await rpc(init);
await measure('mcp-stdio', async (i) => {
  const j = JSON.parse(await rpc(call(i)));
  if (!j.result || j.result.isError) throw new Error(JSON.stringify(j));
});
child.stdin.end();
await new Promise((r) => child.on('exit', r));
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
rmSync(dir, { recursive: true, force: true });
