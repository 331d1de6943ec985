// Calls to the dashboard server: /auth/* for the session, /api/* for the
// Beacon API (relayed with the session's token). The tokens live in HttpOnly
// cookies; this code never sees them. Every refusal, the dashboard's or the
// API's, is an RFC 9457 problem document, read by problemOf alone.

/**
 * An RFC 9457 problem document as Beacon writes it (huma adds errors).
 * @typedef {object} Problem
 * @property {string} [type]
 * @property {string} [title]
 * @property {number} [status]
 * @property {string} [detail]
 * @property {{location?: string, message?: string, value?: unknown}[]} [errors]
 */

const OFFLINE = 'The dashboard cannot be reached. Check your connection.';

// APIError carries the problem document of a refused call.
export class APIError extends Error {
  /**
   * @param {number} status 0 when the server could not be reached
   * @param {Problem} [problem]
   * @param {string | null} [retryAfter] the Retry-After header
   */
  constructor(status, problem, retryAfter) {
    super(problemMessage(status, problem));
    this.status = status;
    /** @type {Problem} */
    this.problem = problem || {};
    this.retryAfter = retryAfter || null;
  }
}

/**
 * problemMessage is the sentence to show for a problem: its detail, else
 * its title, else the status.
 * @param {number} status
 * @param {Problem} [problem]
 */
export function problemMessage(status, problem) {
  return problem?.detail || problem?.title || (status ? `HTTP ${status}` : 'network error');
}

/**
 * problemOf reads a refused response's problem document; a body that is not
 * one (a proxy's HTML page) becomes a problem with the status line.
 * @param {Response} res
 * @returns {Promise<Problem>}
 */
export async function problemOf(res) {
  const fallback = { status: res.status, detail: `HTTP ${res.status} ${res.statusText}`.trim() };
  try {
    const p = await res.json();
    return typeof p === 'object' && p !== null && !Array.isArray(p) ? { ...fallback, ...p } : fallback;
  } catch {
    return fallback;
  }
}

let unauthorized = () => {};

/**
 * onUnauthorized registers what to do when the session is over.
 * @param {() => void} fn
 */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

const SAFE = new Set(['GET', 'HEAD']);

/**
 * request calls /api{path} and returns {status, data}; a refusal throws an
 * APIError.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @param {boolean} [retried]
 * @returns {Promise<{status: number, data: any}>}
 */
export async function request(method, path, body, retried = false) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (!SAFE.has(method)) headers['X-Requested-With'] = 'beacon';
  /** @type {RequestInit} */
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/api' + path, init);
  } catch {
    throw new APIError(0, { detail: OFFLINE });
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

/**
 * get returns the data of GET /api{path}.
 * @param {string} path
 * @returns {Promise<any>}
 */
export async function get(path) {
  return (await request('GET', path)).data;
}

/**
 * login signs in; the server keeps the tokens.
 * @param {string} email
 * @param {string} password
 * @returns {Promise<{ok: boolean, status: number, error?: string, retryAfter?: string | null}>}
 */
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
    return { ok: false, status: 0, error: OFFLINE };
  }
  if (res.ok) return { ok: true, status: res.status };
  const problem = await problemOf(res);
  return { ok: false, status: res.status, error: problem.detail || '', retryAfter: res.headers.get('Retry-After') };
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
