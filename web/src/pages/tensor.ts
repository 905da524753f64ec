// One tensor's values, computed on the server from the stored bytes: a
// histogram (log-scaled counts) and a heat map of a slice (rows of the
// outermost dimension, the rest flattened), with the slice's bounds editable.
import { api } from "../api";
import { h, s, clear, errorBox, loading, enc } from "../dom";
import { histogramBars, heatColor, formatNumber } from "../shape";
import type { Route } from "../main";

export async function tensorPage(root: HTMLElement, r: Route) {
  const ref = r.path[1] ?? "", name = r.path[2] ?? "";
  const [model, number] = ref.split("@");
  root.append(h("h1", {}, "Tensor ", h("span", { class: "tensor-name" }, name)),
    h("p", {}, "of ", h("a", { href: `#/m/${enc(model)}/${number ?? ""}?tab=tensors` }, ref)));
  const histBox = h("section", { class: "panel" }, h("h2", {}, "Histogram"), loading("histogram"));
  const heatBox = h("section", { class: "panel" }, h("h2", {}, "Heat map"));
  root.append(histBox, heatBox);
  const base = `/api/versions/${enc(ref)}`;
  try {
    const hist = await api(`${base}/histogram?tensor=${enc(name)}&bins=64`, { timeoutMs: 60000 });
    histBox.lastChild!.remove();
    const W = 640, H = 160;
    const bars = histogramBars(hist.counts, hist.min, hist.max, H);
    const bw = W / Math.max(bars.length, 1);
    histBox.append(h("p", { class: "muted", id: "hist-meta" }, `${hist.dtype} [${hist.shape.join(", ")}] · ${hist.count} values · min ${formatNumber(hist.min)} · max ${formatNumber(hist.max)}` +
      (hist.nan_count || hist.inf_count ? ` · ${hist.nan_count} NaN, ${hist.inf_count} Inf` : "")),
      s("svg", { class: "histogram", viewBox: `0 0 ${W} ${H + 4}`, role: "img", "aria-label": `Histogram of ${name}` },
        bars.map((b, i) => s("rect", { x: i * bw, y: H - b.h, width: Math.max(bw - 1, 1), height: b.h, class: "bar" },
          s("title", {}, `[${formatNumber(b.lo)}, ${formatNumber(b.hi)}): ${b.count}`)))));
  } catch (e) {
    clear(histBox);
    histBox.append(h("h2", {}, "Histogram"), errorBox(e, "histogram"));
  }
  const q = { row: 0, rows: 64, col: 0, cols: 256 };
  const inputs = Object.keys(q).map((k) => h("label", {}, `${k} `, h("input", { type: "number", min: k === "rows" || k === "cols" ? "1" : "0", value: (q as any)[k], name: k, class: "num-input" })));
  const out = h("div");
  const form = h("form", { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); for (const el of form.querySelectorAll("input")) (q as any)[(el as HTMLInputElement).name] = Number((el as HTMLInputElement).value); draw(); } },
    inputs, h("button", { type: "submit" }, "Show slice"));
  heatBox.append(form, out);
  const draw = async () => {
    clear(out);
    out.appendChild(loading("slice"));
    try {
      const m = await api(`${base}/heatmap?tensor=${enc(name)}&row=${q.row}&rows=${q.rows}&col=${q.col}&cols=${q.cols}`, { timeoutMs: 60000 });
      clear(out);
      const R = m.cells.length, C = R ? m.cells[0].length : 0;
      if (!R || !C) { out.appendChild(h("p", { class: "notice" }, "Empty slice.")); return; }
      // Cells as large as fit 768 px across, rows at least as tall, a short slice taller still.
      const cw = Math.max(2, Math.min(12, Math.floor(768 / C)));
      const ch = Math.max(cw, Math.min(24, Math.floor(192 / R)));
      const canvas = h("canvas", { width: C * cw, height: R * ch, class: "heatmap", role: "img", "aria-label": `Heat map of rows ${m.row}..${m.row + m.rows} of ${name}` }) as HTMLCanvasElement;
      const ctx = canvas.getContext("2d")!;
      for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) { ctx.fillStyle = heatColor(m.cells[i][j], m.min, m.max); ctx.fillRect(j * cw, i * ch, cw, ch); }
      out.append(h("p", { class: "muted", id: "heat-meta" }, `rows ${m.row}–${m.row + m.rows - 1} of ${m.total_rows}, columns ${m.col}–${m.col + m.cols - 1} of ${m.total_cols}` +
        (m.cell_rows > 1 || m.cell_cols > 1 ? ` · each cell the mean of ${m.cell_rows}×${m.cell_cols} values` : "") + ` · range ${formatNumber(m.min)} … ${formatNumber(m.max)} (blue < 0 < red)`), canvas);
    } catch (e) {
      clear(out);
      out.appendChild(errorBox(e, "heat map"));
    }
  };
  draw();
}
