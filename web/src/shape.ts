// Data shaping for the UI: pure functions from the API's JSON to what a page
// draws (sizes, treemap rectangles, graph layers, the window of a virtual
// table, server-sent event frames). No DOM here, so tests/ui/shape.test.mjs
// runs them under node's test runner.

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatNumber(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}

// The catalog's times are Unix seconds (a number or digits); shown in UTC
// as "YYYY-MM-DD HH:MM". Anything else is shown as given.
export function formatTime(t: unknown): string {
  if (t === null || t === undefined || t === "") return "—";
  const n = typeof t === "number" ? t : /^\d+$/.test(String(t)) ? Number(t) : NaN;
  if (!Number.isFinite(n)) return String(t);
  return new Date(n * 1000).toISOString().slice(0, 16).replace("T", " ");
}

export interface ModelRow {
  name: string; versions: number; latest: number; logical_bytes: number;
  owner?: string; visibility?: string; license?: string; created_at?: string | number;
}
export interface StatsRow { model?: string; logical_bytes: number; physical_bytes: number; dedup_ratio: number }
export interface ModelSummary {
  name: string; versions: number; latest: number; logical_bytes: number; physical_bytes: number | null;
  license: string; owner: string; visibility: string; last_change: string | number;
}

// An owner identity as a person reads it: the server names a signed-in
// owner "<issuer>|<subject>" (issue 14); the subject is what tells people
// apart on one server, the issuer is in the tooltip. "local" (the CLI) and
// "apikey:NAME" stay as they are.
export function ownerLabel(owner: string | undefined | null): string {
  if (!owner) return "";
  const bar = owner.lastIndexOf("|");
  return bar >= 0 && bar + 1 < owner.length ? owner.slice(bar + 1) : owner;
}

// Joins /api/models (names, sizes, owner, visibility, the latest version's
// license and time) and /api/ui/model-sizes (physical bytes) into the
// Models list; filters by a case-insensitive substring of name, license,
// owner or visibility.
export function modelSummaries(models: ModelRow[], stats: StatsRow[], query = ""): ModelSummary[] {
  const phys = new Map(stats.filter((s) => s.model).map((s) => [s.model!, s.physical_bytes]));
  const q = query.trim().toLowerCase();
  return models.map((m) => ({
    name: m.name, versions: m.versions, latest: m.latest, logical_bytes: m.logical_bytes,
    physical_bytes: phys.get(m.name) ?? null,
    license: m.license ?? "", owner: m.owner ?? "", visibility: m.visibility ?? "",
    last_change: m.created_at ?? "",
  })).filter((m) => !q || m.name.toLowerCase().includes(q) || m.license.toLowerCase().includes(q) ||
    m.owner.toLowerCase().includes(q) || m.visibility.toLowerCase().includes(q));
}

// ---- components ----

export interface Node {
  id: number; parent: number | null; kind: string; name: string; role: string | null;
  layer: number | null; dtype: string | null; shape: number[] | null; nbytes: number;
}
export interface Edge { src: number; dst: number; kind: string }

export function childrenOf(nodes: Node[]): Map<number, Node[]> {
  const m = new Map<number, Node[]>();
  for (const n of nodes) {
    if (n.parent === null) continue;
    if (!m.has(n.parent)) m.set(n.parent, []);
    m.get(n.parent)!.push(n);
  }
  return m;
}

// Bytes by layer, then by role, for the treemap ("no layer" and "no role"
// collect the rest). Only tensors count: blocks' nbytes are sums.
export interface Group { key: string; value: number; children: { key: string; value: number; names: string[] }[] }
export function bytesByLayerRole(nodes: Node[]): Group[] {
  const layers = new Map<string, Map<string, { value: number; names: string[] }>>();
  for (const n of nodes) {
    if (n.kind !== "tensor") continue;
    const lk = n.layer === null ? "no layer" : `layer ${n.layer}`;
    const rk = n.role ?? "no role";
    if (!layers.has(lk)) layers.set(lk, new Map());
    const roles = layers.get(lk)!;
    if (!roles.has(rk)) roles.set(rk, { value: 0, names: [] });
    const r = roles.get(rk)!;
    r.value += n.nbytes;
    r.names.push(n.name);
  }
  const out: Group[] = [];
  for (const [key, roles] of layers) {
    const children = [...roles].map(([k, v]) => ({ key: k, value: v.value, names: v.names }));
    children.sort((a, b) => b.value - a.value);
    out.push({ key, value: children.reduce((s, c) => s + c.value, 0), children });
  }
  out.sort((a, b) => b.value - a.value);
  return out;
}

