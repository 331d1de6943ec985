// The public status page of one monitor: /status/{slug}. It needs no
// session (cookies are not even sent) and refreshes itself every minute.

import { ago, dateTime, h, percent, s, setState } from './dom.js';
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
 * @property {{id: number, state: string, opened_at: string, resolved_at?: string}[]} [incidents] open and recently resolved, newest first
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
const incidents = el('.status-incidents');
const incidentList = el('.status-incident-list');
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
  showIncidents(st.incidents || []);
}

/**
 * showIncidents lists the ongoing incidents, then the recent ones, with
 * their times; the section is hidden when there are none.
 * @param {NonNullable<PublicStatus['incidents']>} list
 */
function showIncidents(list) {
  const ongoing = list.filter((i) => i.state !== 'resolved');
  const past = list.filter((i) => i.state === 'resolved');
  /** @param {string} iso */
  const at = (iso) => h('time', { datetime: iso, title: dateTime(iso) }, `${dateTime(iso)} (${ago(iso)})`);
  incidentList.replaceChildren(
    ...ongoing.map((i) => h('li', { class: 'status-incident', dataset: { state: 'ongoing' }, testid: 'status-incident' },
      h('span', { class: 'state', dataset: { state: 'down' } }, 'ongoing'), ' since ', at(i.opened_at),
      i.state === 'acknowledged' ? h('span', { class: 'muted' }, ' · being worked on') : null)),
    ...past.map((i) => h('li', { class: 'status-incident', dataset: { state: 'resolved' }, testid: 'status-incident' },
      h('span', { class: 'state', dataset: { state: 'up' } }, 'resolved'), ' ', at(i.opened_at), ' to ',
      i.resolved_at ? at(i.resolved_at) : 'unknown')));
  incidents.hidden = list.length === 0;
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
