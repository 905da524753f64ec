// Plan: pick components of a version by search text, SQL or names, see the
// closure (what they depend on) and the bytes needed against the whole
// model, then download exactly those tensors as a file (POST /api/load).
import { post, authHeaders } from "../api";
import { h, clear, errorBox, loading } from "../dom";
import { formatBytes } from "../shape";
import { virtualTable } from "../table";
import type { Route } from "../main";

export async function planPage(root: HTMLElement, r: Route) {
  const version = h("input", { id: "plan-version", value: r.query.get("version") ?? "", placeholder: "model@N", "aria-label": "Version" }) as HTMLInputElement;
  const mode = h("select", { id: "plan-mode", "aria-label": "Selection kind" }, ["search", "sql", "names"].map((m) => h("option", { value: m }, m))) as HTMLSelectElement;
  const sel = h("input", { id: "plan-selection", placeholder: "attention layer 0 / SELECT id FROM tensors WHERE … / a,b", "aria-label": "Selection", value: r.query.get("search") ?? "" }) as HTMLInputElement;
  const closure = h("input", { type: "checkbox", checked: true, id: "plan-closure" }) as HTMLInputElement;
  const out = h("div", { id: "plan-out" });
  const body = () => {
    const b: any = { version: version.value.trim(), closure: closure.checked };
    if (mode.value === "names") b.names = sel.value.split(",").map((x) => x.trim()).filter(Boolean);
    else b[mode.value] = sel.value;
    return b;
  };
  const run = async (e?: Event) => {
    e?.preventDefault();
    clear(out);
    out.appendChild(loading("plan"));
    try {
      const p = await post("/api/plan", body(), 60000);
      clear(out);
      const pct = p.total_bytes ? (100 * p.need_bytes) / p.total_bytes : 0;
      const bar = h("div", { class: "bytesbar", role: "img", "aria-label": `${pct.toFixed(1)}% of the bytes` }, h("div", { class: "fill" }));
      (bar.firstChild as HTMLElement).style.width = `${pct}%`;
      out.append(h("p", { class: "summary", id: "plan-summary" }, `${p.selected} selected, ${p.need_tensors} of ${p.total_tensors} tensors with the closure: ${formatBytes(p.need_bytes)} of ${formatBytes(p.total_bytes)} (${pct.toFixed(1)}%)`),
        bar,
        h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => download(out) }, "Download partial load (safetensors/GGUF)")),
        virtualTable<any>(p.tensors, [
          { title: "Tensor", value: (t) => t.name, width: "minmax(12em, 3fr)" },
          { title: "Why", value: (t) => t.selected, render: (t) => (t.selected ? "selected" : "closure") },
          { title: "Role", value: (t) => t.role },
          { title: "Layer", value: (t) => t.layer, cls: "num" },
          { title: "Bytes", value: (t) => t.bytes, render: (t) => formatBytes(t.bytes), cls: "num" },
        ], { label: "Planned tensors", height: 360 }).el);
    } catch (err) {
      clear(out);
      out.appendChild(errorBox(err, "plan"));
    }
  };
  const download = async (box: HTMLElement) => {
    const note = h("p", { class: "muted" }, "preparing the file…");
    box.prepend(note);
    try {
      const resp = await fetch("/api/load", { method: "POST", headers: { "content-type": "application/json", ...authHeaders() }, body: JSON.stringify(body()) });
      if (!resp.ok) throw new Error(`${resp.status}: ${(await resp.json().catch(() => null))?.error?.message ?? resp.statusText}`);
      const blob = await resp.blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: `${body().version.replace("@", "-")}-partial` }) as HTMLAnchorElement;
      a.click();
      note.textContent = `downloaded ${formatBytes(blob.size)}`;
    } catch (err) {
      note.replaceWith(errorBox(err, "download"));
    }
  };
  root.append(h("h1", {}, "Plan a partial load"),
    h("form", { class: "toolbar", onsubmit: run }, h("label", {}, "Version ", version), mode, sel,
      h("label", {}, closure, " closure"), h("button", { type: "submit" }, "Plan")), out);
  if (version.value && sel.value) run();
}
