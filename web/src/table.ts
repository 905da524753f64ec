// A virtualized, sortable table: only the rows in view (plus overscan) are
// in the DOM, so 1,000 or 100,000 tensors scroll alike. Rows are fixed
// height; cells are built by the column's render function (text by default).
import { h, clear } from "./dom";
import { visibleRange, sortRows, SortDir } from "./shape";

export interface Column<T> {
  title: string;
  value: (r: T) => unknown;
  render?: (r: T) => Node | string;
  cls?: string;
  width?: string;
}

export function virtualTable<T>(rows: T[], cols: Column<T>[], opts: { height?: number; rowClass?: (r: T) => string; label: string }) {
  const rowH = 28;
  let data = rows;
  let sortCol = -1, dir: SortDir = 1;
  const body = h("div", { class: "vt-body", role: "rowgroup" });
  const spacer = h("div", { class: "vt-spacer" });
  const viewport = h("div", { class: "vt-viewport", tabindex: "0", "aria-label": opts.label }, spacer);
  viewport.style.height = `${opts.height ?? 420}px`;
  spacer.appendChild(body);
  const template = cols.map((c) => c.width ?? "minmax(6em, 1fr)").join(" ");
  const head = h("div", { class: "vt-row vt-head", role: "row" },
    cols.map((c, i) => h("button", { class: `vt-cell ${c.cls ?? ""}`, role: "columnheader", onclick: () => {
      dir = sortCol === i ? (dir === 1 ? -1 : 1) : 1;
      sortCol = i;
      data = sortRows(rows, c.value, dir);
      draw();
    } }, c.title)));
  head.style.gridTemplateColumns = template;
  const count = h("div", { class: "vt-count" });
  const render = () => {
    const { first, last } = visibleRange(viewport.scrollTop, viewport.clientHeight || 420, rowH, data.length);
    clear(body);
    body.style.transform = `translateY(${first * rowH}px)`;
    for (let i = first; i < last; i++) {
      const r = data[i];
      const row = h("div", { class: `vt-row ${opts.rowClass?.(r) ?? ""}`, role: "row" },
        cols.map((c) => h("div", { class: `vt-cell ${c.cls ?? ""}`, role: "cell" }, c.render ? c.render(r) : String(c.value(r) ?? ""))));
      row.style.gridTemplateColumns = template;
      row.style.height = `${rowH}px`;
      body.appendChild(row);
    }
  };
  const draw = () => {
    spacer.style.height = `${data.length * rowH}px`;
    count.textContent = `${data.length} row${data.length === 1 ? "" : "s"}`;
    render();
  };
  viewport.addEventListener("scroll", () => requestAnimationFrame(render));
  viewport.addEventListener("keydown", (e) => {
    const k = (e as KeyboardEvent).key;
    if (k === "PageDown") viewport.scrollTop += viewport.clientHeight;
    else if (k === "PageUp") viewport.scrollTop -= viewport.clientHeight;
    else if (k === "Home") viewport.scrollTop = 0;
    else if (k === "End") viewport.scrollTop = data.length * rowH;
    else return;
    e.preventDefault();
  });
  const el = h("div", { class: "vt", role: "table", "aria-label": opts.label }, h("div", { class: "vt-scroll" }, head, viewport), count);
  const set = (next: T[]) => { rows = next; data = sortCol >= 0 ? sortRows(rows, cols[sortCol].value, dir) : rows; draw(); };
  requestAnimationFrame(draw);
  draw();
  return { el, set };
}
