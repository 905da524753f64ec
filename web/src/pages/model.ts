// A model: its versions, and for one version the component tree, the
// dataflow graph, the treemap of bytes, the tensor table (stats on demand)
// and the model card / metadata. #/m/NAME[/N][?tab=graph]
import { api } from "../api";
import { h, clear, errorBox, loading, enc } from "../dom";
import { formatBytes, formatNumber, formatTime, childrenOf, ownerLabel, mayChangeVisibility, Node, Edge } from "../shape";
import { virtualTable } from "../table";
import { graphView } from "../graph";
import { treemapView } from "../treemap";
import type { Route } from "../main";

const tabs = ["versions", "structure", "graph", "treemap", "tensors", "card"] as const;
type Tab = typeof tabs[number];

export async function modelPage(root: HTMLElement, r: Route) {
  const model = r.path[1];
  if (!model) { root.appendChild(errorBox("no model named in the address")); return; }
  const wait = loading(`model ${model}`);
  root.append(h("h1", {}, "Model ", h("span", { class: "model-name" }, model)), wait);
  const versions: any[] = await api(`/api/models/${enc(model)}`);
  wait.remove();
  const number = r.path[2] ? Number(r.path[2]) : Math.max(...versions.map((v) => v.number));
  const ref = `${model}@${number}`;
  const tab = (tabs as readonly string[]).includes(r.query.get("tab") ?? "") ? r.query.get("tab") as Tab : "versions";
  const v = versions.find((x) => x.number === number);
  root.appendChild(h("div", { class: "subhead" },
    h("label", {}, "Version ", h("select", { "aria-label": "Version", onchange: (e: Event) => { location.hash = `#/m/${enc(model)}/${(e.target as HTMLSelectElement).value}?tab=${tab}`; } },
      versions.map((x) => h("option", { value: x.number, selected: x.number === number }, `@${x.number}`)))),
    v ? ` ${v.format ?? ""} · ${v.tensors} tensors · ${formatBytes(v.logical_bytes)} · license ${v.license || "—"} · ${formatTime(v.created_at)} UTC` : "",
    v?.owner ? [" · owner ", h("span", { class: "owner", id: "model-owner", title: v.owner }, ownerLabel(v.owner)),
      " · ", visibilityControl(model, v.owner, v.visibility)] : "",
    v?.parent ? [" · parent ", h("a", { href: `#/m/${enc(v.parent.split("@")[0])}/${v.parent.split("@")[1]}` }, v.parent),
      " · ", h("a", { href: `#/compare?a=${enc(v.parent)}&b=${enc(ref)}` }, "compare with parent")] : "",
    " · ", h("a", { href: `#/plan?version=${enc(ref)}` }, "plan a partial load"),
    " · ", h("a", { href: `/api/versions/${enc(ref)}/download` }, "download")));
  root.appendChild(h("div", { class: "tabs", role: "tablist" }, tabs.map((t) =>
    h("a", { role: "tab", href: `#/m/${enc(model)}/${number}?tab=${t}`, "aria-selected": t === tab ? "true" : "false", class: t === tab ? "active" : "" }, t[0].toUpperCase() + t.slice(1)))));
  const body = h("section", { class: "tab-body", role: "tabpanel" });
  root.appendChild(body);
  body.appendChild(loading(tab));
  try {
    await renderTab(body, tab, ref, versions);
  } catch (e) {
    clear(body);
    body.appendChild(errorBox(e, tab));
  }
}

