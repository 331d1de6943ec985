// Calls to the dashboard server: /auth/* for the session, /api/* for the
// Beacon API (relayed with the session's token). The tokens live in HttpOnly
// cookies; this code never sees them.

// APIError carries the API's RFC 9457 problem document.
export class APIError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || (status ? `HTTP ${status}` : 'network error'));
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter || null;
  }
}

let unauthorized = () => {};

// onUnauthorized registers what to do when the session is over.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

const SAFE = new Set(['GET', 'HEAD']);

// request calls /api{path} and returns {status, data}.
export async function request(method, path, body, retried = false) {
  const headers = { Accept: 'application/json' };
  if (!SAFE.has(method)) headers['X-Requested-With'] = 'beacon';
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/api' + path, init);
  } catch {
    throw new APIError(0, { detail: 'The dashboard cannot be reached. Check your connection.' });
  }
  if (res.status === 401) {
    // The server renews an expired session only for requests it can replay
    // (no body). A GET renews it; then this request is worth one more try.
    if (!SAFE.has(method) && !retried) {
      const me = await fetch('/api/me', { credentials: 'same-origin', cache: 'no-store' }).catch(() => null);
      if (me?.ok) return request(method, path, body, true);
    }
    const problem = await problemOf(res);
    unauthorized();
    throw new APIError(401, problem);
  }
  if (!res.ok) {
    throw new APIError(res.status, await problemOf(res), res.headers.get('Retry-After'));
  }
  if (res.status === 204 || method === 'HEAD') return { status: res.status, data: null };
  return { status: res.status, data: await res.json() };
}

export async function get(path) {
  return (await request('GET', path)).data;
}

async function problemOf(res) {
  try {
    const p = await res.json();
    return typeof p === 'object' && p ? p : {};
  } catch {
    return { detail: `HTTP ${res.status} ${res.statusText}`.trim() };
  }
}

// login signs in; the server keeps the tokens. It resolves to
// {ok, status, error, retryAfter}.
export async function login(email, password) {
  let res;
  try {
    res = await fetch('/auth/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'beacon' },
      body: JSON.stringify({ email, password }),
    });
  } catch {
    return { ok: false, status: 0, error: 'The dashboard cannot be reached. Check your connection.' };
  }
  if (res.ok) return { ok: true, status: res.status };
  let error = '';
  try {
    error = (await res.json()).error || '';
  } catch {
    // not JSON: keep the generic message below
  }
  return { ok: false, status: res.status, error, retryAfter: res.headers.get('Retry-After') };
}

export async function logout() {
  try {
    await fetch('/auth/logout', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-Requested-With': 'beacon' },
    });
  } catch {
    // The UI signs out either way.
  }
}
