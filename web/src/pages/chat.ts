// Chat playground over /v1/chat/completions with stream: true: tokens
// appear as they arrive; the sampling parameters are the request's. The
// server's own figures (its `timings`: prefill and decode time and speed,
// cached prompt tokens; OpenAI's `usage` from the stream's usage chunk) are
// shown, beside what the browser saw (time to first token, tokens/s).
import { api, authHeaders } from "../api";
import { h, clear, errorBox } from "../dom";
import { parseSse, speed, formatNumber, serverSpeed } from "../shape";
import type { Route } from "../main";

export async function chatPage(root: HTMLElement, _r: Route) {
  const model = h("select", { id: "chat-model", "aria-label": "Model" }) as HTMLSelectElement;
  const num = (id: string, label: string, value: string, step = "any") => h("label", {}, `${label} `, h("input", { id, type: "number", step, value, class: "num-input" }));
  const params = h("div", { class: "toolbar params" }, h("label", {}, "Model ", model),
    num("chat-temperature", "temperature", "0.7"), num("chat-top-p", "top_p", "0.95"), num("chat-max-tokens", "max_tokens", "128", "1"), num("chat-seed", "seed", "", "1"));
  const log = h("div", { class: "chat-log", id: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", rows: "3", "aria-label": "Message", placeholder: "Say something (Enter sends, Shift+Enter for a new line)" }) as HTMLTextAreaElement;
  const stats = h("p", { class: "muted", id: "chat-stats" });
  const serverStats = h("p", { class: "muted", id: "chat-server-stats" });
  const send = h("button", { type: "button", id: "chat-send" }, "Send");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  root.append(h("h1", {}, "Chat"), params, log, input, h("div", { class: "toolbar" }, send, stop), serverStats, stats);
  try {
    const ms = await api("/v1/models");
    for (const m of ms.data ?? []) model.appendChild(h("option", { value: m.id }, m.id));
    if (!(ms.data ?? []).length) log.appendChild(h("p", { class: "notice" }, "No model to chat with: the store has none that runs."));
  } catch (e) { log.appendChild(errorBox(e, "models")); }
  const messages: { role: string; content: string }[] = [];
  let ctl: AbortController | null = null;
  const val = (id: string) => (root.querySelector(`#${id}`) as HTMLInputElement).value;
  const go = async () => {
    const text = input.value.trim();
    if (!text || ctl) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    log.appendChild(h("div", { class: "msg user" }, h("b", {}, "you: "), text));
    const reply = h("span", { class: "reply" });
    const div = h("div", { class: "msg assistant" }, h("b", {}, "model: "), reply);
    log.appendChild(div);
    const body: any = { model: model.value, messages, stream: true, stream_options: { include_usage: true } };
    for (const [id, k, int] of [["chat-temperature", "temperature", false], ["chat-top-p", "top_p", false], ["chat-max-tokens", "max_tokens", true], ["chat-seed", "seed", true]] as const) {
      const v = val(id);
      if (v !== "") body[k] = int ? parseInt(v, 10) : parseFloat(v);
    }
    ctl = new AbortController();
    (send as HTMLButtonElement).disabled = true;
    (stop as HTMLButtonElement).disabled = false;
    const t0 = performance.now();
    let tFirst: number | null = null, chunks = 0, usage: any = null, timings: any = null, finish = "";
    try {
      const resp = await fetch("/v1/chat/completions", { method: "POST", signal: ctl.signal, headers: { "content-type": "application/json", ...authHeaders() }, body: JSON.stringify(body) });
      if (!resp.ok || !resp.body) {
        const j = await resp.json().catch(() => null);
        throw new Error(`${resp.status}: ${j?.error?.message ?? resp.statusText}`);
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { events, rest } = parseSse(buf + dec.decode(value, { stream: true }));
        buf = rest;
        for (const ev of events) {
          if (ev.data === "[DONE]") continue;
          const j = JSON.parse(ev.data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          if (j.timings) timings = j.timings;
          const delta = j.choices?.[0]?.delta?.content;
          if (j.choices?.[0]?.finish_reason) finish = j.choices[0].finish_reason;
          if (delta) { if (tFirst === null) tFirst = performance.now(); chunks++; reply.append(delta); }
        }
      }
      messages.push({ role: "assistant", content: reply.textContent ?? "" });
    } catch (e) {
      if ((e as Error).name === "AbortError") div.append(h("span", { class: "muted" }, " [stopped]"));
      else div.appendChild(errorBox(e, "chat"));
      messages.pop();
    } finally {
      const sp = speed(t0, tFirst, performance.now(), usage?.completion_tokens ?? chunks);
      clear(stats);
      serverStats.textContent = serverSpeed(timings, usage);
      stats.append(`browser: time to first token ${formatNumber(sp.ttft_ms, 3)} ms · ${formatNumber(sp.tokens_per_s, 3)} tokens/s` +
        (usage ? ` · prompt ${usage.prompt_tokens}, completion ${usage.completion_tokens} tokens` : "") + (finish ? ` · finish: ${finish}` : ""));
      ctl = null;
      (send as HTMLButtonElement).disabled = false;
      (stop as HTMLButtonElement).disabled = true;
    }
  };
  send.addEventListener("click", go);
  stop.addEventListener("click", () => ctl?.abort());
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); go(); } });
}
