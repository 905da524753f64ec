// Every call to the server goes through here: a deadline (a slow API shows
// a message, never an endless spinner), the OpenAI-shaped error object
// turned into one readable line, and a bearer token once signed in.
export class ApiError extends Error {
  // body: the error's JSON document, when the server sent one.
  constructor(message: string, public status: number, public type = "", public body: any = null) { super(message); }
}

let token: string | null = null;
export function setToken(t: string | null) { token = t; }
export function authHeaders(): Record<string, string> { return token ? { authorization: `Bearer ${token}` } : {}; }

export async function api<T = any>(path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<T> {
  const ctl = new AbortController();
  const ms = init.timeoutMs ?? 20000;
  const timer = setTimeout(() => ctl.abort(), ms);
  const headers: Record<string, string> = { ...authHeaders(), ...(init.headers as Record<string, string> ?? {}) };
  if (init.body && !headers["content-type"]) headers["content-type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(path, { ...init, headers, signal: init.signal ?? ctl.signal });
  } catch (e) {
    clearTimeout(timer);
    if (ctl.signal.aborted) throw new ApiError(`${path}: no answer from the server after ${ms / 1000} s`, 0, "timeout");
    throw new ApiError(`${path}: the server cannot be reached (${(e as Error).message})`, 0, "network");
  }
  try {
    const text = await r.text();
    let body: any = null;
    try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!r.ok) {
      const msg = body?.error?.message ?? (text.slice(0, 300) || r.statusText);
      throw new ApiError(`${r.status} ${body?.error?.type ?? ""}: ${msg}`.replace(" :", ":"), r.status, body?.error?.type ?? "", body);
    }
    if (body === null && text) throw new ApiError(`${path}: the answer is not JSON`, r.status);
    return body as T;
  } finally {
    clearTimeout(timer);
  }
}

export const post = <T = any>(path: string, body: unknown, timeoutMs?: number) =>
  api<T>(path, { method: "POST", body: JSON.stringify(body), timeoutMs });
