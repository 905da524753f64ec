// SQL console: the user views' schema beside an editor (Ctrl+Enter runs),
// results in a virtual grid, the query's time, and the error in place: when
// the server names where in the SQL it is (error.offset, SQLite's
// sqlite3_error_offset), the token there is underlined in the editor (a
// backdrop under the transparent textarea mirrors its text), selected, and
// its line and column are named under it.
import { post, ApiError } from "../api";
import { errorPlace } from "../shape";
import { h, clear, errorBox } from "../dom";
import { virtualTable } from "../table";
import type { Route } from "../main";

const views = ["models", "versions", "components", "tensors", "edges", "chunks"];

export async function sqlPage(root: HTMLElement, r: Route) {
  const editor = h("textarea", { id: "sql-editor", rows: "6", spellcheck: "false", "aria-label": "SQL" }) as HTMLTextAreaElement;
  editor.value = r.query.get("q") ?? "SELECT model, number, tensors, logical_bytes FROM versions ORDER BY model, number";
  // The backdrop mirrors the editor's text with the error's token in a mark.
  const backdrop = h("div", { class: "sql-backdrop", "aria-hidden": "true" });
  const where = h("p", { class: "sql-where", id: "sql-error-where", role: "status" });
  const unmark = () => { clear(backdrop); backdrop.append(editor.value + "\n"); clear(where); };
  const mark = (offset: number) => {
    const p = errorPlace(editor.value, offset);
    const text = editor.value;
    clear(backdrop);
    backdrop.append(text.slice(0, p.index), h("mark", { class: "sql-error-at", id: "sql-error-mark" }, text.slice(p.index, p.end) || " "), text.slice(p.end) + "\n");
    backdrop.scrollTop = editor.scrollTop;
    where.textContent = `error at line ${p.line}, column ${p.column}` + (p.end > p.index ? `: near "${text.slice(p.index, p.end)}"` : "");
    editor.focus();
    editor.setSelectionRange(p.index, Math.max(p.end, p.index));
  };
  editor.addEventListener("input", () => { unmark(); editor.removeAttribute("aria-invalid"); });
  editor.addEventListener("scroll", () => { backdrop.scrollTop = editor.scrollTop; });
  const out = h("div", { id: "sql-out" });
  const status = h("span", { class: "muted", id: "sql-status" });
  const schema = h("aside", { class: "panel schema", "aria-label": "Schema" }, h("h2", {}, "Views"));
  const run = async () => {
    clear(out);
    unmark();
    status.textContent = "running…";
    const t0 = performance.now();
    try {
      const res = await post("/api/sql", { sql: editor.value }, 60000);
      const ms = performance.now() - t0;
      status.textContent = `${res.rows.length} row${res.rows.length === 1 ? "" : "s"}${res.truncated ? " (truncated)" : ""} in ${ms.toFixed(0)} ms`;
      const cols: string[] = res.columns;
      const cell = (v: unknown) => (v === null ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v));
      out.appendChild(virtualTable<any>(res.rows, cols.map((c) => ({ title: c, value: (row: any) => row[c], render: (row: any) => cell(row[c]) })), { label: "Results", height: 420 }).el);
    } catch (e) {
      status.textContent = `failed after ${(performance.now() - t0).toFixed(0)} ms`;
      out.appendChild(errorBox(e, "query"));
      editor.setAttribute("aria-invalid", "true");
      if (e instanceof ApiError && typeof e.body?.error?.offset === "number") mark(e.body.error.offset);
      return;
    }
    editor.removeAttribute("aria-invalid");
  };
  editor.addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); } });
  root.append(h("h1", {}, "SQL"),
    h("div", { class: "sql-layout" },
      h("div", {}, h("div", { class: "sql-editor-wrap" }, backdrop, editor), where, h("div", { class: "toolbar" }, h("button", { type: "button", id: "sql-run", onclick: run }, "Run (Ctrl+Enter)"), status), out),
      schema));
  for (const v of views) {
    post("/api/sql", { sql: `SELECT * FROM ${v} LIMIT 0` }).then((res) => {
      schema.appendChild(h("details", {}, h("summary", {}, v), h("ul", {}, res.columns.map((c: string) => h("li", {}, h("button", { type: "button", class: "linklike", onclick: () => { editor.setRangeText(c, editor.selectionStart, editor.selectionEnd, "end"); editor.focus(); } }, c))))));
    }).catch(() => {});
  }
  unmark();
  if (r.query.get("q")) run();
}
