// Sign-in. When the server runs with auth it answers GET /auth/config
// (issue 14) with the provider's public values; the SPA would then run the
// authorization code flow with PKCE. GAP: the auth branch had not landed
// when this was written, so the button only reports that sign-in through
// the UI is not implemented; with no /auth/config (404) nothing is shown and
// the API answers as the local caller.
import { h } from "./dom";

export function signInBar(): HTMLElement {
  const bar = h("span", { class: "signin" });
  fetch("/auth/config").then(async (r) => {
    if (!r.ok) return;
    const cfg = await r.json().catch(() => null);
    if (!cfg) return;
    bar.appendChild(h("button", { type: "button", onclick: () => {
      bar.appendChild(h("span", { class: "error" }, " Sign-in from the web UI is not implemented yet (issue 16 gap); use a bearer token with the API."));
    } }, "Sign in"));
  }).catch(() => {});
  return bar;
}
