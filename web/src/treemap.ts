// Where the bytes are: a treemap of layers, each split by role, sized by
// tensor bytes (shape.ts: bytesByLayerRole + squarify). `colour` lets the
// compare page paint each cell by what changed in it.
import { h, s } from "./dom";
import { bytesByLayerRole, squarify, formatBytes, Node } from "./shape";

export function treemapView(nodes: Node[], opts: { width?: number; height?: number; cellClass?: (names: string[]) => string } = {}): HTMLElement {
  const W = opts.width ?? 900, H = opts.height ?? 420;
  const groups = bytesByLayerRole(nodes);
  if (!groups.length) return h("div", { class: "notice" }, "No tensors: nothing to map.");
  const svg = s("svg", { class: "treemap", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Bytes by layer and role" });
  const outer = squarify(groups.map((g) => ({ key: g.key, value: g.value })), 0, 0, W, H);
  for (const o of outer) {
    const grp = groups.find((g) => g.key === o.key)!;
    const inner = squarify(grp.children, o.x + 2, o.y + 14, o.w - 4, o.h - 16);
    svg.appendChild(s("rect", { x: o.x, y: o.y, width: o.w, height: o.h, class: "tm-layer" }, s("title", {}, `${o.key}: ${formatBytes(o.value)}`)));
    if (o.w > 40) svg.appendChild(s("text", { x: o.x + 3, y: o.y + 11, class: "tm-label" }, o.key));
    for (const c of inner) {
      const child = grp.children.find((x) => x.key === c.key)!;
      const cls = opts.cellClass?.(child.names) ?? "";
      svg.appendChild(s("rect", { x: c.x, y: c.y, width: Math.max(c.w, 0), height: Math.max(c.h, 0), class: `tm-cell ${cls}`, "data-role": c.key, "data-layer": o.key },
        s("title", {}, `${o.key} / ${c.key}: ${formatBytes(c.value)} (${child.names.length} tensors)`)));
      if (c.w > 50 && c.h > 14) svg.appendChild(s("text", { x: c.x + 3, y: c.y + 12, class: "tm-cell-label" }, c.key));
    }
  }
  return h("div", { class: "treemap-wrap" }, svg);
}
