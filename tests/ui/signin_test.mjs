// End to end: sign-in to the web UI (issues 14 and 16). A small OpenID
// Connect provider written here on 127.0.0.1 (an RSA key from node:crypto,
// discovery, JWKS, an /authorize that redirects straight back with a code,
// and a /token that checks the PKCE verifier and answers RS256 tokens);
// `hart serve --auth` trusts it; Debian's chromium (playwright-core, never a
// downloaded browser) runs the SPA's authorization code flow with PKCE.
// Asserts what a person sees: signed out, the sign-in button and no models;
// signed in, only the models the rule lets them read (another owner's
// private model is hidden) with owners and visibility; signed out again.
// Run by ctest (tests/ui/ui_tests.cmake); screenshots go to $HART_UI_OUT.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempStore, hartCli, startServe, shutdown } from '../node/hart_server.mjs';
import { writeSafetensors } from '../node/safetensors.mjs';

const require = createRequire(join(process.env.HART_WEB_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const HART = process.env.HART_BIN;
const OUT = process.env.HART_UI_OUT ?? join(tmpdir(), 'hart_ui_out');
const { dir, store } = tempStore('hart_signin_');
const AUDIENCE = 'api://hart';
const CLIENT = 'hart-web';
const USER = 'alice';
let server, browser, page, base, issuer, idp;

const hart = hartCli(HART, store);
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---- the provider ----

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KID = 'test-rsa-1';
const codes = new Map();  // code -> {challenge, redirect_uri, client_id}
const seen = { authorize: 0, tokens: 0, refused: 0, refreshes: 0 };
// How the provider answers: token lifetime (s), and whether it hands out refresh tokens.
const mode = { lifetime: 600, refresh: false };
const refreshTokens = new Set();

function mint(claims) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iss: issuer, aud: AUDIENCE, iat: now, nbf: now, exp: now + mode.lifetime, jti: b64url(randomBytes(6)), ...claims };
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: KID }))}.${b64url(JSON.stringify(body))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
}
const userToken = () => mint({ sub: USER, oid: USER, name: 'Alice', roles: ['Contributor'] });

function startProvider() {
  idp = createServer((req, res) => {
    const u = new URL(req.url, issuer);
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'access-control-allow-origin': '*', 'cache-control': 'no-store', ...headers,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}) });
      res.end(body !== undefined ? JSON.stringify(body) : undefined);
    };
    if (req.method === 'OPTIONS') return send(204, undefined, { 'access-control-allow-headers': 'content-type', 'access-control-allow-methods': 'GET, POST' });
    if (u.pathname === '/.well-known/openid-configuration') {
      return send(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256'] });
    }
    if (u.pathname === '/jwks') return send(200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' }] });
    if (u.pathname === '/authorize') {
      const q = u.searchParams;
      if (q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') ||
          q.get('client_id') !== CLIENT || !q.get('redirect_uri') || !q.get('state')) {
        return send(400, { error: 'invalid_request', error_description: `bad authorize request: ${u.search}` });
      }
      seen.authorize++;
      const code = b64url(randomBytes(16));
      codes.set(code, { challenge: q.get('code_challenge'), redirect_uri: q.get('redirect_uri'), client_id: q.get('client_id') });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state'));
      return send(302, undefined, { location: back.toString() });
    }
    if (u.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (c) => { raw += c; });
      req.on('end', () => {
        const f = new URLSearchParams(raw);
        const answer = () => {
          const t = userToken();
          const body = { access_token: t, id_token: t, token_type: 'Bearer', expires_in: mode.lifetime };
          if (mode.refresh) { body.refresh_token = b64url(randomBytes(16)); refreshTokens.add(body.refresh_token); }
          send(200, body);
        };
        if (f.get('grant_type') === 'refresh_token') {
          // A refresh token is good once (rotated), for this client.
          const ok = refreshTokens.delete(f.get('refresh_token') ?? '') && f.get('client_id') === CLIENT;
          if (!ok) { seen.refused++; return send(400, { error: 'invalid_grant', error_description: 'unknown refresh token' }); }
          seen.refreshes++;
          return answer();
        }
        const c = codes.get(f.get('code') ?? '');
        codes.delete(f.get('code') ?? '');  // a code is good once
        const verified = c && f.get('grant_type') === 'authorization_code' && f.get('client_id') === c.client_id &&
          f.get('redirect_uri') === c.redirect_uri &&
          b64url(createHash('sha256').update(f.get('code_verifier') ?? '').digest()) === c.challenge;
        if (!verified) { seen.refused++; return send(400, { error: 'invalid_grant', error_description: 'code or PKCE verifier does not match' }); }
        seen.tokens++;
        answer();
      });
      return;
    }
    send(404, { error: 'not_found' });
  });
  return new Promise((r) => idp.listen(0, '127.0.0.1', () => { issuer = `http://127.0.0.1:${idp.address().port}`; r(); }));
}