export interface Rect { key: string; x: number; y: number; w: number; h: number; value: number }

// Squarified treemap (Bruls, Huizing, van Wijk): lays values (any order;
// sorted descending here) into the rectangle, keeping aspect ratios near 1.
export function squarify(items: { key: string; value: number }[], x: number, y: number, w: number,
                         h: number): Rect[] {
  const data = items.filter((i) => i.value > 0).sort((a, b) => b.value - a.value);
  const total = data.reduce((s, i) => s + i.value, 0);
  const out: Rect[] = [];
  if (total <= 0 || w <= 0 || h <= 0) return out;
  const scale = (w * h) / total;
  let rest = data.map((d) => ({ ...d, area: d.value * scale }));
  let cx = x, cy = y, cw = w, ch = h;
  const worst = (row: { area: number }[], side: number) => {
    const s = row.reduce((a, r) => a + r.area, 0);
    let mx = 0, mn = Infinity;
    for (const r of row) { mx = Math.max(mx, r.area); mn = Math.min(mn, r.area); }
    return Math.max((side * side * mx) / (s * s), (s * s) / (side * side * mn));
  };
  while (rest.length) {
    const side = Math.min(cw, ch);
    const row = [rest[0]];
    let i = 1;
    while (i < rest.length && worst([...row, rest[i]], side) <= worst(row, side)) row.push(rest[i++]);
    rest = rest.slice(i);
    const s = row.reduce((a, r) => a + r.area, 0);
    if (cw >= ch) {  // a column on the left
      const colW = s / ch;
      let yy = cy;
      for (const r of row) { const hh = r.area / colW; out.push({ key: r.key, x: cx, y: yy, w: colW, h: hh, value: r.value }); yy += hh; }
      cx += colW; cw -= colW;
    } else {  // a row on top
      const rowH = s / cw;
      let xx = cx;
      for (const r of row) { const ww = r.area / rowH; out.push({ key: r.key, x: xx, y: cy, w: ww, h: rowH, value: r.value }); xx += ww; }
      cy += rowH; ch -= rowH;
    }
  }
  return out;
}

// ---- dataflow graph ----

export interface LaidOut {
  nodes: { id: number; name: string; kind: string; role: string | null; x: number; y: number; collapsed: boolean; hidden: number }[];
  edges: { src: number; dst: number; kind: string }[];
  width: number; height: number;
}

// What the graph draws: blocks in `collapsed` stand for their whole
// subtree (edges into and out of it are redirected to the block); `feeds`
// and `ties` edges give the layers (longest path from a source), so data
// flows top to bottom. Nodes with no edge at all sit in the layer their
// component layer number suggests. Cycles (ties both ways) are broken by
// visiting order.
export function layoutGraph(nodes: Node[], edges: Edge[], collapsed: Set<number>, colW = 190, rowH = 60): LaidOut {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  // rep: the visible node that stands for each node.
  const rep = new Map<number, number>();
  const hiddenCount = new Map<number, number>();
  const repOf = (id: number): number => {
    const cached = rep.get(id);
    if (cached !== undefined) return cached;
    let r = id;
    for (let p = byId.get(id)?.parent ?? null; p !== null; p = byId.get(p)?.parent ?? null) if (collapsed.has(p)) r = p;
    rep.set(id, r);
    return r;
  };
  const visible = nodes.filter((n) => n.kind !== "model" && repOf(n.id) === n.id &&
    (n.kind === "tensor" || collapsed.has(n.id)));
  for (const n of nodes) if (repOf(n.id) !== n.id) hiddenCount.set(repOf(n.id), (hiddenCount.get(repOf(n.id)) ?? 0) + 1);
  const vis = new Set(visible.map((n) => n.id));
  const seen = new Set<string>();
  const es: { src: number; dst: number; kind: string }[] = [];
  for (const e of edges) {
    if (e.kind === "contains") continue;
    const s = repOf(e.src), d = repOf(e.dst);
    if (s === d || !vis.has(s) || !vis.has(d)) continue;
    const k = `${s}>${d}:${e.kind}`;
    if (seen.has(k)) continue;
    seen.add(k);
    es.push({ src: s, dst: d, kind: e.kind });
  }
  const incoming = new Map<number, number[]>();
  for (const e of es) { if (!incoming.has(e.dst)) incoming.set(e.dst, []); incoming.get(e.dst)!.push(e.src); }
  const depth = new Map<number, number>();
  const onStack = new Set<number>();
  const depthOf = (id: number): number => {
    const d = depth.get(id);
    if (d !== undefined) return d;
    if (onStack.has(id)) return 0;
    onStack.add(id);
    let best = -1;
    for (const s of incoming.get(id) ?? []) best = Math.max(best, depthOf(s));
    onStack.delete(id);
    let v = best + 1;
    if (best < 0 && !incoming.has(id) && !es.some((e) => e.src === id)) v = (byId.get(id)?.layer ?? -1) + 1;
    depth.set(id, v);
    return v;
  };
  const layers = new Map<number, number[]>();
  for (const n of visible) {
    const d = depthOf(n.id);
    if (!layers.has(d)) layers.set(d, []);
    layers.get(d)!.push(n.id);
  }
  const out: LaidOut = { nodes: [], edges: es, width: 0, height: 0 };
  const keys = [...layers.keys()].sort((a, b) => a - b);
  keys.forEach((k, row) => {
    const ids = layers.get(k)!.sort((a, b) => a - b);
    ids.forEach((id, col) => {
      const n = byId.get(id)!;
      out.nodes.push({ id, name: n.name, kind: n.kind, role: n.role, x: 10 + col * colW, y: 10 + row * rowH,
        collapsed: collapsed.has(id), hidden: hiddenCount.get(id) ?? 0 });
      out.width = Math.max(out.width, 10 + (col + 1) * colW);
    });
    out.height = 10 + (row + 1) * rowH;
  });
  return out;
}

