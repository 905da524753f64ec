// The pure parts of the authorization code flow with PKCE (RFC 7636): the
// verifier and its S256 challenge, the authorize URL, the callback check and
// the token request body. No DOM, no storage; tests/ui/shape_test.mjs runs
// them under node (which has the same Web Crypto).

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// 32 random bytes -> 43 characters, the length RFC 7636 recommends.
export function randomToken(n = 32): string {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return base64url(b);
}

export async function challengeS256(verifier: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(d));
}

export interface AuthConfig {
  enabled: boolean; issuer?: string; discovery?: string; client_id?: string | null; scopes?: string[];
}

export function authorizeUrl(endpoint: string, cfg: AuthConfig, redirectUri: string, challenge: string, state: string): string {
  const u = new URL(endpoint);
  u.searchParams.set("response_type", "code");
  u.searchParams.set("client_id", cfg.client_id ?? "");
  u.searchParams.set("redirect_uri", redirectUri);
  u.searchParams.set("scope", (cfg.scopes ?? ["openid"]).join(" "));
  u.searchParams.set("code_challenge", challenge);
  u.searchParams.set("code_challenge_method", "S256");
  u.searchParams.set("state", state);
  return u.toString();
}

// The provider's answer on the redirect: a code for our state, an error it
// reports, or nothing to do (not a callback).
export function parseCallback(search: string, expectedState: string | null):
    { kind: "none" } | { kind: "code"; code: string } | { kind: "error"; message: string } {
  const q = new URLSearchParams(search);
  if (q.has("error")) return { kind: "error", message: `${q.get("error")}${q.get("error_description") ? ": " + q.get("error_description") : ""}` };
  if (!q.has("code")) return { kind: "none" };
  if (!expectedState || q.get("state") !== expectedState) return { kind: "error", message: "sign-in answer with an unknown state (started elsewhere or replayed); sign in again" };
  return { kind: "code", code: q.get("code")! };
}

export function tokenRequestBody(code: string, verifier: string, redirectUri: string, clientId: string): string {
  return new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: verifier, redirect_uri: redirectUri, client_id: clientId }).toString();
}

// The refresh_token grant (RFC 6749 section 6) for a public client.
export function refreshRequestBody(refreshToken: string, clientId: string): string {
  return new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId }).toString();
}
