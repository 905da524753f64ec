// Compare two versions: which tensors changed and by how much (norms of the
// difference, computed on the server from the stored bytes), shown on b's
// graph and treemap with what is shared (stored once) highlighted.
import { api, post } from "../api";
import { h, clear, errorBox, loading, enc } from "../dom";
import { formatBytes, formatNumber, compareStatesOn, joinNorms, changeLevel, changeLevelLabels, TensorState } from "../shape";
import { virtualTable } from "../table";
import { graphView } from "../graph";
import { treemapView } from "../treemap";
import type { Route } from "../main";

export async function comparePage(root: HTMLElement, r: Route) {
  const a = r.query.get("a") ?? "", b = r.query.get("b") ?? "";
  const refs = h("datalist", { id: "version-refs" });
  const ia = h("input", { id: "cmp-a", list: "version-refs", value: a, placeholder: "model@1", "aria-label": "Version a" }) as HTMLInputElement;
  const ib = h("input", { id: "cmp-b", list: "version-refs", value: b, placeholder: "model@2", "aria-label": "Version b" }) as HTMLInputElement;
  const form = h("form", { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); location.hash = `#/compare?a=${enc(ia.value.trim())}&b=${enc(ib.value.trim())}`; } },
    h("label", {}, "a ", ia), h("label", {}, "b ", ib), h("button", { type: "submit" }, "Compare"), refs);
  root.append(h("h1", {}, "Compare versions"), form);
  post("/api/sql", { sql: "SELECT ref FROM versions ORDER BY model, number", max_rows: 5000 })
    .then((x) => { for (const row of x.rows) refs.appendChild(h("option", { value: row.ref })); }).catch(() => {});
  if (!a || !b) { root.appendChild(h("p", { class: "muted" }, "Pick two versions (a fine-tune and its parent, say).")); return; }
  const out = h("div");
  root.appendChild(out);
  out.appendChild(loading(`${a} vs ${b}`));
  const [diff, showB, comp] = await Promise.all([
    api(`/api/diff?a=${enc(a)}&b=${enc(b)}`),
    api(`/api/versions/${enc(b)}`),
    api(`/api/versions/${enc(b)}/components?max_rows=200000`),
  ]);
  clear(out);
  const states = compareStatesOn(diff.rows, showB.tensors.map((t: any) => t.name), "b");
  const sharedN = [...states.values()].filter((x) => x === "shared").length;
  const sm = diff.summary;
  out.appendChild(h("p", { class: "summary", id: "compare-summary" },
    `${diff.a} → ${diff.b}: ${sm.changed} changed, ${sm.added} added, ${sm.removed} removed, ${sharedN} shared (stored once); `,
    `${formatBytes(sm.changed_bytes)} changed of ${formatBytes(sm.logical_bytes_b)}`));
  const normsBox = h("div", {}, loading("difference norms"));
  out.appendChild(normsBox);
  const legend = h("p", { class: "legend", id: "compare-legend" }, h("span", { class: "swatch state-changed" }), " changed ", h("span", { class: "swatch state-added" }), " added ",
    h("span", { class: "swatch state-shared" }), " shared (same bytes, stored once)");
  const levelLegend = h("p", { class: "legend", id: "compare-level-legend", hidden: true }, "‖b−a‖/‖a‖: ",
    [1, 2, 3, 4].map((l) => [h("span", { class: `swatch change-${l}` }), ` ${changeLevelLabels[l]} `]));
  legend.append(h("span", { class: "swatch state-removed" }), " removed (on a)");
  const views = h("div", { id: "compare-views" });
  // Either version can be drawn: b shows what changed and was added, a what
  // changed and was removed; both shade changed tensors by their norm.
  const side = h("select", { id: "compare-side", "aria-label": "Draw on" },
    h("option", { value: "b" }, `b: ${diff.b}`), h("option", { value: "a" }, `a: ${diff.a}`)) as HTMLSelectElement;
  out.append(h("h2", {}, "Where it changed"),
    h("div", { class: "toolbar" }, h("label", {}, "Draw on ", side), sm.removed ? h("span", { class: "muted" }, `${sm.removed} tensors of ${diff.a} are not in ${diff.b}`) : ""),
    legend, levelLegend, views);
  const drawn: Record<string, { comp: any; states: Map<string, TensorState> }> = {
    b: { comp, states: compareStatesOn(diff.rows, showB.tensors.map((t: any) => t.name), "b") },
  };
  let level: Map<string, number> | undefined;
  // Drawn once with the states, again with each tensor's change level when
  // the norms are in (the graph and the treemap both show them).
  const draw = async () => {
    const which = side.value as "a" | "b";
    const ref = which === "a" ? a : b;
    if (!drawn[which]) {
      clear(views);
      views.appendChild(loading(ref));
      const [show, c] = await Promise.all([api(`/api/versions/${enc(ref)}`), api(`/api/versions/${enc(ref)}/components?max_rows=200000`)]);
      drawn[which] = { comp: c, states: compareStatesOn(diff.rows, show.tensors.map((t: any) => t.name), which) };
    }
    const { comp: cc, states: st } = drawn[which];
    clear(views);
    views.dataset.side = which;
    views.append(
      graphView(cc.nodes, cc.edges, { state: st, level, onTensor: (n) => { location.hash = `#/tensor/${enc(ref)}/${enc(n)}`; } }),
      treemapView(cc.nodes, { cellClass: (names) => {
        const sts = names.map((n) => st.get(n));
        const lv = Math.max(0, ...names.map((n) => level?.get(n) ?? 0));
        if (sts.some((x) => x === "changed" || x === "added")) return `state-changed${lv ? " change-" + lv : ""}`;
        if (sts.some((x) => x === "removed")) return "state-removed";
        if (sts.every((x) => x === "shared")) return "state-shared";
        return "";
      } }));
  };
  side.addEventListener("change", () => { draw().catch((e) => { clear(views); views.appendChild(errorBox(e, "draw")); }); });
  await draw();
  try {
    const norms = await post("/api/diff/norms", { a, b }, 120000);
    clear(normsBox);
    const rows = joinNorms(diff.rows, norms.rows);
    const lv = new Map<string, number>();
    for (const x of rows) if (x.norm?.computed) lv.set(x.name, changeLevel(x.norm.rel_diff));
    if (lv.size) { level = lv; await draw(); levelLegend.hidden = false; }
    normsBox.appendChild(virtualTable<any>(rows, [
      { title: "Tensor", value: (x) => x.name, render: (x) => h("a", { href: `#/tensor/${enc(b)}/${enc(x.name)}`, class: `state-text-${x.kind}` }, x.name), width: "minmax(12em, 3fr)" },
      { title: "Change", value: (x) => x.kind },
      { title: "‖b−a‖", value: (x) => x.norm?.l2_diff, render: (x) => formatNumber(x.norm?.l2_diff), cls: "num" },
      { title: "‖b−a‖/‖a‖", value: (x) => x.norm?.rel_diff, render: (x) => formatNumber(x.norm?.rel_diff), cls: "num" },
      { title: "max |b−a|", value: (x) => x.norm?.max_abs_diff, render: (x) => formatNumber(x.norm?.max_abs_diff), cls: "num" },
      { title: "Values changed", value: (x) => x.norm?.changed_values, render: (x) => x.norm?.computed ? `${x.norm.changed_values} / ${x.norm.count}` : (x.norm?.reason ?? "—") },
      { title: "Bytes changed", value: (x) => x.changed_bytes, render: (x) => formatBytes(x.changed_bytes), cls: "num" },
    ], { label: "Changed tensors", height: Math.min(400, 60 + rows.length * 28), rowClass: (x) => `row-${x.kind}` }).el);
  } catch (e) {
    clear(normsBox);
    normsBox.appendChild(errorBox(e, "difference norms"));
  }
}
