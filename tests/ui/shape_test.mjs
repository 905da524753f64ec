// Unit tests of the UI's data shaping (web/src/shape.ts) and PKCE (pkce.ts) under node's test
// runner: the module is transpiled with the pinned typescript package into a
// temp file and imported, so what runs is the code the browser runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const web = process.env.HART_WEB_DIR;
const ts = createRequire(join(web, 'package.json'))('typescript');
const tmp = mkdtempSync(join(tmpdir(), 'hart_shape_'));
async function load(name) {
  const out = join(tmp, `${name}.mjs`);
  writeFileSync(out, ts.transpileModule(readFileSync(join(web, `src/${name}.ts`), 'utf8'),
    { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2020 } }).outputText);
  return import(pathToFileURL(out).href);
}
const S = await load('shape');
const P = await load('pkce');

test('formatBytes and formatNumber', () => {
  assert.equal(S.formatBytes(0), '0 B');
  assert.equal(S.formatBytes(1023), '1023 B');
  assert.equal(S.formatBytes(1536), '1.50 KiB');
  assert.equal(S.formatBytes(5 * 1024 ** 3), '5.00 GiB');
  assert.equal(S.formatBytes(null), '—');
  assert.equal(S.formatNumber(0.5), '0.5');
  assert.equal(S.formatNumber(1e-5), '1.000e-5');
  assert.equal(S.formatNumber(NaN), '—');
});

test('modelSummaries joins stats and filters', () => {
  const models = [{ name: 'a', versions: 2, latest: 2, logical_bytes: 10, license: 'MIT', created_at: 1767225600 },
                  { name: 'b', versions: 1, latest: 1, logical_bytes: 5 }];
  const stats = [{ model: 'a', logical_bytes: 10, physical_bytes: 6, dedup_ratio: 1.6 }];
  const all = S.modelSummaries(models, stats);
  assert.equal(all[0].physical_bytes, 6);
  assert.equal(all[0].license, 'MIT');
  assert.equal(all[0].last_change, 1767225600);
  assert.equal(all[1].physical_bytes, null);
  assert.equal(all[1].license, '');
  assert.deepEqual(S.modelSummaries(models, stats, 'mit').map((m) => m.name), ['a']);
  assert.deepEqual(S.modelSummaries(models, stats, 'B').map((m) => m.name), ['b']);
});

test('modelSummaries takes owner and visibility from /api/models; ownerLabel shows the subject', () => {
  const models = [{ name: 'a', versions: 1, latest: 1, logical_bytes: 1, owner: 'http://idp|alice', visibility: 'private' },
                  { name: 'b', versions: 1, latest: 1, logical_bytes: 1, owner: 'local', visibility: 'public' },
                  { name: 'c', versions: 1, latest: 1, logical_bytes: 1 }];
  const all = S.modelSummaries(models, []);
  assert.deepEqual(all.map((m) => [m.owner, m.visibility]), [['http://idp|alice', 'private'], ['local', 'public'], ['', '']]);
  assert.deepEqual(S.modelSummaries(models, [], 'alice').map((m) => m.name), ['a']);
  assert.deepEqual(S.modelSummaries(models, [], 'PUBLIC').map((m) => m.name), ['b']);
  assert.equal(S.ownerLabel('https://login.example.com/t/v2.0|0f3c-oid'), '0f3c-oid');
  assert.equal(S.ownerLabel('local'), 'local');
  assert.equal(S.ownerLabel('apikey:ci'), 'apikey:ci');
  assert.equal(S.ownerLabel('weird|'), 'weird|');
  assert.equal(S.ownerLabel(undefined), '');
});

test('squarify covers the rectangle exactly, areas proportional, no overlap', () => {
  const items = [6, 6, 4, 3, 2, 2, 1].map((v, i) => ({ key: `k${i}`, value: v }));
  const rects = S.squarify(items, 0, 0, 600, 400);
  assert.equal(rects.length, 7);
  const area = rects.reduce((s, r) => s + r.w * r.h, 0);
  assert.ok(Math.abs(area - 600 * 400) < 1e-6);
  for (const r of rects) {
    assert.ok(Math.abs(r.w * r.h - (r.value / 24) * 240000) < 1e-6);
    assert.ok(r.x >= -1e-9 && r.y >= -1e-9 && r.x + r.w <= 600 + 1e-6 && r.y + r.h <= 400 + 1e-6);
  }
  for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
    const a = rects[i], b = rects[j];
    const ox = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x), oy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
    assert.ok(ox <= 1e-6 || oy <= 1e-6, `${a.key} overlaps ${b.key}`);
  }
  assert.deepEqual(S.squarify([{ key: 'z', value: 0 }], 0, 0, 10, 10), []);
});

