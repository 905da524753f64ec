// The single-page app: a header with the pages, a hash router (#/m/name,
// #/compare?a=..&b=..), and the live event feed shared by every page. Each
// page renders into the main element; a page that throws shows its error
// in place, so a failing API never leaves a blank screen.
import "./style.css";
import { h, clear, errorBox } from "./dom";
import { modelsPage } from "./pages/models";
import { modelPage } from "./pages/model";
import { comparePage } from "./pages/compare";
import { tensorPage } from "./pages/tensor";
import { lineagePage } from "./pages/lineage";
import { sqlPage } from "./pages/sql";
import { planPage } from "./pages/plan";
import { chatPage } from "./pages/chat";
import { livePage, startLive } from "./pages/live";
import { signInBar } from "./auth";
import { ApiError } from "./api";

export interface Route { path: string[]; query: URLSearchParams }
type Page = (root: HTMLElement, r: Route) => Promise<void> | void;

const pages: [string, string, Page][] = [
  ["", "Models", modelsPage],
  ["lineage", "Lineage", lineagePage],
  ["compare", "Compare", comparePage],
  ["sql", "SQL", sqlPage],
  ["plan", "Plan", planPage],
  ["chat", "Chat", chatPage],
  ["live", "Live", livePage],
];
const hidden: [string, Page][] = [["m", modelPage], ["tensor", tensorPage]];

function parse(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [p, q] = raw.split("?");
  return { path: (p ?? "").split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q ?? "") };
}

const main = h("main", { id: "main", tabindex: "-1" });
const nav = h("nav", { "aria-label": "Pages" });
const liveBadge = h("span", { class: "live-badge", id: "live-badge", title: "Live updates from the store's events" }, "○ live");
document.getElementById("app")!.append(
  h("header", {}, h("a", { class: "brand", href: "#/" }, "Hartonomous"), nav, liveBadge, signInBar()),
  h("div", { id: "toasts", "aria-live": "polite" }),
  main);

let generation = 0;
async function render() {
  const r = parse();
  const my = ++generation;
  const key = r.path[0] ?? "";
  clear(nav);
  for (const [k, title] of pages) {
    nav.appendChild(h("a", { href: `#/${k}`, "aria-current": k === key ? "page" : false }, title));
  }
  const page = pages.find(([k]) => k === key)?.[2] ?? hidden.find(([k]) => k === key)?.[1];
  clear(main);
  if (!page) { main.appendChild(errorBox(`no page "${key}"`)); return; }
  try {
    await page(main, r);
  } catch (e) {
    if (my !== generation) return;
    // With sign-in on, the API answers 401 until the person signs in (the
    // header's button); say so rather than show a bare error.
    if (e instanceof ApiError && e.status === 401) main.appendChild(h("p", { class: "notice signin-needed" }, "Sign in to see this page."));
    main.appendChild(errorBox(e));
  }
}

window.addEventListener("hashchange", () => { render(); main.focus({ preventScroll: true }); });
startLive(liveBadge);
render();
