// End to end: the built web UI in Debian's chromium (driven by playwright-core,
// pinned in web/package-lock.json; never a downloaded browser) against a real
// `hart serve` on 127.0.0.1 over a store this test makes: a chat model, a
// Hugging Face checkpoint and its fine-tune with one changed tensor, a model
// with types the histogram cannot decode, one with no structure, one with
// 1,000 tensors, and one whose name and license are HTML. Each test clicks
// through a page and asserts what a person sees; screenshots go to
// $HART_UI_OUT. Run by ctest (tests/ui/ui_tests.cmake).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempStore, hartCli, startServe, shutdown } from '../node/hart_server.mjs';
import { writeSafetensors } from '../node/safetensors.mjs';

const require = createRequire(join(process.env.HART_WEB_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const HART = process.env.HART_BIN;
const SRC = process.env.HART_SOURCE_DIR;
const OUT = process.env.HART_UI_OUT ?? join(tmpdir(), 'hart_ui_out');
const PY = '/usr/bin/python3';
const { dir, store } = tempStore('hart_ui_');
const HTML_NAME = '<img src=x onerror="window.__xss=1">';
let server, browser, page, base, changed;
const consoleErrors = [];

const hart = hartCli(HART, store);

// A safetensors file: {name: [shape]} of f32 values ((i % 200) - 100) / 100.
const safetensors = (path, tensors) => writeSafetensors(path, tensors, (i) => ((i % 200) - 100) / 100);

async function shot(name) {
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

async function go(hash) {
  await page.goto(`${base}/#${hash}`);
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const fx = (script, ...args) => execFileSync(PY, [join(SRC, script), ...args], { stdio: 'ignore' });
  fx('tests/fixtures/make_tiny_llama.py', join(dir, 'chat'), '--type', 'q8_0', '--layers', '2');
  fx('tests/fixtures/make_tiny_llama.py', join(dir, 'hf'), '--format', 'hf', '--layers', '2');
  changed = execFileSync(PY, [join(SRC, 'tests/ui/finetune.py'), join(dir, 'hf'), join(dir, 'hf2'), 'q_proj', '0.01']).toString().trim();
  fx('tests/fixtures/make_gguf.py', join(dir, 'gguf'));
  safetensors(join(dir, 'flat.safetensors'), { weird: [4, 8] });
  const many = {};
  for (let i = 0; i < 1000; i++) many[`t${String(i).padStart(4, '0')}`] = [2, 2];
  safetensors(join(dir, 'many.safetensors'), many);
  hart('init');
  hart('ingest', join(dir, 'chat', 'model.gguf'), '--model', 'tiny', '--license', 'mit');
  hart('ingest', join(dir, 'hf'), '--model', 'llama-ft', '--license', 'apache-2.0');
  hart('ingest', join(dir, 'hf2'), '--model', 'llama-ft', '--parent', 'llama-ft@1', '--license', 'apache-2.0');
  hart('ingest', join(dir, 'gguf', 'all_types_v3.gguf'), '--model', 'odd-types', '--license', 'mit');
  hart('ingest', join(dir, 'flat.safetensors'), '--model', 'flat', '--license', 'mit');
  hart('ingest', join(dir, 'many.safetensors'), '--model', 'many', '--license', 'mit');
  hart('ingest', join(dir, 'chat', 'model.gguf'), '--model', HTML_NAME, '--license', '<b>bold</b>');
  ({ server, base } = await startServe(HART, store, dir, ['--ui-dir', process.env.HART_UI_DIR]));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (browser) await browser.close();
  await shutdown(server, dir);
});

test('/ and /assets: strict CSP, index.html revalidated, hashed assets immutable', async () => {
  const r = await fetch(`${base}/`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await r.text();
  const asset = html.match(/src="(\/assets\/[^"]+\.js)"/)[1];
  const a = await fetch(base + asset);
  assert.equal(a.status, 200);
  assert.equal(a.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.match(a.headers.get('content-type'), /javascript/);
  assert.equal((await fetch(`${base}/assets/..%2Findex.html`)).status, 404);
  assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
});

test('Models: names, versions, sizes, licenses; search filters; HTML names are text', async () => {
  await go('/');
  await page.waitForSelector('.model-link');
  const names = await page.$$eval('.model-link', (els) => els.map((e) => e.textContent));
  for (const n of ['tiny', 'llama-ft', 'odd-types', 'flat', 'many', HTML_NAME]) assert.ok(names.includes(n), names.join(' | '));
  const row = page.locator('.vt-row', { has: page.locator('.model-link', { hasText: /^llama-ft$/ }) });
  const cells = await row.locator('.vt-cell').allTextContents();
  assert.equal(cells[1], '2');          // versions
  assert.equal(cells[2], '@2');         // latest
  assert.match(cells[3], /KiB|MiB/);    // logical
  assert.match(cells[4], /KiB|MiB/);    // physical
  assert.equal(cells[5], 'apache-2.0');
  // The HTML name and license are shown as typed, and nothing ran.
  const htmlRow = page.locator('.vt-row', { has: page.locator('.model-link', { hasText: 'onerror' }) });
  assert.ok((await htmlRow.locator('.vt-cell').allTextContents()).includes('<b>bold</b>'));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('img[src=x]').count(), 0);
  await shot('models');
  await page.fill('#model-search', 'llama');
  assert.deepEqual(await page.$$eval('.model-link', (els) => els.map((e) => e.textContent)), ['llama-ft']);
});

test('Model page: versions, tree, graph with collapse and click, treemap, tensors, card', async () => {
  await go('/m/llama-ft/2?tab=versions');
  await page.waitForSelector('.vt-row:not(.vt-head)');
  assert.equal(await page.locator('.vt-count').textContent(), '2 rows');
  await shot('model-versions');
  await page.click('a[role=tab]:has-text("Structure")');
  await page.waitForSelector('.tree');
  assert.ok(await page.locator('.tree summary').count() >= 2);
  await shot('model-structure');
  await page.click('a[role=tab]:has-text("Graph")');
  await page.waitForSelector('svg.graph .gnode');
  const collapsed = await page.locator('.gnode-block').count();
  assert.ok(collapsed >= 2, `blocks drawn collapsed: ${collapsed}`);
  const before = await page.locator('.gnode').count();
  await page.locator('.gnode-block').first().focus();
  await page.keyboard.press('Enter');  // expand with the keyboard
  await page.waitForFunction((n) => document.querySelectorAll('.gnode').length > n, before);
  // And closed again from the list of open blocks.
  const open = await page.$$eval('select[aria-label="Collapse a block"] option', (os) => os.map((o) => o.value).filter(Boolean));
  assert.equal(open.length, 1);
  await page.selectOption('select[aria-label="Collapse a block"]', open[0]);
  await page.waitForFunction((n) => document.querySelectorAll('.gnode').length === n, before);
  await page.locator('.gnode-block').first().focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => document.querySelectorAll('.gnode').length > n, before);
  await page.click('button:has-text("Zoom in")');
  assert.match(await page.locator('svg.graph > g').getAttribute('transform'), /scale\(1\.25\)/);
  await shot('model-graph');
  await page.locator('.gnode-tensor').first().click();
  await page.waitForSelector('svg.histogram');
  assert.match(page.url(), /#\/tensor\/llama-ft%402\//);
  await go('/m/llama-ft/2?tab=treemap');
  await page.waitForSelector('svg.treemap rect.tm-cell');
  assert.ok(await page.locator('svg.treemap text.tm-label', { hasText: 'layer 0' }).count() === 1);
  await shot('model-treemap');
  await go('/m/llama-ft/2?tab=tensors');
  await page.waitForSelector('.tensor-link');
  const show = await (await fetch(`${base}/api/versions/llama-ft@2`)).json();
  assert.equal(await page.locator('.vt-count').textContent(), `${show.tensors.length} rows`);
  await page.click('button:has-text("Compute stats")');
  await page.waitForSelector('text=stats computed');
  const mean = await page.locator('.vt-row:not(.vt-head)').first().locator('.vt-cell').nth(5).textContent();
  assert.notEqual(mean, '—');
  await shot('model-tensors');
  await go('/m/llama-ft/2?tab=card');
  await page.waitForSelector('pre.metadata');
  await shot('model-card');
});

test('Compare: the fine-tuned tensor is highlighted with its difference norms; the rest is shared', async () => {
  await go('/compare?a=llama-ft%401&b=llama-ft%402');
  await page.waitForSelector('#compare-summary');
  assert.match(await page.textContent('#compare-summary'), /1 changed, 0 added, 0 removed, \d+ shared/);
  await page.waitForSelector('.row-changed');
  const cells = await page.locator('.row-changed .vt-cell').allTextContents();
  assert.equal(cells[0], changed);
  assert.equal(cells[1], 'changed');
  assert.ok(Number(cells[2]) > 0, `l2 of the difference: ${cells[2]}`);  // ‖b−a‖ with every value +0.01
  assert.match(cells[5], /^(\d+) \/ \1$/);  // every value changed
  assert.equal(await page.locator(`.gnode.state-changed`).count() >= 1, true);
  assert.ok(await page.locator('.gnode.state-shared').count() >= 1);
  assert.ok(await page.locator('rect.tm-cell.state-changed').count() >= 1);
  assert.ok(await page.locator('rect.tm-cell.state-shared').count() >= 1);
  // With the norms in, the graph and the treemap shade what changed by how
  // much (‖b−a‖/‖a‖ levels), with a legend.
  await page.waitForSelector('#compare-level-legend:not([hidden])');
  assert.match(await page.textContent('#compare-level-legend'), /< 0\.1 %.*≥ 10 %/);
  assert.ok(await page.locator('.gnode[class*="change-"]').count() >= 1, 'a node shaded by its change');
  assert.equal(await page.locator('.gnode.state-shared[class*="change-"]').count(), 0);
  assert.ok(await page.locator('rect.tm-cell[class*="change-"]').count() >= 1, 'a treemap cell shaded by its change');
  // Expanded, the changed tensor itself carries its level.
  await page.click('#compare-views button:has-text("Expand all")');
  assert.match(await page.locator(`.gnode[data-name="${changed}"]`).getAttribute('class'), /state-changed change-[1-4]/);
  await shot('compare');
});

test('Tensor view: histogram and heat map from the server; an undecodable type says so', async () => {
  await go(`/tensor/llama-ft%402/${encodeURIComponent(changed)}`);
  await page.waitForSelector('svg.histogram rect.bar');
  assert.equal(await page.locator('svg.histogram rect.bar').count(), 64);
  await page.waitForSelector('canvas.heatmap');
  assert.match(await page.textContent('#heat-meta'), /rows 0–/);
  await page.fill('input[name=rows]', '2');
  await page.click('button:has-text("Show slice")');
  await page.waitForFunction(() => /rows 0–1 of/.test(document.querySelector('#heat-meta')?.textContent ?? ''));
  await shot('tensor');
  const odd = await (await fetch(`${base}/api/versions/odd-types@1`)).json();
  const iq = odd.tensors.find((t) => t.dtype === 'IQ2_XXS' || t.dtype === 'TQ2_0');
  assert.ok(iq, 'fixture has an undecodable tensor');
  await go(`/tensor/odd-types%401/${encodeURIComponent(iq.name)}`);
  await page.waitForSelector('.error');
  assert.match(await page.locator('.error').first().textContent(), /cannot be decoded/);
  await shot('tensor-undecodable');
});

test('Lineage: versions across models with parent links; a click lists similar versions', async () => {
  await go('/lineage');
  await page.waitForSelector('.vnode[data-ref="llama-ft@2"]');
  assert.ok(await page.locator('svg.lineage path.edge').count() >= 1);
  await page.click('.vnode[data-ref="llama-ft@2"]');
  await page.waitForSelector('#similar h2:has-text("llama-ft@2")');
  await page.waitForSelector('#similar ol, #similar .muted, #similar .error');
  await shot('lineage');
});

test('SQL console: schema, results grid with time, an error in place', async () => {
  await go('/sql');
  await page.waitForSelector('.schema summary:has-text("tensors")');
  await page.fill('#sql-editor', "SELECT name, dtype FROM tensors WHERE ref = 'llama-ft@2' ORDER BY name");
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('#sql-out .vt-row:not(.vt-head)');
  assert.match(await page.textContent('#sql-status'), /^\d+ rows? in \d+ ms$/);
  await shot('sql');
  await page.fill('#sql-editor', 'SELECT * FROM no_such_view');
  await page.click('#sql-run');
  await page.waitForSelector('#sql-out .error');
  assert.match(await page.textContent('#sql-out .error'), /no such table/);
  assert.equal(await page.getAttribute('#sql-editor', 'aria-invalid'), 'true');
  // A syntax error: the server names where (error.offset, a byte offset),
  // the editor marks the token and names its line and column.
  const bad = "SELECT name\nFROM tensors\nWHERE ref = 'é' AND AND name";
  const r = await fetch(`${base}/api/sql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: bad }) });
  assert.equal(r.status, 400);
  const err = (await r.json()).error;
  assert.match(err.message, /near "AND": syntax error/);
  const at = bad.lastIndexOf('AND name');
  assert.equal(err.offset, Buffer.byteLength(bad.slice(0, at)));  // bytes: the é before it is two
  await page.fill('#sql-editor', bad);
  await page.click('#sql-run');
  await page.waitForSelector('#sql-error-mark');
  assert.equal(await page.textContent('#sql-error-mark'), 'AND');
  assert.equal(await page.textContent('#sql-error-where'), `error at line 3, column ${bad.split('\n')[2].lastIndexOf('AND') + 1}: near "AND"`);
  assert.deepEqual(await page.$eval('#sql-editor', (e) => [e.selectionStart, e.selectionEnd]), [at, at + 3]);
  await shot('sql-error');
  await page.keyboard.type(' ');  // editing clears the mark
  assert.equal(await page.locator('#sql-error-mark').count(), 0);
  // An error the server cannot place (no such table) marks nothing.
  await page.fill('#sql-editor', 'SELECT * FROM no_such_view');
  await page.click('#sql-run');
  await page.waitForSelector('#sql-out .error');
  assert.equal(await page.locator('#sql-error-mark').count(), 0);
});

test('Plan: a selection, its closure and bytes against the total, and the partial download', async () => {
  await go(`/plan?version=llama-ft%402`);
  await page.selectOption('#plan-mode', 'names');
  await page.fill('#plan-selection', changed);
  await page.click('button:has-text("Plan")');
  await page.waitForSelector('#plan-summary');
  assert.match(await page.textContent('#plan-summary'), /^1 selected, \d+ of \d+ tensors with the closure: .+ of .+ \(\d+\.\d%\)$/);
  await shot('plan');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Download partial load")')]);
  const path = await dl.path();
  assert.ok(readFileSync(path).length > 0);
});

test('Chat: a streamed reply with the speed figures', async () => {
  await go('/chat');
  await page.waitForSelector('#chat-model option[value="tiny"]', { state: 'attached' });
  await page.selectOption('#chat-model', 'tiny');
  await page.fill('#chat-max-tokens', '8');
  await page.fill('#chat-temperature', '0');
  await page.fill('#chat-input', 'Hello');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /tokens\/s/.test(document.querySelector('#chat-stats')?.textContent ?? ''), null, { timeout: 30000 });
  const reply = await page.textContent('.msg.assistant .reply');
  assert.ok(reply.length > 0, 'a reply streamed in');
  assert.match(await page.textContent('#chat-stats'), /completion [1-8] tokens/);
  // The server's own figures (its timings and usage), not the browser's.
  assert.match(await page.textContent('#chat-server-stats'),
    /^server: prompt \d+ tokens in [\d.e-]+ ms \([\d.e+-]+ tokens\/s\) · generated [1-8] tokens in [\d.e-]+ ms \([\d.e+—-]+ tokens\/s\).* · usage: prompt \d+, completion [1-8]/);
  await shot('chat');
});

test('Chat API: usage and llama.cpp-style timings, measured on the server, stream and not', async () => {
  const ask = (extra) => fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 4, temperature: 0, ...extra }) });
  const whole = await (await ask({})).json();
  const t = whole.timings;
  assert.ok(t, JSON.stringify(whole));
  assert.equal(t.prompt_n + t.cache_n, whole.usage.prompt_tokens);
  assert.equal(t.predicted_n, whole.usage.completion_tokens);
  assert.ok(t.prompt_ms > 0 && t.prompt_per_second > 0, JSON.stringify(t));
  assert.ok(t.predicted_ms >= 0 && t.predicted_per_token_ms >= 0, JSON.stringify(t));
  const text = await (await ask({ stream: true, stream_options: { include_usage: true } })).text();
  const chunks = text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);  // OpenAI's usage chunk, and the timings with it
  assert.ok(last.usage.completion_tokens >= 1 && last.timings.predicted_n === last.usage.completion_tokens, JSON.stringify(last));
  assert.ok(chunks.find((c) => c.choices?.[0]?.finish_reason).timings, 'the finishing chunk carries the timings (as llama.cpp)');
  assert.ok(chunks.slice(0, -2).every((c) => c.timings === undefined && c.usage === null));
});

test('Live: a version ingested elsewhere appears without reload', async () => {
  await go('/live');
  await page.waitForSelector('#live-badge.on');
  await page.waitForSelector('#live-events li');
  safetensors(join(dir, 'flat2.safetensors'), { weird: [4, 8], extra: [2] });
  hart('ingest', join(dir, 'flat2.safetensors'), '--model', 'flat', '--parent', 'flat@1', '--license', 'mit');
  await page.waitForSelector('#live-events li:has-text("flat@2")');
  await page.waitForSelector('.toast:has-text("flat@2")');
  // An upload from the page: progress, then the stored version, then its event.
  safetensors(join(dir, 'up.safetensors'), { up: [64, 64] });
  await page.setInputFiles('#upload-file', join(dir, 'up.safetensors'));
  await page.fill('#upload-model', 'uploaded');
  await page.fill('#upload-license', 'mit');
  await page.click('button:has-text("Ingest")');
  await page.waitForSelector('#upload-status:has-text("stored uploaded@1: 1 tensors")');
  await page.waitForSelector('#live-events li:has-text("uploaded@1")');
  await shot('live');
  // A long ingest: the server's own progress (ingest.progress on the event
  // stream) shows while it hashes and stores, until its version appears.
  {
    // 64 MiB of random bytes (nothing to deduplicate: every chunk is hashed and written).
    const body = randomBytes(64 << 20);
    let hdr = Buffer.from(JSON.stringify({ big: { dtype: 'U8', shape: [body.length], data_offsets: [0, body.length] } }));
    hdr = Buffer.concat([hdr, Buffer.alloc((8 - (hdr.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(join(dir, 'big.safetensors'), Buffer.concat([len, hdr, body]));
  }
  await page.setInputFiles('#upload-file', join(dir, 'big.safetensors'));
  await page.fill('#upload-model', 'big-upload');
  // What the page showed, as it changed (an ingest can be quick).
  await page.evaluate(() => {
    window.__shown = [];
    new MutationObserver(() => {
      for (const el of document.querySelectorAll('#ingest-jobs li, .ingests .ingest-job')) {
        const t = `${el.matches('li') ? 'list' : 'box'}|${el.dataset.state}|${el.textContent}`;
        if (t.includes('big-upload') && window.__shown[window.__shown.length - 1] !== t) window.__shown.push(t);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.click('button:has-text("Ingest")');
  await page.waitForSelector('#ingest-jobs li[data-state="done"]:has-text("big-upload")', { timeout: 30000 });
  assert.equal(await page.textContent('#ingest-jobs li:has-text("big-upload")'), 'ingested big-upload as big-upload@1');
  const shown = await page.evaluate(() => window.__shown);
  const running = shown.filter((t) => /^(list|box)\|running\|/.test(t));
  assert.ok(running.some((t) => /^list\|running\|ingesting big-upload on the server: .*\d (B|KiB|MiB) of 64\.0 MiB \(\d+ %\)$/.test(t)), shown.join('\n'));
  assert.ok(running.some((t) => t.startsWith('box|')), 'the progress box (on every page) showed it');
  assert.ok(Number(await page.getAttribute('#ingest-jobs li:has-text("big-upload")', 'data-running-updates')) >= 1);
  await shot('live-ingest-progress');
  await page.waitForSelector('#upload-status:has-text("stored big-upload@1")');
  await page.waitForSelector('#live-events li:has-text("big-upload@1")');
  await page.waitForSelector('.ingests .ingest-job:has-text("big-upload")', { state: 'detached' });  // gone once the version is there
});

test('Compare: either version is drawn; on a, what b no longer has is marked removed', async () => {
  // flat@2 (from the Live test) has weird and extra; flat@1 only weird.
  await go('/compare?a=flat%402&b=flat%401');
  await page.waitForSelector('#compare-summary');
  assert.match(await page.textContent('#compare-summary'), /0 changed, 0 added, 1 removed, 1 shared/);
  await page.waitForSelector('#compare-views[data-side="b"] .gnode[data-name="weird"].state-shared');
  assert.equal(await page.locator('#compare-views .gnode[data-name="extra"]').count(), 0);
  await page.selectOption('#compare-side', 'a');
  await page.waitForSelector('#compare-views[data-side="a"] .gnode[data-name="extra"].state-removed');
  assert.match(await page.locator('#compare-views .gnode[data-name="weird"]').getAttribute('class'), /state-shared/);
  assert.ok(await page.locator('#compare-views rect.tm-cell.state-removed').count() >= 1);
  assert.match(await page.textContent('#compare-legend'), /removed \(on a\)/);
  await shot('compare-side-a');
});

test('Bad input: an erroring API, an unknown model, a model with no structure, 1,000 tensors', async () => {
  await page.route('**/api/models', (r) => r.fulfill({ status: 500, contentType: 'application/json',
    body: JSON.stringify({ error: { message: 'the store is on fire', type: 'internal' } }) }));
  await go('/');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /500 internal: the store is on fire/);
  await shot('error-api');
  await page.unroute('**/api/models');
  await go('/m/no-such-model');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /404/);
  await page.route('**/api/ui/model-sizes', (r) => r.abort('timedout'));
  await go('/sql');
  await go('/');
  await page.waitForSelector('.model-link');  // the physical sizes are missing, the list is not
  await page.unroute('**/api/ui/model-sizes');
  await page.route('**/api/models', (r) => r.abort('connectionreset'));
  await go('/sql');
  await go('/');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /cannot be reached/);
  await page.unroute('**/api/models');
  await go('/m/flat/1?tab=graph');
  await page.waitForSelector('.notice');
  assert.match(await page.textContent('.notice'), /No structure was found/);
  await shot('no-structure');
  await go('/m/many/1?tab=tensors');
  await page.waitForSelector('.tensor-link');
  assert.equal(await page.locator('.vt-count').textContent(), '1000 rows');
  assert.ok(await page.locator('.tensor-link').count() < 100, 'only the visible rows are in the DOM');
  await page.locator('.vt-viewport').evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); });
  await page.waitForSelector('.tensor-link:has-text("t0999")');
});

test('Phone width and keyboard: readable at 390 px, pages reachable with Tab and Enter', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await go('/');
  await page.waitForSelector('.model-link');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page wider than the phone by ${overflow}px`);
  await shot('phone-models');
  await page.focus('.brand');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');  // Models, Lineage
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Lineage');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.vnode');
  // The pages with new controls fit too: the SQL error mark, the chat's
  // server figures, compare's shading and legend, the model page's
  // visibility control.
  for (const [hash, sel, name] of [['/sql?q=' + encodeURIComponent("SELECT name, dtype, shape FROM tensors WHERE ref = 'llama-ft@2' AND AND name"), '#sql-error-mark', 'phone-sql'], ['/chat', '#chat-input', 'phone-chat'],
    ['/compare?a=llama-ft%401&b=llama-ft%402', '#compare-level-legend:not([hidden])', 'phone-compare'],
    ['/m/llama-ft/2', '#visibility-select', 'phone-model'], ['/live', '#upload-file', 'phone-live']]) {
    await go(hash);
    await page.waitForSelector(sel);
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(over <= 1, `${hash} wider than the phone by ${over}px`);
    await shot(name);
    if (name === 'phone-model') {
      // The visibility control by keyboard: Tab from the select to its button.
      await page.focus('#visibility-select');
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'visibility-set');
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(consoleErrors.filter((e) => !/Failed to load resource/.test(e)), []);
});
