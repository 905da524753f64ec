// The `hart serve` start-up that the node tests (tests/serve, tests/mcp,
// tests/ui) and bench/ui_bench.mjs share: a temporary folder with a store,
// the tiny llama fixture, the `hart` command line on that store, a server on
// 127.0.0.1 with an OS-chosen port (read from --port-file), and its shutdown.
// Node built-ins only, so it resolves from any test's folder; each caller
// keeps its own serve flags and store contents.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A fresh folder under the system's temporary one, and the store path in it
// (not made yet: `hart init` makes it).
export function tempStore(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, store: join(dir, 'store') };
}

// `hart --store STORE --no-progress ARGS...`, its stdout as a string; throws
// (with the command's stderr) when it exits non-zero. `stdio` overrides the
// default of piping stdout and stderr.
export function hartCli(bin, store, stdio = ['ignore', 'pipe', 'pipe']) {
  return (...args) => {
    const out = execFileSync(bin, ['--store', store, '--no-progress', ...args], { stdio });
    return out ? out.toString() : '';
  };
}

// tests/fixtures/make_tiny_llama.py OUT_DIR ARGS... with Debian's python3.
export function makeTinyLlama(sourceDir, outDir, ...args) {
  execFileSync('/usr/bin/python3', [join(sourceDir, 'tests/fixtures/make_tiny_llama.py'), outDir, ...args],
    { stdio: 'ignore' });
}

// The port `hart serve --port-file FILE` wrote, polled every 50 ms for up to
// 30 s; throws if it never appears.
export async function waitForPort(file) {
  for (let i = 0; i < 600; i++) {
    if (existsSync(file)) {
      const p = readFileSync(file, 'utf8').trim();
      if (p) return Number(p);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('hart serve did not start');
}

// Starts `hart --store STORE serve --addr 127.0.0.1:0 --port-file DIR/port
// --no-access-log EXTRA...` and waits for its port. Returns { server, port,
// base } (base: http://127.0.0.1:PORT). stdio defaults to stderr inherited.
export async function startServe(bin, store, dir, extra = [], stdio = ['ignore', 'ignore', 'inherit']) {
  const portFile = join(dir, 'port');
  const server = spawn(bin, ['--store', store, 'serve', '--addr', '127.0.0.1:0', '--port-file', portFile,
    '--no-access-log', ...extra], { stdio });
  const port = await waitForPort(portFile);
  return { server, port, base: `http://127.0.0.1:${port}` };
}

// Sends SIGTERM and resolves to the exit code (null when killed by a signal).
export async function stopServe(server) {
  const exited = new Promise((r) => server.on('exit', r));
  server.kill('SIGTERM');
  return exited;
}

// At the end of a test file: stops the server (when one was started),
// asserting it exited 0, then removes the temporary folder.
export async function shutdown(server, dir) {
  if (server) assert.equal(await stopServe(server), 0);
  if (dir) rmSync(dir, { recursive: true, force: true });
}
