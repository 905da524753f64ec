// Sign-in through the provider when the server runs with auth (GET
// /auth/config says enabled): the authorization code flow with PKCE, run by
// the SPA (pkce.ts). The access token lives in sessionStorage (this tab
// only) and goes on every API call as a bearer token; the API decides what
// this person may see. The provider's discovery and token endpoints are on
// another origin, so the server must list that origin in the UI's CSP
// connect-src (ServiceOptions::ui_connect_src). With sign-in off nothing is
// shown and the API answers as the local caller.
//
// The access token is refreshed before it expires (shape.ts refreshDelay:
// 30 s before, or at 80 % of a short lifetime; the expiry from the token
// response's expires_in, else the JWT's exp): with the refresh_token grant
// when the provider gave a refresh token, else by going through the
// provider's sign-in again (which returns at once while its session lasts),
// back to the same page.
import { h, clear } from "./dom";
import { setToken, api } from "./api";
import { ownerLabel, refreshDelay, jwtExpiry } from "./shape";
import { AuthConfig, authorizeUrl, challengeS256, parseCallback, randomToken, tokenRequestBody, refreshRequestBody } from "./pkce";

const K = { verifier: "hart.pkce.verifier", state: "hart.pkce.state", token: "hart.token",
  refresh: "hart.refresh", expires: "hart.expires", back: "hart.back" };
const redirectUri = () => `${location.origin}/`;

async function discover(cfg: AuthConfig) {
  const url = cfg.discovery || `${cfg.issuer!.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const r = await fetch(url);
  if (!r.ok) throw new Error(`the provider's discovery document (${url}) answered ${r.status}`);
  return r.json() as Promise<{ authorization_endpoint: string; token_endpoint: string }>;
}

async function start(cfg: AuthConfig) {
  const d = await discover(cfg);
  const verifier = randomToken(), state = randomToken(16);
  sessionStorage.setItem(K.verifier, verifier);
  sessionStorage.setItem(K.state, state);
  sessionStorage.setItem(K.back, location.hash);
  location.assign(authorizeUrl(d.authorization_endpoint, cfg, redirectUri(), await challengeS256(verifier), state));
}

async function finish(cfg: AuthConfig, code: string) {
  const d = await discover(cfg);
  const r = await fetch(d.token_endpoint, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: tokenRequestBody(code, sessionStorage.getItem(K.verifier) ?? "", redirectUri(), cfg.client_id ?? "") });
  const j = await r.json().catch(() => ({}));
  if (!r.ok || !j.access_token) throw new Error(`the provider refused the sign-in: ${j.error_description ?? j.error ?? r.status}`);
  keep(j);
}

// Saves a token response: the access token, the refresh token if any, when
// the access token expires.
function keep(j: { access_token: string; refresh_token?: string; expires_in?: number }) {
  sessionStorage.setItem(K.token, j.access_token);
  if (j.refresh_token) sessionStorage.setItem(K.refresh, j.refresh_token);
  const exp = typeof j.expires_in === "number" ? Date.now() + j.expires_in * 1000 : jwtExpiry(j.access_token);
  if (exp !== null) sessionStorage.setItem(K.expires, String(exp)); else sessionStorage.removeItem(K.expires);
  setToken(j.access_token);
}

// The refresh_token grant; throws when the provider refuses it.
async function refreshNow(cfg: AuthConfig) {
  const d = await discover(cfg);
  const r = await fetch(d.token_endpoint, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
    body: refreshRequestBody(sessionStorage.getItem(K.refresh) ?? "", cfg.client_id ?? "") });
  const j = await r.json().catch(() => ({}));
  if (!r.ok || !j.access_token) throw new Error(`${j.error_description ?? j.error ?? r.status}`);
  keep(j);
}

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
function planRefresh(cfg: AuthConfig, onFail: (msg: string) => void) {
  clearTimeout(refreshTimer);
  const exp = sessionStorage.getItem(K.expires);
  const delay = refreshDelay(exp === null ? null : Number(exp), Date.now());
  if (delay === null) return;
  refreshTimer = setTimeout(async () => {
    if (!sessionStorage.getItem(K.refresh)) { start(cfg).catch((e) => onFail((e as Error).message)); return; }  // sign in again
    try {
      await refreshNow(cfg);
      planRefresh(cfg, onFail);
    } catch (e) {
      // The refresh token is spent or revoked: through the provider again.
      sessionStorage.removeItem(K.refresh);
      onFail(`the token could not be refreshed (${(e as Error).message}); signing in again`);
      start(cfg).catch((x) => onFail((x as Error).message));
    }
  }, delay);
}

export function signInBar(): HTMLElement {
  const bar = h("span", { class: "signin" });
  const saved = sessionStorage.getItem(K.token);
  if (saved) setToken(saved);
  (async () => {
    const r = await fetch("/auth/config").catch(() => null);
    if (!r || !r.ok) return;
    const cfg: AuthConfig = await r.json().catch(() => ({ enabled: false }));
    if (!cfg.enabled) return;
    const show = (...c: (Node | string)[]) => { clear(bar); bar.append(...c); };
    const button = h("button", { type: "button", onclick: () => start(cfg).catch((e) => show(button, h("span", { class: "error" }, String(e.message)))) }, "Sign in");
    const cb = parseCallback(location.search, sessionStorage.getItem(K.state));
    if (cb.kind !== "none") {
      history.replaceState(null, "", location.pathname + location.hash);
      sessionStorage.removeItem(K.state);
      if (cb.kind === "error") { show(button, h("span", { class: "error" }, cb.message)); return; }
      try { await finish(cfg, cb.code); } catch (e) { show(button, h("span", { class: "error" }, (e as Error).message)); return; }
      setToken(sessionStorage.getItem(K.token));
      const back = sessionStorage.getItem(K.back);
      sessionStorage.removeItem(K.back);
      if (back && back !== location.hash) location.hash = back;
      else window.dispatchEvent(new HashChangeEvent("hashchange"));
    }
    if (!sessionStorage.getItem(K.token)) { show(button); return; }
    // A tab reopened after its token ended: refresh before asking who we are.
    const exp = Number(sessionStorage.getItem(K.expires) ?? "NaN");
    if (Number.isFinite(exp) && exp <= Date.now() + 1000 && sessionStorage.getItem(K.refresh)) {
      const ok = await refreshNow(cfg).then(() => true, () => { sessionStorage.removeItem(K.refresh); return false; });
      if (ok) window.dispatchEvent(new HashChangeEvent("hashchange"));  // the page asked with the dead token
    }
    planRefresh(cfg, (msg) => bar.appendChild(h("span", { class: "muted refresh-note" }, ` ${msg}`)));
    try {
      const me = await api("/auth/me");
      const who = me.actor || me.owner;
      show(h("span", { class: "muted owner", title: who }, `${ownerLabel(who)} (${me.role}) `), h("button", { type: "button", onclick: () => {
        clearTimeout(refreshTimer);
        for (const k of [K.token, K.refresh, K.expires]) sessionStorage.removeItem(k);
        setToken(null); location.reload();
      } }, "Sign out"));
    } catch {
      clearTimeout(refreshTimer);
      for (const k of [K.token, K.refresh, K.expires]) sessionStorage.removeItem(k);
      setToken(null);
      show(button, h("span", { class: "muted" }, " signed out (the token expired)"));
    }
  })();
  return bar;
}