const nodes = [
  { id: 1, parent: null, kind: 'model', name: 'm', role: null, layer: null, dtype: null, shape: null, nbytes: 70 },
  { id: 2, parent: 1, kind: 'block', name: 'blk.0', role: null, layer: 0, dtype: null, shape: null, nbytes: 30 },
  { id: 3, parent: 2, kind: 'tensor', name: 'q', role: 'attn_q', layer: 0, dtype: 'F32', shape: [2], nbytes: 10 },
  { id: 4, parent: 2, kind: 'tensor', name: 'k', role: 'attn_k', layer: 0, dtype: 'F32', shape: [2], nbytes: 20 },
  { id: 5, parent: 1, kind: 'tensor', name: 'emb', role: 'embed', layer: null, dtype: 'F32', shape: [2], nbytes: 40 },
];
const edges = [{ src: 1, dst: 2, kind: 'contains' }, { src: 5, dst: 3, kind: 'feeds' }, { src: 5, dst: 4, kind: 'feeds' }];

test('bytesByLayerRole groups tensor bytes by layer then role', () => {
  const g = S.bytesByLayerRole(nodes);
  assert.deepEqual(g.map((x) => [x.key, x.value]), [['no layer', 40], ['layer 0', 30]]);
  assert.deepEqual(g[1].children.map((c) => [c.key, c.value]), [['attn_k', 20], ['attn_q', 10]]);
});

test('layoutGraph: a collapsed block stands for its tensors; feeds give the layers', () => {
  const c = S.layoutGraph(nodes, edges, new Set([2]));
  assert.deepEqual(c.nodes.map((n) => n.name).sort(), ['blk.0', 'emb']);
  assert.deepEqual(c.edges, [{ src: 5, dst: 2, kind: 'feeds' }]);  // two edges merged into one
  assert.equal(c.nodes.find((n) => n.id === 2).hidden, 2);
  const e = S.layoutGraph(nodes, edges, new Set());
  assert.deepEqual(e.nodes.map((n) => n.name).sort(), ['emb', 'k', 'q']);
  const y = Object.fromEntries(e.nodes.map((n) => [n.name, n.y]));
  assert.ok(y.emb < y.q && y.q === y.k, 'sources above what they feed');
  // A cycle does not hang.
  const cyc = S.layoutGraph(nodes, [...edges, { src: 3, dst: 5, kind: 'ties' }], new Set());
  assert.equal(cyc.nodes.length, 3);
});

test('visibleRange and sortRows', () => {
  assert.deepEqual(S.visibleRange(0, 280, 28, 1000, 0), { first: 0, last: 10 });
  assert.deepEqual(S.visibleRange(28 * 500, 280, 28, 1000, 2), { first: 498, last: 512 });
  assert.deepEqual(S.visibleRange(28 * 995, 280, 28, 1000, 2), { first: 993, last: 1000 });
  assert.deepEqual(S.sortRows([{ v: 2 }, { v: null }, { v: 1 }], (r) => r.v, 1).map((r) => r.v), [1, 2, null]);
  assert.deepEqual(S.sortRows([{ v: 2 }, { v: null }, { v: 1 }], (r) => r.v, -1).map((r) => r.v), [2, 1, null]);
});

test('histogramBars and heatColor', () => {
  const b = S.histogramBars([0, 9, 99], -1, 2, 100);
  assert.equal(b.length, 3);
  assert.equal(b[2].h, 100);
  assert.equal(b[0].h, 0);
  assert.equal(b[1].lo, 0);
  assert.equal(S.heatColor(0, -1, 1), 'rgb(255,255,255)');
  assert.equal(S.heatColor(1, -1, 1), 'rgb(255,0,0)');
  assert.equal(S.heatColor(-1, -1, 1), 'rgb(0,0,255)');
  assert.equal(S.heatColor(null, -1, 1), 'rgb(160,160,160)');
});

test('compareStates and joinNorms', () => {
  const diff = [{ kind: 'changed', name: 'q', bytes_a: 4, bytes_b: 4, changed_bytes: 4 }, { kind: 'added', name: 'x', bytes_a: 0, bytes_b: 4, changed_bytes: 4 }];
  const st = S.compareStates(diff, ['q', 'k', 'x']);
  assert.deepEqual([...st], [['q', 'changed'], ['k', 'shared'], ['x', 'added']]);
  const j = S.joinNorms(diff, [{ name: 'q', computed: true, rel_diff: 0.1 }]);
  assert.equal(j[0].name, 'q');
  assert.equal(j[1].norm, null);
});

