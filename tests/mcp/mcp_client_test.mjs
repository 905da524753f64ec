// The official MCP TypeScript SDK client (@modelcontextprotocol/sdk, pinned
// in tests/mcp/package-lock.json) against Hartonomous over both transports:
// `hart mcp` on stdio and /mcp on `hart serve` (Streamable HTTP), each
// driving every tool, resource and prompt against a real store made here.
// Run by ctest through `node --test`; HART_BIN and HART_SOURCE_DIR come from
// CMake.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema, ResourceListChangedNotificationSchema,
  LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { tempStore, hartCli, makeTinyLlama, startServe, shutdown } from '../node/hart_server.mjs';

const HART = process.env.HART_BIN;
const { dir, store } = tempStore('hart_mcp_');
const hart = hartCli(HART, store);
let server;
let port;

before(async () => {
  makeTinyLlama(process.env.HART_SOURCE_DIR, dir, '--type', 'q8_0', '--layers', '2');
  hart('init');
  for (const [model, parent] of [['tiny', null], ['tiny', 'tiny@1']]) {
    const args = ['ingest', join(dir, 'model.gguf'), '--model', model, '--license', 'mit'];
    if (parent) args.push('--parent', parent);
    hart(...args);
  }
  ({ server, port } = await startServe(HART, store, dir, ['--mcp-enable-writes']));
});

after(async () => {
  await shutdown(server, dir);
});

