// Live updates: one stream of the store's outbox (GET /api/events/stream,
// server-sent events read with fetch so a bearer token can go along) for
// the whole app. New versions pop up as a toast and on the Live page; the
// stream reconnects after the last event id when it drops.
import { api, authHeaders } from "../api";
import { formatBytes, ingestProgressText, IngestProgress } from "../shape";
import { h, clear, enc } from "../dom";
import { parseSse, formatTime } from "../shape";
import type { Route } from "../main";

export interface LiveEvent { id: number; kind: string; payload: any; ts?: string }
const seen: LiveEvent[] = [];
const listeners = new Set<(e: LiveEvent) => void>();
let lastId = 0;

export function startLive(badge: HTMLElement) {
  const connect = async () => {
    try {
      // Start from now: the history is on the Live page.
      if (lastId === 0) {
        const recent = await api(`/api/events?after=0&limit=10000`).catch(() => []);
        for (const e of recent) lastId = Math.max(lastId, e.id);
      }
      const resp = await fetch(`/api/events/stream?after=${lastId}`, { headers: authHeaders() });
      if (!resp.ok || !resp.body) throw new Error(String(resp.status));
      badge.textContent = "● live";
      badge.classList.add("on");
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { events, rest } = parseSse(buf + dec.decode(value, { stream: true }));
        buf = rest;
        for (const ev of events) {
          if (ev.event === "ingest.progress") {
            // Not an outbox row: a running ingest's progress (no id).
            try { ingestProgress(JSON.parse(ev.data)); } catch { /* ignore a bad one */ }
            continue;
          }
          // data is the event row as /api/events lists it: {id, ts, kind, payload}.
          let row: any = null;
          try { row = JSON.parse(ev.data); } catch { /* text */ }
          const le: LiveEvent = { id: Number(ev.id ?? row?.id ?? 0), kind: ev.event ?? row?.kind ?? "message", payload: row?.payload ?? ev.data, ts: row?.ts };
          if (le.id) lastId = Math.max(lastId, le.id);
          if (le.kind === "version.created" && le.payload?.model) versionAppeared(`${le.payload.model}@${le.payload.number}`, le.payload.model);
          seen.unshift(le);
          if (seen.length > 500) seen.pop();
          toast(le);
          for (const l of listeners) l(le);
        }
      }
    } catch { /* dropped; retry below */ }
    badge.textContent = "○ live (reconnecting)";
    badge.classList.remove("on");
    setTimeout(connect, 3000);
  };
  connect();
}

// ---- the server's ingest progress (ingest.progress events) ----
// Each running ingest the caller started shows a bar in a box that stays on
// every page (bytes hashed and stored of the total, from the server) until
// its version appears in the outbox; the Live page lists them too.
interface Job { p: IngestProgress; el: HTMLElement; bar: HTMLProgressElement; text: HTMLElement; running: number; sawRunning: boolean }
const jobs = new Map<number, Job>();
const jobListeners = new Set<(j: Job) => void>();
const seenVersions = new Set<string>();

function ingestBox(): HTMLElement | null {
  let box = document.getElementById("ingests");
  if (!box) {
    const toasts = document.getElementById("toasts");
    if (!toasts) return null;
    box = h("div", { id: "ingests", class: "ingests", "aria-label": "Ingests on the server" });
    toasts.prepend(box);  // in the toasts' column, above them
  }
  return box;
}

function ingestProgress(p: IngestProgress) {
  let j = jobs.get(p.job);
  if (!j) {
    // A job that ended before this page saw it run is old news.
    if (p.state !== "running") return;
    const bar = h("progress", { max: "1", value: "0" }) as HTMLProgressElement;
    const text = h("span", {});
    j = { p, el: h("div", { class: "ingest-job", "data-job": p.job }, text, bar), bar, text, running: 0, sawRunning: false };
    jobs.set(p.job, j);
    ingestBox()?.appendChild(j.el);
  }
  j.p = p;
  if (p.state === "running") { j.running++; j.sawRunning = true; }
  j.el.dataset.state = p.state;
  j.el.dataset.runningUpdates = String(j.running);
  j.bar.value = p.total > 0 ? p.done / p.total : 0;
  j.bar.hidden = p.state !== "running";
  j.text.textContent = ingestProgressText(p);
  for (const l of jobListeners) l(j);
  const job = j;
  if (p.state === "failed") setTimeout(() => dropJob(job), 10000);
  if (p.state === "done" && p.version && seenVersions.has(p.version)) setTimeout(() => dropJob(job), 3000);
}

function dropJob(j: Job) { j.el.remove(); jobs.delete(j.p.job); }

function versionAppeared(version: string, model: string) {
  seenVersions.add(version);
  if (seenVersions.size > 1000) seenVersions.clear();
  for (const j of jobs.values()) {
    if (j.p.version === version || (j.p.state === "done" && j.p.model === model)) setTimeout(() => dropJob(j), 3000);
  }
}

function describe(e: LiveEvent): Node[] {
  const p = e.payload ?? {};
  if (e.kind === "version.created" && p.model) {
    return [document.createTextNode("new version "), h("a", { href: `#/m/${enc(p.model)}/${p.number}` }, `${p.model}@${p.number}`),
      document.createTextNode(` (${p.tensors} tensors${p.parent ? ", from " + p.parent : ""})`)];
  }
  if (e.kind === "version.deleted") return [document.createTextNode(`version deleted: ${p.version ?? JSON.stringify(p)}`)];
  return [document.createTextNode(`${e.kind}: ${typeof p === "string" ? p : JSON.stringify(p)}`)];
}