// ---- virtual table ----

// The rows [first, last) to render for a scroll position; `overscan` rows
// beyond each edge keep fast scrolling from showing gaps.
export function visibleRange(scrollTop: number, viewport: number, rowHeight: number, count: number,
                             overscan = 8): { first: number; last: number } {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  return { first, last: Math.max(first, last) };
}

export type SortDir = 1 | -1;
export function sortRows<T>(rows: T[], key: (r: T) => unknown, dir: SortDir): T[] {
  return [...rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
}

// ---- tensor values ----

// Bars of a histogram response scaled to a height; log scale keeps rare
// outliers visible next to a peak of millions.
export function histogramBars(counts: number[], min: number, max: number, height: number, log = true) {
  const f = (c: number) => (log ? Math.log10(1 + c) : c);
  const top = Math.max(...counts.map(f), 1e-9);
  const w = counts.length ? (max - min) / counts.length : 0;
  return counts.map((c, i) => ({ lo: min + i * w, hi: min + (i + 1) * w, count: c, h: (f(c) / top) * height }));
}

// A diverging colour for a heat map cell: blue below zero, red above, white
// at zero, scaled by the larger magnitude of min and max; grey for null.
export function heatColor(v: number | null, min: number, max: number): string {
  if (v === null || !Number.isFinite(v)) return "rgb(160,160,160)";
  const m = Math.max(Math.abs(min), Math.abs(max)) || 1;
  const t = Math.max(-1, Math.min(1, v / m));
  const a = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${a},${a})` : `rgb(${a},${a},255)`;
}

// ---- compare ----

export interface DiffRow { kind: string; name: string; bytes_a: number; bytes_b: number; changed_bytes: number }
export interface NormRow { name: string; computed: boolean; reason?: string; l2_diff?: number; rel_diff?: number; max_abs_diff?: number }
export type TensorState = "changed" | "added" | "removed" | "shared";

// Per tensor name of b (and removed ones of a): changed, added, removed or
// shared (identical bytes, stored once).
export function compareStates(diff: DiffRow[], namesB: string[]): Map<string, TensorState> {
  const m = new Map<string, TensorState>();
  for (const n of namesB) m.set(n, "shared");
  for (const d of diff) m.set(d.name, d.kind as TensorState);
  return m;
}

// The states drawn on one side of a compare: on b its tensors (changed,
// added, else shared); on a its tensors (changed, removed, else shared).
export function compareStatesOn(diff: DiffRow[], names: string[], side: "a" | "b"): Map<string, TensorState> {
  const m = new Map<string, TensorState>();
  for (const n of names) m.set(n, "shared");
  for (const d of diff) {
    if (side === "b" && d.kind === "removed") continue;
    if (side === "a" && d.kind === "added") continue;
    if (m.has(d.name)) m.set(d.name, d.kind as TensorState);
  }
  return m;
}

export function joinNorms(diff: DiffRow[], norms: NormRow[]) {
  const byName = new Map(norms.map((n) => [n.name, n]));
  return diff.map((d) => ({ ...d, norm: byName.get(d.name) ?? null }))
    .sort((a, b) => (b.norm?.rel_diff ?? -1) - (a.norm?.rel_diff ?? -1));
}

// ---- lineage ----

export interface VersionRow { ref: string; model: string; number: number; parent: string | null; created_at?: string }
// Models as lanes, version numbers as columns, wrapping after `wrap`
// columns (a model of 1,000 versions is a block of rows, not a strip 100,000
// px wide); edges from parent to child, across models too (a fine-tune of
// another model). Versions are placed by their rank within the model, so
// gaps left by deleted numbers do not leave holes.
// A derived version (workshop: quantize, merge, compose, merge-lora) and the
// versions it was made from, as the `derivations` view gives them
// (`inputs`: comma-separated refs the caller may read).
export interface DerivationRow { ref: string; method: string; inputs: string | null }

export function lineageLayout(versions: VersionRow[], derived: DerivationRow[] = [], colW = 110, rowH = 44, wrap = 12) {
  const byModel = new Map<string, VersionRow[]>();
  for (const v of versions) {
    if (!byModel.has(v.model)) byModel.set(v.model, []);
    byModel.get(v.model)!.push(v);
  }
  const models = [...byModel.keys()].sort();
  const pos = new Map<string, { x: number; y: number }>();
  const lanes: { model: string; y: number }[] = [];
  let y = 30;
  for (const m of models) {
    const vs = byModel.get(m)!.sort((a, b) => a.number - b.number);
    lanes.push({ model: m, y });
    vs.forEach((v, i) => pos.set(v.ref, { x: 20 + (i % wrap) * colW, y: y + Math.floor(i / wrap) * rowH }));
    y += Math.ceil(vs.length / wrap) * rowH + 26;
  }
  const edges: { from: string; to: string; method?: string }[] =
    versions.filter((v) => v.parent && pos.has(v.parent)).map((v) => ({ from: v.parent!, to: v.ref }));
  // Derivation inputs: one edge per input, labelled with the method; an
  // input that is also the parent keeps a single (labelled) edge.
  for (const d of derived) {
    if (!pos.has(d.ref)) continue;
    for (const from of (d.inputs ?? "").split(",").map((x) => x.trim()).filter((x) => pos.has(x))) {
      const same = edges.find((e) => e.from === from && e.to === d.ref);
      if (same) same.method = d.method;
      else edges.push({ from, to: d.ref, method: d.method });
    }
  }
  const cols = Math.min(wrap, Math.max(0, ...[...byModel.values()].map((v) => v.length)));
  return { models, lanes, pos, edges, width: 20 + cols * colW + 20, height: y };
}

// ---- server-sent events ----

export interface SseEvent { id?: string; event?: string; data: string }
// Splits a text buffer into complete SSE events and what is left over (a
// partial event waiting for more bytes). Lines are "field: value";
// comments (":...") are dropped.
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const norm = buffer.replace(/\r\n/g, "\n");
  const parts = norm.split("\n\n");
  const rest = parts.pop() ?? "";
  for (const p of parts) {
    const ev: SseEvent = { data: "" };
    const data: string[] = [];
    for (const line of p.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
    }
    ev.data = data.join("\n");
    if (data.length || ev.event) events.push(ev);
  }
  return { events, rest };
}

// Tokens per second from the times chunks arrived (ms): decode speed is
// taken from the first token on, so prompt processing does not count.
export function speed(t0: number, tFirst: number | null, tEnd: number, tokens: number) {
  const ttft = tFirst === null ? null : tFirst - t0;
  const decode = tFirst !== null && tokens > 1 && tEnd > tFirst ? ((tokens - 1) * 1000) / (tEnd - tFirst) : null;
  return { ttft_ms: ttft, tokens_per_s: decode };
}

// ---- chat: the server's own speed figures ----

// The `timings` object the server sends with a chat completion (as
// llama.cpp's server does) and OpenAI's `usage`, as one line for the page.
export interface Timings { prompt_n?: number; prompt_ms?: number; prompt_per_second?: number; predicted_n?: number;
  predicted_ms?: number; predicted_per_second?: number; cache_n?: number }
export interface Usage { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } }
export function serverSpeed(t: Timings | null | undefined, u: Usage | null | undefined): string {
  const parts: string[] = [];
  if (t) {
    parts.push(`prompt ${t.prompt_n ?? 0} tokens in ${formatNumber(t.prompt_ms, 3)} ms (${formatNumber(t.prompt_per_second, 3)} tokens/s)`);
    parts.push(`generated ${t.predicted_n ?? 0} tokens in ${formatNumber(t.predicted_ms, 3)} ms (${formatNumber(t.predicted_per_second, 3)} tokens/s)`);
    if (t.cache_n) parts.push(`${t.cache_n} prompt tokens from the cache`);
  }
  if (u) {
    parts.push(`usage: prompt ${u.prompt_tokens ?? 0}, completion ${u.completion_tokens ?? 0}` +
      (u.prompt_tokens_details?.cached_tokens ? `, cached ${u.prompt_tokens_details.cached_tokens}` : ""));
  }
  return parts.length ? `server: ${parts.join(" · ")}` : "";
}

// ---- SQL: where the error is ----

// The server names a SQL error's place as a byte offset in the UTF-8 text;
// the editor counts UTF-16 code units. Returns the index in `text`, its
// 1-based line and column, and the extent of the token there (to mark).
export function errorPlace(text: string, byteOffset: number) {
  const bytes = new TextEncoder().encode(text);
  const off = Math.max(0, Math.min(byteOffset, bytes.length));
  const index = new TextDecoder().decode(bytes.slice(0, off)).length;
  const before = text.slice(0, index);
  const line = before.split("\n").length;
  const column = index - (before.lastIndexOf("\n") + 1) + 1;
  const m = /^[A-Za-z0-9_$]+|^'[^']*'?|^"[^"]*"?|^\S/.exec(text.slice(index));
  return { index, line, column, end: index + (m ? m[0].length : 0) };
}

// ---- compare: how much each tensor changed ----

// Relative norm of the difference ‖b−a‖/‖a‖ → a heat level 1..4 for the
// graph and the treemap (0: unchanged or unknown): < 0.1 %, < 1 %, < 10 %,
// more.
export function changeLevel(rel: number | null | undefined): number {
  if (rel === null || rel === undefined || !Number.isFinite(rel) || rel <= 0) return 0;
  if (rel < 1e-3) return 1;
  if (rel < 1e-2) return 2;
  if (rel < 1e-1) return 3;
  return 4;
}
export const changeLevelLabels = ["", "< 0.1 %", "< 1 %", "< 10 %", "≥ 10 %"];

// ---- live: the server's ingest progress ----

export interface IngestProgress { job: number; model: string; filename?: string; state: string; stage?: string;
  done: number; total: number; unit?: string; version?: string; error?: string }
export function ingestProgressText(p: IngestProgress): string {
  const of = p.unit === "B" || !p.unit
    ? `${formatBytes(p.done)} of ${formatBytes(p.total)}` : `${p.done} of ${p.total} ${p.unit}`;
  const pct = p.total > 0 ? ` (${Math.floor((100 * p.done) / p.total)} %)` : "";
  if (p.state === "done") return `ingested ${p.model}${p.version ? " as " + p.version : ""}`;
  if (p.state === "failed") return `ingest of ${p.model} failed: ${p.error ?? "unknown error"}`;
  return `ingesting ${p.model} on the server: ${p.stage ? p.stage + " " : ""}${of}${pct}`;
}

// ---- sign-in: when to refresh the access token ----

// Milliseconds from now until the token should be refreshed: 30 s before it
// ends, or at 80 % of what is left for a short-lived token (never sooner
// than 1 s from now).
// `expiresAt` in epoch ms (from the token response's expires_in or the
// JWT's exp); null when unknown (no refresh planned).
export function refreshDelay(expiresAt: number | null, now: number): number | null {
  if (expiresAt === null || !Number.isFinite(expiresAt)) return null;
  const left = expiresAt - now;
  return Math.max(1000, left - Math.min(30000, left * 0.2));
}

// The `exp` claim of a JWT access token, in epoch ms; null when the token is
// not a JWT (an opaque token) or has none. The signature is not checked:
// the server does that; this only plans the refresh.
export function jwtExpiry(token: string): number | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    return typeof json.exp === "number" ? json.exp * 1000 : null;
  } catch { return null; }
}

// ---- model page: who may change a model's visibility ----

// As the server decides (app/access.cc MayWrite): an Admin, or a
// Contributor who owns the model. Readers get no control.
export interface Me { owner?: string; role?: string }
export function mayChangeVisibility(me: Me | null | undefined, owner: string | null | undefined): boolean {
  if (!me) return false;
  if (me.role === "Admin") return true;
  return me.role === "Contributor" && !!me.owner && me.owner === owner;
}
