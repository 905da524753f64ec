// The dataflow graph of a version as SVG: blocks collapsed to one node until
// clicked, tensors clickable (to the tensor view), zoom with the buttons, the
// wheel or +/-, pan by dragging or the arrow keys. `state` colours tensors
// (compare: changed / added / shared). Layout is shape.ts's layoutGraph.
import { h, s, clear } from "./dom";
import { layoutGraph, Node, Edge, TensorState } from "./shape";

export function graphView(nodes: Node[], edges: Edge[], opts: {
  state?: Map<string, TensorState>; onTensor?: (name: string) => void;
  // compare: how much each tensor changed (shape.ts changeLevel, 1..4).
  level?: Map<string, number>;
}): HTMLElement {
  const blocks = nodes.filter((n) => n.kind === "block");
  const collapsed = new Set(blocks.map((b) => b.id));
  let scale = 1, tx = 0, ty = 0;
  const svg = s("svg", { class: "graph", role: "group", "aria-label": "Dataflow graph", tabindex: "0" }) as SVGSVGElement;
  const g = s("g");
  svg.appendChild(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
  svg.appendChild(g);
  const info = h("span", { class: "graph-info" });
  const apply = () => g.setAttribute("transform", `translate(${tx},${ty}) scale(${scale})`);
  const zoom = (f: number) => { scale = Math.max(0.1, Math.min(4, scale * f)); apply(); };
  const stateOf = (n: { kind: string; name: string; id: number }) => {
    if (!opts.state) return "";
    if (n.kind === "tensor") return opts.state.get(n.name) ?? "";
    // A collapsed block is as changed as any tensor under it.
    const under = nodes.filter((x) => x.kind === "tensor" && isUnder(x.id, n.id));
    const st = under.map((x) => opts.state!.get(x.name));
    if (st.some((x) => x === "changed" || x === "added")) return "changed";
    if (st.some((x) => x === "removed")) return "removed";
    if (st.length && st.every((x) => x === "shared")) return "shared";
    return "";
  };
  // A collapsed block shows the largest change under it.
  const levelOf = (n: { kind: string; name: string; id: number }) => {
    if (!opts.level) return 0;
    if (n.kind === "tensor") return opts.level.get(n.name) ?? 0;
    let m = 0;
    for (const x of nodes) if (x.kind === "tensor" && isUnder(x.id, n.id)) m = Math.max(m, opts.level.get(x.name) ?? 0);
    return m;
  };
  const parent = new Map(nodes.map((n) => [n.id, n.parent]));
  const isUnder = (id: number, anc: number) => {
    for (let p = parent.get(id) ?? null; p !== null; p = parent.get(p) ?? null) if (p === anc) return true;
    return false;
  };
  // Re-collapsing one opened block: a list of the open ones.
  const reclose = h("select", { "aria-label": "Collapse a block", onchange: () => {
    const id = Number(reclose.value);
    if (id) { collapsed.add(id); draw(); }
  } }) as HTMLSelectElement;
  const fillReclose = () => {
    clear(reclose);
    reclose.appendChild(h("option", { value: "" }, "Collapse block…"));
    for (const b of blocks) if (!collapsed.has(b.id)) reclose.appendChild(h("option", { value: b.id }, b.name));
    reclose.disabled = reclose.options.length === 1;
  };
  const draw = () => {
    fillReclose();
    clear(g);
    const L = layoutGraph(nodes, edges, collapsed);
    const pos = new Map(L.nodes.map((n) => [n.id, n]));
    for (const e of L.edges) {
      const a = pos.get(e.src)!, b = pos.get(e.dst)!;
      g.appendChild(s("line", { x1: a.x + 85, y1: a.y + 36, x2: b.x + 85, y2: b.y, class: `edge edge-${e.kind}`, "marker-end": "url(#arrow)" }));
    }
    for (const n of L.nodes) {
      const st = stateOf(n);
      const lv = levelOf(n);
      const label = n.kind === "block" ? `▸ ${n.name} (${n.hidden})` : n.name;
      const node = s("g", { class: `gnode gnode-${n.kind} ${st ? "state-" + st : ""}${lv ? " change-" + lv : ""}`, transform: `translate(${n.x},${n.y})`, tabindex: "0", role: "button",
        "data-name": n.name, "aria-label": n.kind === "block" ? `expand block ${n.name}` : `tensor ${n.name}` },
        s("rect", { width: "170", height: "36", rx: "5" }),
        s("text", { x: "8", y: "15" }, label.length > 26 ? label.slice(0, 25) + "…" : label),
        s("text", { x: "8", y: "30", class: "sub" }, n.role ?? n.kind),
        s("title", {}, n.name));
      const act = () => {
        if (n.kind === "block") { collapsed.delete(n.id); draw(); } else opts.onTensor?.(n.name);
      };
      node.addEventListener("click", act);
      node.addEventListener("keydown", (e) => { if ((e as KeyboardEvent).key === "Enter") act(); });
      g.appendChild(node);
    }
    svg.setAttribute("viewBox", `0 0 ${Math.max(L.width, 300)} ${Math.max(L.height, 120)}`);
    svg.style.height = `${Math.min(Math.max(L.height, 160), 640)}px`;
    info.textContent = `${L.nodes.length} nodes, ${L.edges.length} edges shown`;
  };
  svg.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15); }, { passive: false });
  let drag: { x: number; y: number } | null = null;
  svg.addEventListener("pointerdown", (e) => { if ((e.target as Element).closest(".gnode")) return; drag = { x: e.clientX - tx, y: e.clientY - ty }; });
  svg.addEventListener("pointermove", (e) => { if (drag) { tx = e.clientX - drag.x; ty = e.clientY - drag.y; apply(); } });
  window.addEventListener("pointerup", () => { drag = null; });
  svg.addEventListener("keydown", (e) => {
    const k = (e as KeyboardEvent).key;
    const step = 40;
    if (k === "+" || k === "=") zoom(1.2); else if (k === "-") zoom(1 / 1.2);
    else if (k === "ArrowLeft") tx += step; else if (k === "ArrowRight") tx -= step;
    else if (k === "ArrowUp") ty += step; else if (k === "ArrowDown") ty -= step;
    else return;
    apply();
    e.preventDefault();
  });
  const bar = h("div", { class: "toolbar" },
    h("button", { type: "button", onclick: () => zoom(1.25) }, "Zoom in"),
    h("button", { type: "button", onclick: () => zoom(0.8) }, "Zoom out"),
    h("button", { type: "button", onclick: () => { scale = 1; tx = ty = 0; apply(); } }, "Reset"),
    h("button", { type: "button", onclick: () => { for (const b of blocks) collapsed.add(b.id); draw(); } }, "Collapse all"),
    h("button", { type: "button", onclick: () => { collapsed.clear(); draw(); } }, "Expand all"),
    reclose, info);
  draw();
  if (nodes.filter((n) => n.kind !== "model").length === 0) {
    return h("div", { class: "notice" }, "This version has no structure to draw (no components besides the model).");
  }
  const flat = !blocks.length && !edges.some((e) => e.kind !== "contains");
  return h("div", { class: "graph-wrap" },
    flat ? h("p", { class: "notice" }, "No structure was found in this version (no blocks, no dataflow edges): its tensors are shown side by side.") : null,
    bar, svg);
}