function toast(e: LiveEvent) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: "toast", role: "status" }, describe(e));
  box.appendChild(t);
  setTimeout(() => t.remove(), 8000);
}

function uploadForm(): HTMLElement {
  const file = h("input", { type: "file", id: "upload-file", "aria-label": "Model file" }) as HTMLInputElement;
  const model = h("input", { id: "upload-model", placeholder: "model name (default: file name)", "aria-label": "Model name" }) as HTMLInputElement;
  const license = h("input", { id: "upload-license", placeholder: "license, e.g. apache-2.0", "aria-label": "License" }) as HTMLInputElement;
  const parent = h("input", { id: "upload-parent", placeholder: "parent model@N (optional)", "aria-label": "Parent version" }) as HTMLInputElement;
  const bar = h("progress", { id: "upload-progress", max: "1", value: "0", hidden: true }) as HTMLProgressElement;
  const status = h("span", { id: "upload-status", class: "muted", role: "status" });
  const form = h("form", { class: "toolbar", onsubmit: (e: Event) => {
    e.preventDefault();
    const f = file.files?.[0];
    if (!f) { status.textContent = "pick a file first"; return; }
    const q = new URLSearchParams({ filename: f.name });
    if (model.value.trim()) q.set("model", model.value.trim());
    if (license.value.trim()) q.set("license", license.value.trim());
    if (parent.value.trim()) q.set("parent", parent.value.trim());
    // XMLHttpRequest: fetch reports no upload progress.
    const x = new XMLHttpRequest();
    x.open("POST", `/api/ingest?${q}`);
    x.setRequestHeader("content-type", "application/octet-stream");
    for (const [k, v] of Object.entries(authHeaders())) x.setRequestHeader(k, v);
    bar.hidden = false;
    x.upload.onprogress = (p) => {
      if (!p.lengthComputable) return;
      bar.value = p.loaded / p.total;
      status.textContent = p.loaded < p.total ? `uploading ${formatBytes(p.loaded)} of ${formatBytes(p.total)}` : "ingesting on the server…";
    };
    // Once uploaded, the server's own progress of this model's ingest.
    const mine = (j: Job) => {
      if (x.readyState === 4 || j.p.state !== "running") return;
      if (j.p.model === (model.value.trim() || f.name.replace(/\.[^.]*$/, ""))) { bar.value = j.bar.value; status.textContent = j.text.textContent ?? ""; }
    };
    jobListeners.add(mine);
    x.onloadend = () => jobListeners.delete(mine);
    x.onload = () => {
      bar.hidden = true;
      let j: any = null;
      try { j = JSON.parse(x.responseText); } catch { /* not JSON */ }
      if (x.status >= 200 && x.status < 300 && j) {
        status.textContent = `stored ${j.version}: ${j.tensors} tensors, ${formatBytes(j.new_bytes)} new of ${formatBytes(j.logical_bytes)}`;
      } else {
        status.textContent = "";
        status.appendChild(h("span", { class: "error" }, `${x.status}: ${j?.error?.message ?? x.statusText}`));
      }
    };
    x.onerror = () => { bar.hidden = true; status.textContent = "the upload failed (connection lost)"; };
    x.send(f);
  } }, file, model, license, parent, h("button", { type: "submit" }, "Ingest"), bar, status);
  return h("section", { class: "panel" }, h("h2", {}, "Ingest a file"), form);
}

export async function livePage(root: HTMLElement, _r: Route) {
  const list = h("ol", { class: "events", id: "live-events", reversed: true });
  const running = h("ul", { class: "events", id: "ingest-jobs", "aria-label": "Ingests on the server" });
  const showJob = (j: Job) => {
    if (!document.body.contains(running)) { jobListeners.delete(showJob); return; }
    let li = running.querySelector(`li[data-job="${j.p.job}"]`) as HTMLElement | null;
    if (!li) { li = h("li", { "data-job": j.p.job }); running.prepend(li); }
    li.dataset.state = j.p.state;
    li.dataset.runningUpdates = String(j.running);
    li.textContent = ingestProgressText(j.p);
  };
  for (const j of jobs.values()) showJob(j);
  jobListeners.add(showJob);
  root.append(h("h1", {}, "Live"), uploadForm(), h("h2", {}, "Ingests on the server"), running,
    h("p", { class: "muted" }, "Events of the store as they happen (ingests, deletions). Earlier ones:"), list);
  const add = (e: LiveEvent, top = true) => {
    const li = h("li", { "data-kind": e.kind }, h("span", { class: "muted" }, `#${e.id} ${e.ts !== undefined ? formatTime(e.ts) + " " : ""}`), describe(e));
    if (top) list.prepend(li); else list.appendChild(li);
  };
  const listener = (e: LiveEvent) => { if (!document.body.contains(list)) { listeners.delete(listener); return; } add(e); };
  listeners.add(listener);
  const hist = await api(`/api/events?after=0&limit=10000`).catch(() => []);
  const ids = new Set(seen.map((e) => e.id));
  clear(list);
  for (const e of seen) add(e, false);
  for (const e of [...hist].reverse()) if (!ids.has(e.id)) add(e, false);
}