test('lineageLayout: rows per model, edges across models', () => {
  const L = S.lineageLayout([
    { ref: 'a@1', model: 'a', number: 1, parent: null },
    { ref: 'a@2', model: 'a', number: 2, parent: 'a@1' },
    { ref: 'b@1', model: 'b', number: 1, parent: 'a@2' },
    { ref: 'c@1', model: 'c', number: 1, parent: 'gone@3' },
  ]);
  assert.deepEqual(L.models, ['a', 'b', 'c']);
  assert.deepEqual(L.edges, [{ from: 'a@1', to: 'a@2' }, { from: 'a@2', to: 'b@1' }]);
  assert.ok(L.pos.get('a@2').x > L.pos.get('a@1').x);
  assert.ok(L.pos.get('b@1').y > L.pos.get('a@1').y);
  // 1,000 versions wrap into rows of 12 instead of one strip.
  const many = Array.from({ length: 1000 }, (_, i) => ({ ref: `m@${i + 1}`, model: 'm', number: i + 1, parent: i ? `m@${i}` : null }));
  // Derivations add labelled edges from each readable input; an input that
  // is also the parent labels the parent edge instead of doubling it.
  const D = S.lineageLayout([
    { ref: 'a@1', model: 'a', number: 1, parent: null },
    { ref: 'b@1', model: 'b', number: 1, parent: null },
    { ref: 'q@1', model: 'q', number: 1, parent: 'a@1' },
    { ref: 'm@1', model: 'm', number: 1, parent: null },
  ], [{ ref: 'q@1', method: 'quantize', inputs: 'a@1' }, { ref: 'm@1', method: 'merge', inputs: 'a@1,b@1,hidden@2' }]);
  assert.deepEqual(D.edges, [{ from: 'a@1', to: 'q@1', method: 'quantize' }, { from: 'a@1', to: 'm@1', method: 'merge' },
    { from: 'b@1', to: 'm@1', method: 'merge' }]);
  const W = S.lineageLayout(many);
  assert.equal(W.width, 20 + 12 * 110 + 20);
  assert.equal(W.pos.get('m@13').x, W.pos.get('m@1').x);
  assert.ok(W.pos.get('m@13').y > W.pos.get('m@1').y);
  assert.equal(W.edges.length, 999);
});

test('parseSse: whole events, partial rest, multi-line data, comments', () => {
  const { events, rest } = S.parseSse('id: 3\nevent: version.created\ndata: {"a":1}\n\n: ping\n\ndata: x\ndata: y\n\ndata: part');
  assert.deepEqual(events, [{ id: '3', event: 'version.created', data: '{"a":1}' }, { data: 'x\ny' }]);
  assert.equal(rest, 'data: part');
  assert.deepEqual(S.parseSse('data: a\r\n\r\n').events, [{ data: 'a' }]);
});

test('speed: time to first token and decode rate', () => {
  assert.deepEqual(S.speed(0, 100, 1100, 11), { ttft_ms: 100, tokens_per_s: 10 });
  assert.deepEqual(S.speed(0, null, 50, 0), { ttft_ms: null, tokens_per_s: null });
});

test('formatTime: Unix seconds as UTC minutes, anything else as given', () => {
  assert.equal(S.formatTime(0), '1970-01-01 00:00');
  assert.equal(S.formatTime('1796541632'), '2026-12-06 07:20');
  assert.equal(S.formatTime('yesterday'), 'yesterday');
  assert.equal(S.formatTime(null), '—');
});