async function connect(kind) {
  const client = new Client({ name: 'hart-test', version: '1.0.0' }, { capabilities: {} });
  const transport = kind === 'stdio'
    ? new StdioClientTransport({ command: HART, args: ['--store', store, 'mcp', '--enable-writes'], stderr: 'ignore' })
    : new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`));
  await client.connect(transport);
  return client;
}

const structured = (r) => {
  assert.equal(r.isError, false, JSON.stringify(r.content));
  assert.ok(r.structuredContent, 'structuredContent');
  return r.structuredContent;
};

const until = async (pred, what) => {
  for (let i = 0; i < 200; i++) {  // at most 10 s
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
};

for (const kind of ['stdio', 'http']) {
  test(`${kind}: lifecycle, every tool, resource and prompt`, async () => {
    const client = await connect(kind);
    try {
      assert.equal(client.getServerVersion().name, 'hartonomous');
      const caps = client.getServerCapabilities();
      assert.ok(caps.tools && caps.resources.subscribe && caps.prompts && caps.completions && caps.logging);
      await client.ping();

      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, ['delete_version', 'describe_model', 'diff_versions', 'generate', 'ingest',
        'list_models', 'plan_load', 'search_components', 'similar_models', 'sql_query', 'tensor_stats']);

      const logs = [];
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
      await client.setLoggingLevel('debug');

      const models = structured(await client.callTool({ name: 'list_models', arguments: {} }));
      assert.deepEqual(models.models.map((m) => m.name), ['tiny']);
      const versions = structured(await client.callTool({ name: 'list_models', arguments: { model: 'tiny' } }));
      assert.equal(versions.versions.length, 2);

      const desc = structured(await client.callTool({ name: 'describe_model', arguments: { model: 'tiny@2' } }));
      assert.deepEqual(desc.lineage, ['tiny@1']);
      assert.equal(desc.license, 'mit');
      assert.ok(desc.components.length > 0);

      const hits = structured(await client.callTool({ name: 'search_components', arguments: { query: 'attn_q', k: 5 } }));
      assert.ok(hits.hits.length > 0);

      const sim = structured(await client.callTool({ name: 'similar_models', arguments: { target: 'tiny@1', k: 3 } }));
      assert.equal(sim.by_tensor, false);
      assert.ok(sim.results.some((r) => r.version === 'tiny@2'), JSON.stringify(sim));

      const diff = structured(await client.callTool({ name: 'diff_versions', arguments: { a: 'tiny@1', b: 'tiny@2' } }));
      assert.equal(diff.summary.changed, 0);

      const sql = structured(await client.callTool({ name: 'sql_query',
        arguments: { sql: "SELECT count(*) AS n FROM tensors WHERE ref = 'tiny@1'" } }));
      assert.deepEqual(sql.columns, ['n']);
      assert.ok(sql.rows[0].n > 0, JSON.stringify(sql));
      for (const bad of ['COMMIT; DELETE FROM version', 'ATTACH DATABASE \'x.db\' AS x', 'PRAGMA writable_schema = 1',
        'DELETE FROM version', 'SELECT 1; SELECT 2']) {
        const r = await client.callTool({ name: 'sql_query', arguments: { sql: bad } });
        assert.equal(r.isError, true, bad);
      }

      const plan = structured(await client.callTool({ name: 'plan_load', arguments: { version: 'tiny@1', names: ['blk.0.*'] } }));
      assert.ok(JSON.stringify(plan).includes('blk.0'), JSON.stringify(plan).slice(0, 300));

      const progress = [];
      const gen = structured(await client.callTool({ name: 'generate',
        arguments: { model: 'tiny', prompt: 'Once upon a time', max_tokens: 6 } }, undefined,
      { onprogress: (p) => progress.push(p) }));
      assert.equal(gen.usage.completion_tokens, 6);
      // One notification per streamed piece of text (a piece may hold back
      // an incomplete UTF-8 character), counting up to the 6 tokens.
      // At most one per token; possibly none: the random-weight model can
      // open an incomplete UTF-8 sequence at once, and text held back behind
      // it reaches only the result (the stream never carries invalid UTF-8).
      assert.ok(progress.length <= 6, JSON.stringify(progress));
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i].progress > progress[i - 1].progress);
      // The pieces are the text as it came; bytes of a character the last
      // token left incomplete appear (as U+FFFD) only in the result.
      assert.ok(gen.text.startsWith(progress.map((p) => p.message).join('')), JSON.stringify([progress, gen.text]));

      const stats = structured(await client.callTool({ name: 'tensor_stats',
        arguments: { version: 'tiny@1', names: ['token_embd.weight'] } }));
      assert.equal(stats.tensors.length, 1);
      assert.ok(stats.tensors[0].stats, JSON.stringify(stats.tensors[0]));

      // A tool error is a result the model can read, not a protocol error.
      const missing = await client.callTool({ name: 'describe_model', arguments: { model: 'nope' } });
      assert.equal(missing.isError, true);
      assert.match(missing.content[0].text, /^not_found/);
      await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), /unknown tool/);

      // Resources.
      const res = (await client.listResources()).resources.map((r) => r.uri);
      assert.ok(res.includes('hart://store/stats') && res.includes('hart://models/tiny/2'), res.join());
      const tpl = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      assert.ok(tpl.includes('hart://models/{name}/{version}'));
      for (const uri of ['hart://store/stats', 'hart://models/tiny/2', 'hart://models/tiny/2/components',
        'hart://models/tiny/2/tensors']) {
        const c = await client.readResource({ uri });
        assert.equal(c.contents[0].uri, uri);
        JSON.parse(c.contents[0].text);
      }
      await assert.rejects(client.readResource({ uri: 'hart://models/tiny/99' }));

      // Prompts and completion.
      const prompts = (await client.listPrompts()).prompts.map((p) => p.name).sort();
      assert.deepEqual(prompts, ['compare_versions', 'find_changed_layers', 'pick_model_for_budget']);
      const cmp = await client.getPrompt({ name: 'compare_versions', arguments: { a: 'tiny@1', b: 'tiny@2' } });
      assert.equal(cmp.messages.length, 3);
      const fcl = await client.getPrompt({ name: 'find_changed_layers', arguments: { base: 'tiny@1', finetune: 'tiny@2' } });
      assert.match(fcl.messages[0].content.text, /diff_versions/);
      const pick = await client.getPrompt({ name: 'pick_model_for_budget', arguments: { budget: '1G' } });
      assert.match(pick.messages[0].content.text, /1G/);
      const comp = await client.complete({ ref: { type: 'ref/prompt', name: 'compare_versions' },
        argument: { name: 'a', value: 'tiny@' } });
      assert.deepEqual(comp.completion.values, ['tiny@1', 'tiny@2']);
      const comp2 = await client.complete({ ref: { type: 'ref/resource', uri: 'hart://models/{name}/{version}' },
        argument: { name: 'name', value: 'ti' } });
      assert.deepEqual(comp2.completion.values, ['tiny']);

      // Subscriptions: ingest a version through the write tool and hear it.
      const updated = [];
      let listChanged = 0;
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updated.push(n.params.uri));
      client.setNotificationHandler(ResourceListChangedNotificationSchema, () => { listChanged++; });
      await client.subscribeResource({ uri: 'hart://models/tiny/1' });
      await new Promise((r) => setTimeout(r, 400));  // the outbox watcher has started
      const bytes = readFileSync(join(dir, 'model.gguf')).toString('base64');
      const ing = structured(await client.callTool({ name: 'ingest',
        arguments: { content_base64: bytes, filename: 'model.gguf', model: 'tiny', parent: 'tiny@2', license: 'mit' } }));
      assert.ok(ing.number > 2, JSON.stringify(ing));  // numbers are never reused after a delete
      await until(() => updated.includes('hart://models/tiny/1') && listChanged > 0, 'resources/updated');
      await client.unsubscribeResource({ uri: 'hart://models/tiny/1' });
      const del = structured(await client.callTool({ name: 'delete_version', arguments: { version: `tiny@${ing.number}` } }));
      assert.ok(del.deleted !== undefined, JSON.stringify(del));

      // Cancellation: abort a long generation; the session goes on.
      const ac = new AbortController();
      const long = client.callTool({ name: 'generate', arguments: { model: 'tiny', prompt: 'a', max_tokens: 1000 } },
        undefined, { signal: ac.signal, onprogress: () => ac.abort() });
      await assert.rejects(long);
      await client.ping();
      assert.ok(logs.some((l) => l.data && l.data.tool === 'list_models'), 'a debug log per tool call');
    } catch (e) {
      console.error(e);
      throw e;
    } finally {
      await client.close();
    }
  });
}

test('http: session, protocol version and Origin checks', async () => {
  const url = `http://127.0.0.1:${port}/mcp`;
  const post = (body, headers = {}) => fetch(url, { method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } });
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
  let r = await post(init, { origin: 'http://evil.example' });
  assert.equal(r.status, 403);
  r = await post(init, { 'mcp-protocol-version': '1999-01-01' });
  assert.equal(r.status, 400);
  r = await post(init);
  assert.equal(r.status, 200);
  const sid = r.headers.get('mcp-session-id');
  assert.match(sid, /^[0-9a-f]{32}$/);
  assert.equal((await r.json()).result.protocolVersion, '2025-06-18');
  const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };
  assert.equal((await post(ping)).status, 400);  // no session id
  assert.equal((await post(ping, { 'mcp-session-id': 'f'.repeat(32) })).status, 404);
  r = await post(ping, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' });
  assert.equal(r.status, 200);
  r = await fetch(url, { method: 'POST', body: '{"jsonrpc":', headers: { 'content-type': 'application/json', 'mcp-session-id': sid } });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, -32700);
  r = await post({ jsonrpc: '2.0', id: 3, method: 'nope' }, { 'mcp-session-id': sid });
  assert.equal((await r.json()).error.code, -32601);
  // A request over the 4 MiB message limit: 413 with a JSON-RPC error; the session goes on.
  r = await post({ jsonrpc: '2.0', id: 4, method: 'ping', params: { pad: 'x'.repeat(5 << 20) } }, { 'mcp-session-id': sid });
  assert.equal(r.status, 413);
  assert.equal((await r.json()).error.code, -32600);
  r = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sid });
  assert.equal(r.status, 202);
  r = await fetch(url, { method: 'GET', headers: { accept: 'application/json', 'mcp-session-id': sid } });
  assert.equal(r.status, 405);
  r = await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
  assert.equal(r.status, 204);
  assert.equal((await post(ping, { 'mcp-session-id': sid })).status, 404);
});
