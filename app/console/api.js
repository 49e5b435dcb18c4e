// The API, as the console calls it: same origin, JSON, the tab's API key
// (kept in sessionStorage, so it is gone with the tab) on every request.

const KEY = "session-backend.api-key";

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  forget: () => sessionStorage.removeItem(KEY),
};

/** A refused or failed call: the envelope's kind, message and request id. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail?.message ?? `the server answered ${status}`);
    this.status = status;
    this.kind = detail?.error ?? "Error";
    this.requestId = detail?.request_id;
  }
}

/** `path?query`, leaving out empty query values. */
export function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Calls the API; the parsed JSON answer, `null` for 204, or an ApiError. */
export async function call(method, path, { query, body } = {}) {
  const response = await send(method, url(path, query), body);
  if (response.status === 204) return null;
  return response.json();
}

/** The answer's bytes as a Blob (export). */
export async function download(path) {
  const response = await send("GET", path);
  return response.blob();
}

async function send(method, target, body) {
  const headers = { Accept: "application/json" };
  const apiKey = key.get();
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    // `cors` mode (fetch's default) sends this origin in `Origin`, which a
    // server with keys off checks; another mode would send `null`.
    response = await fetch(target, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, { error: "NetworkError", message: `the server could not be reached (${error.message})` });
  }
  if (!response.ok) {
    let detail;
    try {
      detail = (await response.json()).detail;
    } catch {
      detail = undefined;
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

// Relative to the page (`/ui/`), so the console also works behind a proxy
// that serves the service under a path prefix.
const V1 = "../api/v1";
const s = encodeURIComponent;

/** The calls the console makes, by what they are for. */
export const api = {
  sessions: (query) => call("GET", `${V1}/sessions`, { query }),
  session: (id) => call("GET", `${V1}/sessions/${s(id)}`),
  deleteSession: (id) => call("DELETE", `${V1}/sessions/${s(id)}`),
  fork: (id, body) => call("POST", `${V1}/sessions/${s(id)}/fork`, { body }),
  exportPath: (id) => `${V1}/sessions/${s(id)}/export`,
  agents: (id, page) => call("GET", `${V1}/sessions/${s(id)}/agents`, { query: { page, page_size: 100 } }),
  agent: (id, agent) => call("GET", `${V1}/sessions/${s(id)}/agents/${s(agent)}`),
  messages: (id, agent, offset, limit) =>
    call("GET", `${V1}/sessions/${s(id)}/agents/${s(agent)}/messages`, { query: { offset, limit } }),
  /** The newest messages before message `before` (all, when undefined), newest first. */
  newest: (id, agent, before, limit) =>
    call("GET", `${V1}/sessions/${s(id)}/agents/${s(agent)}/messages`,
      { query: { order: "desc", after_message_id: before, limit } }),
  multiAgents: (id, page) =>
    call("GET", `${V1}/sessions/${s(id)}/multi-agents`, { query: { page, page_size: 100 } }),
  keys: (prefix, startAfter, limit) =>
    call("GET", `${V1}/storage`, { query: { prefix, start_after: startAfter, limit } }),
  search: (q, prefix, limit) => call("GET", `${V1}/storage`, { query: { q, prefix, limit } }),
  // The whole key as one segment: a `.` segment in a key must not be
  // resolved away by the browser into another key.
  blob: async (key) => (await download(`${V1}/storage/${s(key)}`)).text(),
};
