// The incident list: #/incidents. Active incidents (open or acknowledged)
// first, then resolved ones; the websocket's incident events move, add and
// update rows in place.

import * as API from './api.js';
import { h, ago } from './dom.js';

/**
 * An incident as the API returns it.
 * @typedef {object} Incident
 * @property {number} id
 * @property {number} monitor_id
 * @property {string} monitor_name
 * @property {string} state open, acknowledged or resolved
 * @property {string} [cause]
 * @property {string} opened_at
 * @property {string} [acknowledged_at]
 * @property {string} [resolved_at]
 * @property {string} [resolution] recovered or manual
 * @property {number} [workflow_id] the confirmation workflow
 */

/**
 * incidentChip shows an incident's state: colour, a symbol (CSS) and the word.
 * @param {string} state
 * @param {string} [testid]
 */
export function incidentChip(state, testid) {
  return h('span', { class: 'chip', testid, dataset: { state: `incident-${state}` } }, state);
}

/**
 * @param {Incident} inc
 * @returns {string}
 */
export function incidentTimes(inc) {
  if (inc.state === 'resolved' && inc.resolved_at) {
    return `resolved ${ago(inc.resolved_at)}${inc.resolution ? ` (${inc.resolution})` : ''}`;
  }
  if (inc.state === 'acknowledged' && inc.acknowledged_at) return `opened ${ago(inc.opened_at)}, acknowledged ${ago(inc.acknowledged_at)}`;
  return `opened ${ago(inc.opened_at)}`;
}

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {import('./ui.js').View}
 */
export function incidentsView({ main }) {
  document.title = 'Incidents · Beacon';
  let disposed = false;
  let cursor = '';
  /** @type {Map<number, {li: HTMLElement, inc: Incident}>} */
  const rows = new Map();

  const active = h('ul', { class: 'monitor-list', testid: 'incidents-active', role: 'list', 'aria-labelledby': 'active-h' });
  const resolved = h('ul', { class: 'monitor-list', testid: 'incidents-resolved', role: 'list', 'aria-labelledby': 'resolved-h' });
  const noActive = h('p', { class: 'muted', testid: 'no-active-incidents' }, 'No active incidents.');
  const noResolved = h('p', { class: 'muted' }, 'None yet.');
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading incidents…');
  const more = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load older');

  main.append(
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Incidents')),
    h('p', { class: 'hint' }, 'A monitor that goes down is re-checked; a confirmed outage opens an incident and notifies your ',
      h('a', { href: '#/channels' }, 'channels'), '.'),
    status,
    h('section', { 'aria-labelledby': 'active-h' }, h('h2', { id: 'active-h' }, 'Active'), noActive, active),
    h('section', { 'aria-labelledby': 'resolved-h' }, h('h2', { id: 'resolved-h' }, 'Resolved'), noResolved, resolved, more));

  /** @param {Incident} inc */
  function rowBody(inc) {
    return [
      incidentChip(inc.state),
      h('div', { class: 'monitor-main' },
        h('a', { class: 'monitor-link', testid: 'incident-link', href: `#/incidents/${inc.id}` }, inc.monitor_name || `Monitor ${inc.monitor_id}`),
        h('span', { class: 'monitor-url' }, inc.cause || '')),
      h('div', { class: 'monitor-meta' }, h('time', { datetime: inc.opened_at }, incidentTimes(inc))),
    ];
  }

  /**
   * put adds or updates an incident's row, in its section: active ones by
   * opening time, newest first; a newly resolved one goes on top of the
   * resolved.
   * @param {Incident} inc
   */
  function put(inc) {
    let r = rows.get(inc.id);
    if (!r) {
      r = { li: h('li', { class: 'monitor-row incident-row', testid: 'incident-row' }), inc };
      rows.set(inc.id, r);
    }
    r.inc = inc;
    r.li.dataset.state = inc.state;
    r.li.dataset.incidentId = String(inc.id);
    r.li.replaceChildren(...rowBody(inc));
    const target = inc.state === 'resolved' ? resolved : active;
    if (r.li.parentElement !== target) {
      if (inc.state === 'resolved') target.prepend(r.li);
      else {
        const after = [...target.children].find((li) => {
          const other = rows.get(Number(/** @type {HTMLElement} */ (li).dataset.incidentId));
          return other && other.inc.opened_at < inc.opened_at;
        });
        target.insertBefore(r.li, after || null);
      }
    }
    empties();
  }

  function empties() {
    noActive.hidden = active.children.length > 0;
    noResolved.hidden = resolved.children.length > 0;
  }

  async function loadActive() {
    const page = await API.get('/incidents?state=active&limit=200');
    if (disposed) return;
    for (const inc of page.items) put(inc);
  }

  /** @param {boolean} reset */
  async function loadResolved(reset) {
    const page = await API.get(`/incidents?state=resolved&limit=50${!reset && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (disposed) return;
    for (const inc of page.items) put(inc);
    cursor = page.next_cursor || '';
    more.hidden = !cursor;
  }

  async function load() {
    try {
      await Promise.all([loadActive(), loadResolved(true)]);
      if (disposed) return;
      status.replaceChildren();
      status.hidden = true;
    } catch (err) {
      if (disposed || err.status === 401) return;
      status.hidden = false;
      status.replaceChildren(h('span', { class: 'inline-error', testid: 'incidents-error' },
        err.status === 404 ? 'This server does not track incidents yet.' : `Could not load incidents: ${err.message}`));
    }
    empties();
  }

  more.addEventListener('click', () => loadResolved(false).catch((err) => {
    if (!disposed && err.status !== 401) status.replaceChildren(h('span', { class: 'inline-error' }, `Could not load incidents: ${err.message}`));
  }));
  load();

  // Relative times go stale; refresh them twice a minute.
  const tick = setInterval(() => {
    for (const r of rows.values()) r.li.replaceChildren(...rowBody(r.inc));
  }, 30000);

  // Missed events: the active ones are fetched again (what resolved
  // meanwhile is moved by its fresh state on the next load).
  const catchUp = () => {
    loadActive().catch(() => {});
    loadResolved(true).catch(() => {});
  };

  return {
    dispose() {
      disposed = true;
      clearInterval(tick);
    },
    onReconnect: catchUp,
    poll: catchUp,
    onEvent(ev) {
      if (ev.type === 'incident' && ev.incident && typeof ev.incident.id === 'number') put(ev.incident);
    },
  };
}
