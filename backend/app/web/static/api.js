// The API client. The bearer token lives in memory (and the tab's sessionStorage, see
// auth.js) and travels only in the Authorization header, never in a URL.

let token = null;
let authLost = () => {};

export function setToken(value) { token = value; }
export function hasToken() { return token !== null; }

/** Called once per 401 (expired or revoked token) so the app can sign in again. */
export function onAuthLost(handler) { authLost = handler; }

/** An error response in the house shape {error, detail}, with its status and Retry-After. */
export class ApiError extends Error {
  constructor(status, body, headers) {
    super(body?.detail || `The server answered ${status}`);
    this.status = status;
    this.kind = body?.error || 'HTTPError';
    this.detail = body?.detail || '';
    const retryAfter = Number(headers?.get('Retry-After'));
    this.retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null;
  }

  /** The route itself is missing (an older server), not the thing it names. */
  get routeMissing() {
    return (this.status === 404 && this.detail === 'Not Found') || this.status === 405;
  }
}

/** fetch() with the token and JSON body; resolves to the Response, throws ApiError if not ok. */
export async function request(method, path, { json, headers = {}, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON: keep the status */ }
    const error = new ApiError(response.status, body, response.headers);
    if (response.status === 401 && token) authLost(error);
    throw error;
  }
  return response;
}

/** A JSON call: the parsed body, or null for 204. */
export async function call(method, path, options) {
  const response = await request(method, path, options);
  return response.status === 204 ? null : response.json();
}

/** Query string from an object, skipping null and undefined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