// ---- the store and the server ----

const safetensors = (path, name, n) => writeSafetensors(path, { [name]: [n] }, (i) => i / n);

const shot = (name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
const modelNames = () => page.$$eval('.model-link', (els) => els.map((e) => e.textContent).sort());

before(async () => {
  mkdirSync(OUT, { recursive: true });
  await startProvider();
  safetensors(join(dir, 'open.safetensors'), 'w', 64);
  safetensors(join(dir, 'secret.safetensors'), 's', 96);
  safetensors(join(dir, 'mine.safetensors'), 'm', 128);
  hart('init');
  hart('ingest', join(dir, 'open.safetensors'), '--model', 'open-base', '--license', 'mit');
  hart('ingest', join(dir, 'secret.safetensors'), '--model', 'secret-ft', '--license', 'mit');
  hart('visibility', 'open-base', 'public');  // secret-ft stays private to the local owner
  writeFileSync(join(dir, 'auth.json'), JSON.stringify({ issuer, audience: AUDIENCE, client_id: CLIENT, scopes: ['openid', 'profile'], clock_skew_seconds: 0 }));
  ({ server, base } = await startServe(HART, store, dir,
    ['--ui-dir', process.env.HART_UI_DIR, '--auth', join(dir, 'auth.json')]));
  // alice's own private model, uploaded with her token (the owner is the token's issuer|oid).
  const up = await fetch(`${base}/api/ingest?filename=mine.safetensors&model=alice-ft&license=apache-2.0`, {
    method: 'POST', headers: { authorization: `Bearer ${userToken()}`, 'content-type': 'application/octet-stream' },
    body: readFileSync(join(dir, 'mine.safetensors')) });
  assert.equal(up.status, 201, await up.text());
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(10000);
});

after(async () => {
  if (browser) await browser.close();
  await shutdown(server);  // the folder goes last, below
  if (idp) await new Promise((r) => idp.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test('the provider checks the PKCE verifier; the API wants a token', async () => {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const authz = (v) => fetch(`${issuer}/authorize?response_type=code&client_id=${CLIENT}&redirect_uri=${encodeURIComponent(base + '/')}` +
    `&code_challenge=${challenge}&code_challenge_method=S256&state=s1&scope=openid`, { redirect: 'manual' })
    .then((r) => new URL(r.headers.get('location')).searchParams.get('code'))
    .then((code) => fetch(`${issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: v, redirect_uri: base + '/', client_id: CLIENT }) }));
  assert.equal((await authz('not-the-verifier')).status, 400);
  assert.equal((await authz(verifier)).status, 200);
  assert.deepEqual([seen.tokens, seen.refused], [1, 1]);
  Object.assign(seen, { authorize: 0, tokens: 0, refused: 0 });
  const r = await fetch(`${base}/api/models`);
  assert.equal(r.status, 401);
  assert.ok(r.headers.get('www-authenticate'));
  const cfg = await (await fetch(`${base}/auth/config`)).json();
  assert.equal(cfg.enabled, true);
  assert.equal(cfg.client_id, CLIENT);
});

test('signed out: the sign-in button, and no models', async () => {
  await page.goto(`${base}/#/`);
  await page.waitForSelector('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin-needed');
  assert.match(await page.textContent('main .error'), /401/);
  assert.equal(await page.locator('.model-link').count(), 0);
  await shot('signin-signed-out');
});

test('signing in: PKCE with the provider, then only the models this person may read, with owners', async () => {
  await page.click('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin button:has-text("Sign out")');
  assert.match(await page.textContent('.signin'), new RegExp(`^${USER} \\(Contributor\\)`));
  assert.equal(await page.getAttribute('.signin .owner', 'title'), `${issuer}|${USER}`);
  assert.deepEqual([seen.authorize, seen.tokens, seen.refused], [1, 1, 0]);
  assert.doesNotMatch(page.url(), /code=|state=/);  // the callback's query is gone from the address
  await page.waitForSelector('.model-link');
  assert.deepEqual(await modelNames(), ['alice-ft', 'open-base']);  // secret-ft (local, private) is hidden
  const cells = async (name) => page.locator('.vt-row', { has: page.locator('.model-link', { hasText: new RegExp(`^${name}$`) }) })
    .locator('.vt-cell').allTextContents();
  const mine = await cells('alice-ft');
  assert.match(mine[4], /^\d+ B$|KiB/);  // physical size shown to a non-Admin
  assert.deepEqual([mine[5], mine[6], mine[7]], ['apache-2.0', USER, 'private']);
  assert.match(mine[8], /^\d{4}-\d\d-\d\d \d\d:\d\d$/);  // the latest version's time, without SQL rights
  const open = await cells('open-base');
  assert.deepEqual([open[5], open[6], open[7]], ['mit', 'local', 'public']);
  assert.equal(await page.locator('.vt-row .owner', { hasText: USER }).getAttribute('title'), `${issuer}|${USER}`);
  await page.waitForSelector('#live-badge.on');  // the event stream reconnects with the bearer token (every 3 s)
  await shot('signin-models');
  await page.goto(`${base}/#/m/alice-ft`);
  await page.waitForSelector('#model-owner');
  assert.equal(await page.textContent('#model-owner'), USER);
  assert.equal(await page.textContent('#model-visibility'), 'private');
  // Physical (deduplicated) sizes for a Contributor too, of what it reads only.
  const sizes = await page.evaluate(async () => (await fetch('/api/ui/model-sizes', { headers: { authorization: `Bearer ${sessionStorage.getItem('hart.token')}` } })).json());
  assert.deepEqual(sizes.map((x) => x.model).sort(), ['alice-ft', 'open-base']);
  assert.ok(sizes.every((x) => x.physical_bytes > 0 && x.physical_bytes <= x.logical_bytes), JSON.stringify(sizes));
  await shot('signin-model');
  // Another owner's private model does not exist for this person.
  await page.goto(`${base}/#/m/secret-ft`);
  await page.waitForSelector('main .error');
  assert.match(await page.textContent('main .error'), /404.*no model named 'secret-ft'/);
});

test('visibility: the owner changes it from the model page (by keyboard); not on a model that is not theirs', async () => {
  await page.goto(`${base}/#/m/alice-ft`);
  await page.waitForSelector('#visibility-select');
  await page.selectOption('#visibility-select', 'tenant');
  await page.focus('#visibility-select');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'visibility-set');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#visibility-status:has-text("now tenant")');
  assert.equal(await page.textContent('#model-visibility'), 'tenant');
  const list = await (await fetch(`${base}/api/models`, { headers: { authorization: `Bearer ${userToken()}` } })).json();
  assert.equal(list.find((m) => m.name === 'alice-ft').visibility, 'tenant');
  await page.setViewportSize({ width: 390, height: 844 });
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(over <= 1, `the model page is wider than the phone by ${over}px`);
  await shot('signin-visibility-phone');
  await page.setViewportSize({ width: 1280, height: 900 });
  // open-base is the local owner's: alice reads it, and gets no control.
  await page.goto(`${base}/#/m/open-base`);
  await page.waitForSelector('#model-visibility');
  await page.waitForTimeout(500);  // /auth/me has answered
  assert.equal(await page.locator('#visibility-select').count(), 0);
  assert.equal(await page.textContent('#model-visibility'), 'public');
});

test('token refresh: before the token expires, with the refresh token, else by signing in again', async () => {
  // Short-lived tokens (5 s) with refresh tokens: the page refreshes at 80 %.
  Object.assign(mode, { lifetime: 5, refresh: true });
  await page.click('.signin button:has-text("Sign out")');
  await page.waitForSelector('.signin button:has-text("Sign in")');
  Object.assign(seen, { authorize: 0, tokens: 0, refused: 0, refreshes: 0 });
  await page.click('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin button:has-text("Sign out")');
  const first = await page.evaluate(() => sessionStorage.getItem('hart.token'));
  assert.ok(await page.evaluate(() => sessionStorage.getItem('hart.refresh')));
  await page.waitForFunction((t) => sessionStorage.getItem('hart.token') !== t, first, { timeout: 12000 });
  assert.deepEqual([seen.authorize, seen.tokens, seen.refreshes, seen.refused], [1, 1, 1, 0]);
  // Past the first token's expiry, the API still answers the page.
  await page.waitForTimeout(Math.max(0, JSON.parse(Buffer.from(first.split('.')[1], 'base64url')).exp * 1000 - Date.now() + 1500));
  assert.ok(seen.refreshes >= 1);
  await page.goto(`${base}/#/sql`);
  await page.goto(`${base}/#/`);
  await page.waitForSelector('.model-link');
  assert.equal((await fetch(`${base}/api/models`, { headers: { authorization: `Bearer ${first}` } })).status, 401);  // the first one is dead
  // A tab that comes back with a dead token refreshes it before anything else.
  const r0 = seen.refreshes;
  await page.evaluate((t) => { sessionStorage.setItem('hart.token', t); sessionStorage.setItem('hart.expires', String(Date.now() - 1000)); }, first);
  await page.reload();
  await page.waitForSelector('.signin button:has-text("Sign out")');
  await page.waitForSelector('.model-link');
  assert.ok(seen.refreshes >= r0 + 1);
  assert.notEqual(await page.evaluate(() => sessionStorage.getItem('hart.token')), first);
  // Without refresh tokens the page goes through the provider again, and back to the same page.
  Object.assign(mode, { lifetime: 4, refresh: false });
  await page.click('.signin button:has-text("Sign out")');
  await page.waitForSelector('.signin button:has-text("Sign in")');
  await page.goto(`${base}/#/lineage`);
  await page.click('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin button:has-text("Sign out")');
  const before = { authorize: seen.authorize, tokens: seen.tokens, refreshes: seen.refreshes };
  const t1 = await page.evaluate(() => sessionStorage.getItem('hart.token'));
  // The page leaves for the provider and comes back: poll from here.
  for (let i = 0; i < 120 && seen.tokens === before.tokens; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual([seen.authorize, seen.tokens, seen.refreshes], [before.authorize + 1, before.tokens + 1, before.refreshes]);
  await page.waitForSelector('.signin button:has-text("Sign out")');
  assert.notEqual(await page.evaluate(() => sessionStorage.getItem('hart.token')), t1);
  assert.match(page.url(), /#\/lineage$/);
  await shot('signin-refreshed');
  // Back to long-lived tokens for what follows.
  Object.assign(mode, { lifetime: 600, refresh: false });
  await page.click('.signin button:has-text("Sign out")');
  await page.waitForSelector('.signin button:has-text("Sign in")');
  await page.click('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin button:has-text("Sign out")');
});

test('signing out: the token is gone and the models with it', async () => {
  await page.goto(`${base}/#/`);
  await page.waitForSelector('.model-link');
  await page.click('.signin button:has-text("Sign out")');
  await page.waitForSelector('.signin button:has-text("Sign in")');
  await page.waitForSelector('.signin-needed');
  assert.equal(await page.locator('.model-link').count(), 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hart.token')), null);
  await shot('signin-signed-out-again');
});

test('ingest progress on the event stream goes to the uploader only', async () => {
  // Two streams, alice's and bob's (another Contributor); alice uploads.
  const bob = mint({ sub: 'bob', oid: 'bob', name: 'Bob', roles: ['Contributor'] });
  const listen = (token) => {
    const ctl = new AbortController();
    const got = { text: '' };
    got.done = fetch(`${base}/api/events/stream`, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal })
      .then(async (r) => { assert.equal(r.status, 200); for await (const c of r.body) got.text += Buffer.from(c).toString(); })
      .catch((e) => { if (e.name !== 'AbortError') throw e; });
    got.stop = () => { ctl.abort(); return got.done; };
    return got;
  };
  const a = listen(userToken()), b = listen(bob);
  await new Promise((r) => setTimeout(r, 300));
  const body = randomBytes(16 << 20);
  let hdr = Buffer.from(JSON.stringify({ r: { dtype: 'U8', shape: [body.length], data_offsets: [0, body.length] } }));
  hdr = Buffer.concat([hdr, Buffer.alloc((8 - (hdr.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length));
  const up = await fetch(`${base}/api/ingest?filename=r.safetensors&model=alice-big&license=mit`, {
    method: 'POST', headers: { authorization: `Bearer ${userToken()}`, 'content-type': 'application/octet-stream' },
    body: Buffer.concat([len, hdr, body]) });
  const size = 8 + hdr.length + body.length;
  assert.equal(up.status, 201, await up.text());
  await new Promise((r) => setTimeout(r, 500));
  await a.stop();
  await b.stop();
  const progress = (text) => text.split('\n\n').filter((e) => e.includes('event: ingest.progress'))
    .map((e) => JSON.parse(e.split('\n').find((l) => l.startsWith('data: ')).slice(6)));
  const mine = progress(a.text).filter((p) => p.model === 'alice-big');
  assert.ok(mine.length >= 1, a.text);
  const last = mine[mine.length - 1];
  assert.deepEqual([last.state, last.version, last.done, last.total], ['done', 'alice-big@1', size, size]);
  assert.ok(!/id: /.test(a.text.split('\n\n').filter((e) => e.includes('ingest.progress')).join('')), 'progress events carry no id');
  assert.deepEqual(progress(b.text), []);  // bob does not learn of alice's upload
  assert.ok(!b.text.includes('alice-big'), b.text);
});

test('a Reader gets no visibility control, not even on a model of its owner identity', async () => {
  const reader = mint({ sub: USER, oid: USER, name: 'Alice', roles: ['Reader'] });
  await page.goto(`${base}/#/`);
  await page.evaluate((t) => sessionStorage.setItem('hart.token', t), reader);
  await page.goto(`${base}/#/m/alice-ft`);
  await page.reload();
  await page.waitForSelector('.signin button:has-text("Sign out")');
  assert.match(await page.textContent('.signin'), /\(Reader\)/);
  await page.waitForSelector('#model-visibility');
  await page.waitForTimeout(500);  // /auth/me has answered
  assert.equal(await page.locator('#visibility-select').count(), 0);
  const put = await fetch(`${base}/api/models/alice-ft/visibility`, { method: 'PUT',
    headers: { authorization: `Bearer ${reader}`, 'content-type': 'application/json' }, body: JSON.stringify({ visibility: 'public' }) });
  assert.equal(put.status, 403);  // and the server agrees
});