// The model's visibility, and for its owner or an Admin a control that
// changes it (PUT /api/models/{model}/visibility, as `hart visibility`).
// Whether to offer it is asked of /auth/me; the server decides anyway.
function visibilityControl(model: string, owner: string, visibility: string | undefined): HTMLElement {
  const shown = h("span", { class: "visibility", id: "model-visibility" }, visibility ?? "—");
  const box = h("span", { class: "visibility-box" }, "visibility ", shown);
  api("/auth/me").then((me) => {
    if (!mayChangeVisibility(me, owner)) return;
    const sel = h("select", { id: "visibility-select", "aria-label": "Visibility" },
      ["private", "tenant", "public"].map((x) => h("option", { value: x, selected: x === visibility }, x))) as HTMLSelectElement;
    const status = h("span", { class: "muted", id: "visibility-status", role: "status" });
    const set = h("button", { type: "button", id: "visibility-set", onclick: async () => {
      status.textContent = "saving…";
      try {
        const r = await api(`/api/models/${enc(model)}/visibility`, { method: "PUT", body: JSON.stringify({ visibility: sel.value }) });
        shown.textContent = r.visibility ?? sel.value;
        status.textContent = `now ${shown.textContent}`;
      } catch (e) { status.textContent = ""; status.appendChild(errorBox(e, "visibility")); }
    } }, "Set");
    box.append(" ", h("label", { class: "visibility-edit" }, "change to ", sel), " ", set, " ", status);
  }).catch(() => { /* no /auth/me: no control */ });
  return box;
}

async function renderTab(body: HTMLElement, tab: Tab, ref: string, versions: any[]) {
  const toTensor = (name: string) => { location.hash = `#/tensor/${enc(ref)}/${enc(name)}`; };
  if (tab === "versions") {
    clear(body);
    const t = virtualTable<any>(versions, [
      { title: "Version", value: (x) => x.number, render: (x) => h("a", { href: `#/m/${enc(x.model)}/${x.number}?tab=tensors` }, x.version), cls: "num" },
      { title: "Parent", value: (x) => x.parent, render: (x) => x.parent ?? "—" },
      { title: "Format", value: (x) => x.format },
      { title: "Tensors", value: (x) => x.tensors, cls: "num" },
      { title: "Bytes", value: (x) => x.logical_bytes, render: (x) => formatBytes(x.logical_bytes), cls: "num" },
      { title: "Created (UTC)", value: (x) => x.created_at, render: (x) => formatTime(x.created_at) },
      { title: "", value: () => "", render: (x) => x.parent ? h("a", { href: `#/compare?a=${enc(x.parent)}&b=${enc(x.version)}` }, "diff") : "" },
    ], { label: "Versions", height: 360 });
    body.appendChild(t.el);
    return;
  }
  if (tab === "tensors") {
    const show = await api(`/api/versions/${enc(ref)}`);
    clear(body);
    let rows: any[] = show.tensors;
    const cols = [
      { title: "Tensor", value: (x: any) => x.name, render: (x: any) => h("a", { href: `#/tensor/${enc(ref)}/${enc(x.name)}`, class: "tensor-link" }, x.name), width: "minmax(12em, 3fr)" },
      { title: "Dtype", value: (x: any) => x.dtype },
      { title: "Shape", value: (x: any) => x.shape.join("×"), render: (x: any) => `[${x.shape.join(", ")}]` },
      { title: "Bytes", value: (x: any) => x.nbytes, render: (x: any) => formatBytes(x.nbytes), cls: "num" },
      { title: "Shared with", value: (x: any) => x.shared_with.length, render: (x: any) => x.shared_with.join(", ") || "—" },
      { title: "Mean", value: (x: any) => x.stats?.mean, render: (x: any) => formatNumber(x.stats?.mean), cls: "num" },
      { title: "Std", value: (x: any) => x.stats?.std, render: (x: any) => formatNumber(x.stats?.std), cls: "num" },
      { title: "Min", value: (x: any) => x.stats?.min, render: (x: any) => formatNumber(x.stats?.min), cls: "num" },
      { title: "Max", value: (x: any) => x.stats?.max, render: (x: any) => formatNumber(x.stats?.max), cls: "num" },
    ];
    const t = virtualTable<any>(rows, cols, { label: "Tensors", height: 480 });
    const filter = h("input", { type: "search", placeholder: "Filter tensors", "aria-label": "Filter tensors" }) as HTMLInputElement;
    filter.addEventListener("input", () => t.set(rows.filter((x) => x.name.toLowerCase().includes(filter.value.toLowerCase()))));
    const status = h("span", { class: "muted" });
    const statsBtn = h("button", { type: "button", onclick: async () => {
      status.textContent = "computing stats on the server…";
      try {
        const withStats = await api(`/api/versions/${enc(ref)}/tensors?stats=true`, { timeoutMs: 120000 });
        rows = withStats;
        t.set(rows.filter((x) => x.name.toLowerCase().includes(filter.value.toLowerCase())));
        status.textContent = withStats.some((x: any) => x.stats_skipped) ? "stats for the first 256 MiB of tensors" : "stats computed";
      } catch (e) { status.textContent = ""; status.appendChild(errorBox(e, "stats")); }
    } }, "Compute stats");
    body.append(h("div", { class: "toolbar" }, filter, statsBtn, status), t.el);
    return;
  }
  if (tab === "card") {
    const show = await api(`/api/versions/${enc(ref)}`);
    clear(body);
    const md = show.version.metadata ?? {};
    const card = typeof md.card === "string" ? md.card : typeof md.readme === "string" ? md.readme : null;
    body.append(
      card ? h("section", {}, h("h2", {}, "Model card"), h("pre", { class: "card" }, card)) : h("p", { class: "muted" }, "No model card in this version's metadata."),
      h("h2", {}, "Files"),
      h("ul", {}, show.files.map((f: any) => h("li", {}, `${f.name} — ${formatBytes(f.size)}`))),
      h("h2", {}, "Metadata"),
      h("pre", { class: "metadata" }, JSON.stringify(md, null, 2)));
    return;
  }
  const comp = await api(`/api/versions/${enc(ref)}/components?max_rows=200000`);
  clear(body);
  const nodes: Node[] = comp.nodes, edges: Edge[] = comp.edges;
  if (comp.truncated) body.appendChild(h("p", { class: "notice" }, "The structure was cut at 200,000 rows; what is shown is partial."));
  if (tab === "graph") body.appendChild(graphView(nodes, edges, { onTensor: toTensor }));
  else if (tab === "treemap") body.appendChild(treemapView(nodes));
  else body.appendChild(treeView(nodes, comp.root, ref));
}

