// DOM building without innerHTML: every string from the server becomes a
// text node or an attribute value, so HTML in a model name or metadata is
// shown as text, never parsed. Styles are set through the CSSOM (el.style),
// which the server's CSP (style-src 'self') allows, unlike style attributes.
type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

function append(el: Element, c: Child) {
  if (c === null || c === undefined || c === false) return;
  if (Array.isArray(c)) { for (const x of c) append(el, x); return; }
  el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
}

function setAttrs(el: Element, attrs: Attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    } else if (k === "style" && typeof v === "object") {
      Object.assign((el as HTMLElement).style, v);
    } else if (k === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function clear(el: Element) { while (el.firstChild) el.removeChild(el.firstChild); }

export function errorBox(err: unknown, what = ""): HTMLElement {
  const msg = err instanceof Error ? err.message : String(err);
  return h("div", { class: "error", role: "alert" }, what ? `${what}: ` : "", msg);
}

export function loading(what: string): HTMLElement {
  return h("div", { class: "loading", role: "status" }, `Loading ${what}…`);
}

export const link = (href: string, ...text: Child[]) => h("a", { href }, ...text);
export const enc = encodeURIComponent;
