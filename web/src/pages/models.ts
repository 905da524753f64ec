// Models: every model with its sizes (logical = sum of its versions' tensor
// bytes; physical = the chunks it holds, stored once), license, owner and
// visibility (from /api/models), latest version and last change; filtered
// as you type.
import { api } from "../api";
import { h, errorBox, loading, enc } from "../dom";
import { modelSummaries, formatBytes, formatTime, ownerLabel, ModelSummary } from "../shape";
import { virtualTable } from "../table";
import type { Route } from "../main";

export async function modelsPage(root: HTMLElement, r: Route) {
  const search = h("input", { type: "search", id: "model-search", placeholder: "Search models, licenses, owners", "aria-label": "Search models", value: r.query.get("q") ?? "" }) as HTMLInputElement;
  const wait = loading("models");
  root.append(h("h1", {}, "Models"), search, wait);
  // Physical sizes come from /api/ui/model-sizes: each readable model's own
  // unique chunk bytes, for every role (it says nothing of other owners'
  // models; the whole-store /api/stats stays Admin-only). Without them the
  // column shows a dash.
  const [models, sizes] = await Promise.all([
    api("/api/models"),
    api("/api/ui/model-sizes").catch(() => []),
  ]);
  const stats = { models: Array.isArray(sizes) ? sizes : [] };
  wait.remove();
  if (!Array.isArray(models)) { root.appendChild(errorBox("the server's model list is not a list")); return; }
  if (models.length === 0) {
    root.appendChild(h("p", { class: "empty" }, "The store holds no models yet. Ingest one with `hart ingest FILE` or POST /api/ingest."));
    return;
  }
  const rowsFor = (q: string) => modelSummaries(models, stats.models ?? [], q);
  const t = virtualTable<ModelSummary>(rowsFor(search.value), [
    { title: "Model", value: (m) => m.name, render: (m) => h("a", { href: `#/m/${enc(m.name)}`, class: "model-link" }, m.name), width: "minmax(10em, 2fr)" },
    { title: "Versions", value: (m) => m.versions, cls: "num" },
    { title: "Latest", value: (m) => m.latest, render: (m) => h("a", { href: `#/m/${enc(m.name)}/${m.latest}` }, `@${m.latest}`), cls: "num" },
    { title: "Logical", value: (m) => m.logical_bytes, render: (m) => formatBytes(m.logical_bytes), cls: "num" },
    { title: "Physical", value: (m) => m.physical_bytes, render: (m) => formatBytes(m.physical_bytes), cls: "num" },
    { title: "License", value: (m) => m.license, render: (m) => m.license || "—" },
    { title: "Owner", value: (m) => m.owner, render: (m) => m.owner ? h("span", { class: "owner", title: m.owner }, ownerLabel(m.owner)) : "—" },
    { title: "Visibility", value: (m) => m.visibility, render: (m) => m.visibility || "—" },
    { title: "Last change (UTC)", value: (m) => m.last_change, render: (m) => formatTime(m.last_change) },
  ], { label: "Models", height: 480 });
  search.addEventListener("input", () => t.set(rowsFor(search.value)));
  root.appendChild(t.el);
}