// The component tree as nested <details>: model, blocks, tensors with role,
// layer, dtype, shape and bytes. Big subtrees open lazily.
function treeView(nodes: Node[], root: number, ref: string): HTMLElement {
  const kids = childrenOf(nodes);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const item = (n: Node): HTMLElement => {
    const label = [n.kind === "tensor" ? h("a", { href: `#/tensor/${enc(ref)}/${enc(n.name)}` }, n.name) : h("strong", {}, n.name),
      h("span", { class: "muted" }, ` ${n.kind}${n.role ? " · " + n.role : ""}${n.layer !== null ? " · layer " + n.layer : ""}${n.dtype ? " · " + n.dtype : ""}${n.shape ? " [" + n.shape.join(", ") + "]" : ""} · ${formatBytes(n.nbytes)}`)];
    const ch = kids.get(n.id) ?? [];
    if (!ch.length) return h("li", { class: "leaf" }, label);
    const d = h("details", { open: n.id === root }, h("summary", {}, label, h("span", { class: "muted" }, ` (${ch.length})`)));
    let filled = false;
    const fill = () => { if (filled) return; filled = true; d.appendChild(h("ul", {}, ch.map(item))); };
    if (n.id === root) fill();
    d.addEventListener("toggle", fill);
    return h("li", {}, d);
  };
  const r = byId.get(root);
  if (!r) return h("div", { class: "notice" }, "This version has no structure.");
  if (!(kids.get(root) ?? []).length) return h("div", { class: "notice" }, "This version has no structure: the model has no components.");
  return h("ul", { class: "tree" }, item(r));
}
