// Lineage: every version of every model as a node (models as rows, version
// numbers as columns), an arrow from each parent to its child, fine-tunes of
// another model included. Clicking a version lists its most similar versions
// (the store's fingerprint index) with their scores.
import { api, post } from "../api";
import { h, s, clear, errorBox, loading, enc } from "../dom";
import { lineageLayout, formatNumber, formatTime, VersionRow, DerivationRow } from "../shape";
import type { Route } from "../main";

export async function lineagePage(root: HTMLElement, _r: Route) {
  root.append(h("h1", {}, "Lineage"));
  const wait = loading("versions");
  root.appendChild(wait);
  const res = await post("/api/sql", { sql: "SELECT ref, model, number, parent, created_at FROM versions ORDER BY model, number", max_rows: 100000 });
  wait.remove();
  const versions: VersionRow[] = res.rows;
  if (!versions.length) { root.appendChild(h("p", { class: "empty" }, "No versions yet.")); return; }
  // Derived versions (quantize, merge, compose, merge-lora) link to their
  // inputs; a store without the workshop's view just has none.
  let derived: DerivationRow[] = [];
  try {
    derived = (await post("/api/sql", { sql: "SELECT ref, method, inputs FROM derivations", max_rows: 100000 })).rows;
  } catch { derived = []; }
  const L = lineageLayout(versions, derived);
  const side = h("aside", { class: "panel", id: "similar" }, h("p", { class: "muted" }, "Pick a version to see its nearest versions."));
  const svg = s("svg", { class: "lineage", viewBox: `0 0 ${L.width} ${L.height}`, role: "group", "aria-label": "Version lineage" });
  svg.style.width = `${L.width}px`;
  svg.appendChild(s("defs", {}, s("marker", { id: "arrow2", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
  for (const e of L.edges) {
    const a = L.pos.get(e.from)!, b = L.pos.get(e.to)!;
    const cross = e.from.split("@")[0] !== e.to.split("@")[0];
    const path = s("path", { d: `M ${a.x + 80} ${a.y + 14} C ${a.x + 100} ${a.y + 14}, ${b.x - 20} ${b.y + 14}, ${b.x} ${b.y + 14}`, class: `edge ${cross ? "edge-cross" : ""} ${e.method ? "edge-derived" : ""}`, "marker-end": "url(#arrow2)", "data-method": e.method ?? "" });
    if (e.method) path.appendChild(s("title", {}, `${e.to} ${e.method} from ${e.from}`));
    svg.appendChild(path);
  }
  for (const lane of L.lanes) svg.appendChild(s("text", { x: 4, y: lane.y - 8, class: "lane" }, lane.model));
  for (const v of versions) {
    const p = L.pos.get(v.ref)!;
    const node = s("g", { class: "vnode", transform: `translate(${p.x},${p.y})`, tabindex: "0", role: "button", "data-ref": v.ref },
      s("rect", { width: 80, height: 28, rx: 5 }), s("text", { x: 6, y: 18 }, `@${v.number}`), s("title", {}, `${v.ref}${v.parent ? " ← " + v.parent : ""} · ${formatTime(v.created_at)} UTC`));
    const act = () => showSimilar(side, v.ref);
    node.addEventListener("click", act);
    node.addEventListener("keydown", (e) => { if ((e as KeyboardEvent).key === "Enter") act(); });
    svg.appendChild(node);
  }
  root.append(h("p", { class: "muted" }, `${versions.length} versions of ${L.models.length} models; ${L.edges.filter((e) => !e.method).length} parent links, ${L.edges.filter((e) => e.method).length} derivation links.`),
    h("div", { class: "lineage-wrap" }, h("div", { class: "scroll-x" }, svg), side));
}

async function showSimilar(side: HTMLElement, ref: string) {
  clear(side);
  const [model, n] = ref.split("@");
  side.append(h("h2", {}, h("a", { href: `#/m/${enc(model)}/${n}` }, ref)), loading("similar versions"));
  try {
    const sim = await api(`/api/similar?target=${enc(ref)}&k=8`);
    side.lastChild!.remove();
    const rows: { version: string; similarity: number; matched_tensors: number }[] = Array.isArray(sim) ? sim : [];
    if (!rows.length) { side.appendChild(h("p", { class: "muted" }, "No similar versions.")); return; }
    side.appendChild(h("ol", { class: "similar-list" }, rows.map((m) => h("li", {}, `${m.version} `,
      h("span", { class: "muted" }, `similarity ${formatNumber(m.similarity, 3)} · ${m.matched_tensors} tensors matched`)))));
  } catch (e) {
    side.lastChild!.remove();
    side.appendChild(errorBox(e, "similar"));
  }
}
