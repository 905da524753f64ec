// The MCP project's own tools against Hartonomous: the MCP Inspector in CLI
// mode lists and calls tools, resources and prompts over stdio and
// Streamable HTTP, and the conformance suite's server scenarios that apply
// to a server with its own tools run and pass. The other scenarios call
// fixtures of the suite's reference server (tools named test_*, resources
// test://..., prompts test_*) and cannot apply; docs/MCP.md lists them.
// Run by ctest through `node --test`; HART_BIN and HART_SOURCE_DIR from CMake.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempStore, hartCli, makeTinyLlama, startServe, shutdown } from '../node/hart_server.mjs';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const INSPECTOR = join(HERE, 'node_modules/@modelcontextprotocol/inspector/cli/build/index.js');
const CONFORMANCE = join(HERE, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const HART = process.env.HART_BIN;
const { dir, store } = tempStore('hart_mcp_tools_');
const hart = hartCli(HART, store);
let server;
let url;

before(async () => {
  makeTinyLlama(process.env.HART_SOURCE_DIR, dir, '--type', 'q8_0', '--layers', '2');
  hart('init');
  hart('ingest', join(dir, 'model.gguf'), '--model', 'tiny', '--license', 'mit');
  let base;
  ({ server, base } = await startServe(HART, store, dir));
  url = `${base}/mcp`;
});

after(async () => {
  await shutdown(server, dir);
});

for (const kind of ['stdio', 'http']) {
  test(`inspector CLI over ${kind}`, async () => {
    const target = kind === 'stdio' ? [HART, '--store', store, 'mcp'] : [url, '--transport', 'http'];
    const inspect = async (...args) => JSON.parse((await run('node', [INSPECTOR, ...target, ...args], { timeout: 60000 })).stdout);
    const tools = await inspect('--method', 'tools/list');
    assert.ok(tools.tools.some((t) => t.name === 'sql_query' && t.outputSchema));
    const sql = await inspect('--method', 'tools/call', '--tool-name', 'sql_query', '--tool-arg',
      'sql=SELECT count(*) AS n FROM models');
    assert.deepEqual(sql.structuredContent.rows, [{ n: 1 }]);
    const desc = await inspect('--method', 'tools/call', '--tool-name', 'describe_model', '--tool-arg', 'model=tiny');
    assert.equal(desc.structuredContent.model, 'tiny');
    const res = await inspect('--method', 'resources/list');
    assert.ok(res.resources.some((r) => r.uri === 'hart://models/tiny/1'));
    const card = await inspect('--method', 'resources/read', '--uri', 'hart://models/tiny/1');
    assert.equal(JSON.parse(card.contents[0].text).ref, 'tiny@1');
    const prompts = await inspect('--method', 'prompts/list');
    assert.equal(prompts.prompts.length, 3);
  });
}

// The server scenarios of @modelcontextprotocol/conformance that do not
// depend on the reference server's fixtures.
const APPLICABLE = ['server-initialize', 'logging-set-level', 'ping', 'completion-complete', 'tools-list',
  'server-sse-multiple-streams', 'resources-list', 'prompts-list'];

for (const scenario of APPLICABLE) {
  test(`conformance: ${scenario}`, async () => {
    const { stdout } = await run('node', [CONFORMANCE, 'server', '--url', url, '--scenario', scenario],
      { timeout: 60000 }).catch((e) => e);
    assert.match(stdout, /Passed: (\d+)\/\1, 0 failed/, stdout);
  });
}
