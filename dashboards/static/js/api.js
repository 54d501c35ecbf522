// The REST client: every request the page makes goes through `request` (same origin, bearer token).

const TOKEN_KEY = "ffnas.token";
export const API = "/api/v1";

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token.trim());
}

export function clearToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/**
 * `ffnas up` prints a link with `?token=...`: keep the token, then strip it from the address
 * bar (and so from history and bookmarks) without a reload.
 */
export function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (!token) return false;
  setToken(token);
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  return true;
}

/** An HTTP error with the server's `detail` (a string, or FastAPI's list of field errors). */
export class ApiError extends Error {
  constructor(status, detail) {
    super(ApiError.describe(status, detail));
    this.status = status;
    this.detail = detail;
  }

  static describe(status, detail) {
    if (typeof detail === "string") return `${status}: ${detail}`;
    if (Array.isArray(detail)) {
      return `${status}: ${detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ")}`;
    }
    return `HTTP ${status}`;
  }

  /** FastAPI 422 entries, or [] for other errors. */
  get fieldErrors() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

export function authHeaders(extra = {}) {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
}

/** JSON request to the API; resolves to the parsed body, throws `ApiError` on 4xx/5xx. */
export async function request(path, { method = "GET", body, signal, headers } = {}) {
  const init = { method, signal, headers: authHeaders({ Accept: "application/json", ...headers }) };
  if (body !== undefined) {
    if (typeof body === "string") init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  const response = await fetch(API + path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("ffnas:unauthorized"));
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : text);
  }
  return data;
}

const enc = encodeURIComponent;

// The list endpoints are paged; 100 is their default `limit`, valid under any server's
// FFNAS_MAX_PAGE_SIZE. Read every page.
const PAGE = 100;

async function allPages(path, signal) {
  const data = [];
  let count = 0;
  do {
    const page = await request(`${path}?limit=${PAGE}&offset=${data.length}`, { signal });
    count = page.count;
    data.push(...page.data);
    if (!page.data.length) break;
  } while (data.length < count);
  return { data, count };
}

export const jobs = {
  list: (signal) => allPages("/jobs", signal),
  get: (id, signal) => request(`/jobs/${enc(id)}`, { signal }),
  create: (spec) => request("/jobs", { method: "POST", body: spec }),
  stop: (id) => request(`/jobs/${enc(id)}/stop`, { method: "POST" }),
  resume: (id) => request(`/jobs/${enc(id)}/resume`, { method: "POST" }),
  trials: (id, signal) => allPages(`/jobs/${enc(id)}/trials`, signal),
  pareto: (id, signal) => request(`/jobs/${enc(id)}/pareto`, { signal }),
  exportTrial: (id, number, format) =>
    request(`/jobs/${enc(id)}/trials/${enc(number)}/export?format=${enc(format)}`),
  eventsUrl: (id) => `${API}/jobs/${enc(id)}/events`,
  /** Every job of this token as a stream of `job` / `job-deleted` events. */
  allEventsUrl: () => `${API}/events`,
};

export const targets = {
  list: () => request("/targets"),
};
