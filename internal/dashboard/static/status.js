// The public status page of one monitor: /status/{slug}. It needs no
// session (cookies are not even sent) and refreshes itself every minute.

import { ago, percent, s, setState } from './dom.js';
import { recentStrip } from './charts.js';
import { problemMessage, problemOf } from './api.js';

/**
 * A public status (GET /api/public/status/{slug}).
 * @typedef {object} PublicStatus
 * @property {string} name
 * @property {string} state
 * @property {string | null} [last_checked_at]
 * @property {number} [uptime_24h]
 * @property {number} [uptime_7d]
 * @property {import('./charts.js').RecentCheck[]} [recent]
 */

/**
 * @param {string} selector
 * @returns {HTMLElement}
 */
function el(selector) {
  const found = document.querySelector(selector);
  if (!(found instanceof HTMLElement)) throw new Error(`status.html has no ${selector}`);
  return found;
}

const page = el('[data-testid="status-page"]');
const name = el('[data-testid="status-name"]');
const state = el('[data-testid="status-state"]');
const uptime = el('[data-testid="status-uptime"]');
const checked = el('.status-checked');
const recent = el('.status-recent');
const strip = el('.status-strip');
const error = el('.status-error');
const slug = decodeURIComponent(location.pathname.split('/')[2] || '');

/** @type {PublicStatus | null} */
let last = null;
const svg = s('svg', { class: 'chart-svg' });
strip.append(svg);

/** @param {string} msg */
function showError(msg) {
  error.textContent = msg;
  error.hidden = !msg;
}

/** @param {PublicStatus} st */
function show(st) {
  last = st;
  document.title = `${st.name} status`;
  name.textContent = st.name;
  setState(state, st.state);
  checked.textContent = st.last_checked_at ? `last checked ${ago(st.last_checked_at)}` : 'not checked yet';
  const parts = [];
  if (st.uptime_24h !== undefined) parts.push(`${percent(st.uptime_24h)} uptime over 24 hours`);
  if (st.uptime_7d !== undefined) parts.push(`${percent(st.uptime_7d)} over 7 days`);
  uptime.textContent = parts.length ? parts.join(' · ') : 'No checks in the last 7 days';
  recent.hidden = !st.recent?.length;
  if (st.recent?.length) recentStrip(svg, st.recent);
}

async function load() {
  try {
    const res = await fetch(`/api/public/status/${encodeURIComponent(slug)}`, {
      credentials: 'omit', cache: 'no-store', headers: { Accept: 'application/json' },
    });
    if (res.status === 404 || res.status === 422) {
      name.textContent = 'Status page not found';
      document.title = 'Status page not found';
      uptime.textContent = '';
      showError('No monitor publishes a status page at this address.');
      return false;
    }
    if (!res.ok) throw new Error(problemMessage(res.status, await problemOf(res)));
    show(await res.json());
    showError('');
  } catch (err) {
    showError(`Could not refresh the status (${err.message}); retrying in a minute.`);
  } finally {
    page.setAttribute('aria-busy', 'false');
  }
  return true;
}

let resizeFrame = 0;
new ResizeObserver(() => {
  cancelAnimationFrame(resizeFrame);
  resizeFrame = requestAnimationFrame(() => {
    if (last?.recent?.length) recentStrip(svg, last.recent);
  });
}).observe(strip);

if (await load()) setInterval(load, 60000);