test('PKCE: S256 challenge (RFC 7636 appendix B), authorize URL, callback checks, token body', async () => {
  assert.equal(await P.challengeS256('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  assert.match(P.randomToken(), /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(P.randomToken(), P.randomToken());
  const u = new URL(P.authorizeUrl('https://idp.example/authorize?tenant=x', { enabled: true, client_id: 'ui', scopes: ['openid', 'api'] },
    'http://127.0.0.1:8080/', 'CH', 'ST'));
  assert.equal(u.searchParams.get('tenant'), 'x');
  assert.equal(u.searchParams.get('response_type'), 'code');
  assert.equal(u.searchParams.get('scope'), 'openid api');
  assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(u.searchParams.get('state'), 'ST');
  assert.deepEqual(P.parseCallback('', 'ST'), { kind: 'none' });
  assert.deepEqual(P.parseCallback('?code=C&state=ST', 'ST'), { kind: 'code', code: 'C' });
  assert.equal(P.parseCallback('?code=C&state=OTHER', 'ST').kind, 'error');
  assert.equal(P.parseCallback('?code=C&state=ST', null).kind, 'error');
  assert.deepEqual(P.parseCallback('?error=access_denied&error_description=no', 'ST'), { kind: 'error', message: 'access_denied: no' });
  const body = new URLSearchParams(P.tokenRequestBody('C', 'V', 'http://h/', 'ui'));
  assert.equal(body.get('grant_type'), 'authorization_code');
  assert.equal(body.get('code_verifier'), 'V');
});

test('serverSpeed: the server timings and usage as one line', () => {
  assert.equal(S.serverSpeed(null, null), '');
  assert.equal(S.serverSpeed({ prompt_n: 5, prompt_ms: 12.5, prompt_per_second: 400, predicted_n: 8, predicted_ms: 70, predicted_per_second: 100, cache_n: 2 },
    { prompt_tokens: 7, completion_tokens: 8, prompt_tokens_details: { cached_tokens: 2 } }),
    'server: prompt 5 tokens in 12.5 ms (400 tokens/s) · generated 8 tokens in 70 ms (100 tokens/s) · 2 prompt tokens from the cache · usage: prompt 7, completion 8, cached 2');
});

test('errorPlace: a byte offset to the editor index, line, column and token', () => {
  const sql = "SELECT 'é'\nFROM t ORDER BY BY x";
  const byteOff = Buffer.byteLength(sql.slice(0, sql.lastIndexOf('BY x')));
  const p = S.errorPlace(sql, byteOff);
  assert.deepEqual(p, { index: sql.lastIndexOf('BY x'), line: 2, column: 'FROM t ORDER BY '.length + 1, end: sql.lastIndexOf('BY x') + 2 });
  assert.equal(S.errorPlace('SELECT', 999).index, 6);  // past the end: the end
  assert.equal(S.errorPlace("x = 'abc", 4).end, 8);     // an unterminated string to the end
});

test('changeLevel: relative difference norms to heat levels', () => {
  assert.deepEqual([0, null, NaN, 1e-4, 5e-3, 0.05, 2].map(S.changeLevel), [0, 0, 0, 1, 2, 3, 4]);
  assert.equal(S.changeLevelLabels.length, 5);
});

test('ingestProgressText: running, done, failed', () => {
  assert.equal(S.ingestProgressText({ job: 1, model: 'm', state: 'running', stage: 'ingest', done: 512, total: 2048, unit: 'B' }),
    'ingesting m on the server: ingest 512 B of 2.00 KiB (25 %)');
  assert.equal(S.ingestProgressText({ job: 1, model: 'm', state: 'done', done: 1, total: 1, version: 'm@3' }), 'ingested m as m@3');
  assert.equal(S.ingestProgressText({ job: 1, model: 'm', state: 'failed', done: 0, total: 1, error: 'bad header' }), 'ingest of m failed: bad header');
});

test('refreshDelay and jwtExpiry: when to refresh the token', () => {
  const now = 1_000_000;
  assert.equal(S.refreshDelay(null, now), null);
  assert.equal(S.refreshDelay(now + 3600_000, now), 3600_000 - 30_000);  // 30 s early
  assert.equal(S.refreshDelay(now + 10_000, now), 8_000);                // 80 % of a short one
  assert.equal(S.refreshDelay(now - 5_000, now), 1_000);                 // expired: at once (1 s)
  const jwt = (o) => `e30.${Buffer.from(JSON.stringify(o)).toString('base64url')}.sig`;
  assert.equal(S.jwtExpiry(jwt({ exp: 1700000000 })), 1700000000 * 1000);
  assert.equal(S.jwtExpiry(jwt({ sub: 'x' })), null);
  assert.equal(S.jwtExpiry('opaque-token'), null);
});

test('mayChangeVisibility: Admins and owning Contributors only', () => {
  assert.equal(S.mayChangeVisibility({ role: 'Admin', owner: 'x' }, 'y'), true);
  assert.equal(S.mayChangeVisibility({ role: 'Contributor', owner: 'y' }, 'y'), true);
  assert.equal(S.mayChangeVisibility({ role: 'Contributor', owner: 'x' }, 'y'), false);
  assert.equal(S.mayChangeVisibility({ role: 'Reader', owner: 'y' }, 'y'), false);
  assert.equal(S.mayChangeVisibility(null, 'y'), false);
});

test('refreshRequestBody: the refresh_token grant', () => {
  assert.equal(P.refreshRequestBody('r t', 'hart-web'), 'grant_type=refresh_token&refresh_token=r+t&client_id=hart-web');
});

test('compareStatesOn: each side shows its own tensors', () => {
  const diff = [{ kind: 'changed', name: 'c' }, { kind: 'added', name: 'n' }, { kind: 'removed', name: 'r' }];
  assert.deepEqual([...S.compareStatesOn(diff, ['c', 'n', 's'], 'b')], [['c', 'changed'], ['n', 'added'], ['s', 'shared']]);
  assert.deepEqual([...S.compareStatesOn(diff, ['c', 'r', 's'], 'a')], [['c', 'changed'], ['r', 'removed'], ['s', 'shared']]);
});
