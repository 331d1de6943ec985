// The monitor list: #/monitors. Rows follow live events in place.

import * as API from './api.js';
import { h, ago, duration, stateBadge, setState } from './dom.js';

/**
 * A monitor as the API returns it (the fields the dashboard reads).
 * @typedef {object} Monitor
 * @property {number} id
 * @property {string} name
 * @property {string} url
 * @property {string} method
 * @property {number} interval_seconds
 * @property {number} timeout_ms
 * @property {number[]} [expected_status]
 * @property {boolean} enabled
 * @property {string} [public_slug]
 * @property {string} state "up", "down" or "unknown"
 * @property {string | null} [last_checked_at]
 * @property {string} created_at
 */

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {import('./ui.js').View}
 */
export function monitorsView({ main, go }) {
  document.title = 'Monitors · Beacon';
  const list = h('ul', { class: 'monitor-list', testid: 'monitor-list', role: 'list' });
  const counts = h('p', { class: 'counts', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading monitors…');
  const more = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load more');
  /** @type {Map<number, {li: HTMLElement, badge: HTMLElement, checked: HTMLTimeElement, at: string | null}>} */
  const rows = new Map();
  let cursor = '';

  main.append(
    h('div', { class: 'page-head' },
      h('h1', { tabindex: -1 }, 'Monitors'),
      h('button', { type: 'button', class: 'button primary', testid: 'new-monitor', onclick: () => go('#/monitors/new') }, 'New monitor')),
    counts, status, list, more);

  function updateCounts() {
    /** @type {Record<string, number>} */
    const n = { up: 0, down: 0, unknown: 0 };
    for (const r of rows.values()) n[r.li.dataset.state || 'unknown']++;
    counts.replaceChildren(
      h('span', { class: 'count up' }, `${n.up} up`), ' · ',
      h('span', { class: 'count down' }, `${n.down} down`), ' · ',
      h('span', { class: 'count unknown' }, `${n.unknown} unknown`));
    counts.hidden = rows.size === 0;
  }

  /** @param {Monitor} m */
  function row(m) {
    const badge = stateBadge(m.state);
    const checked = h('time', { datetime: m.last_checked_at || '' }, m.last_checked_at ? `checked ${ago(m.last_checked_at)}` : 'not checked yet');
    const li = h('li', { class: 'monitor-row', testid: 'monitor-row', dataset: { state: badge.dataset.state, monitorId: m.id } },
      badge,
      h('div', { class: 'monitor-main' },
        h('a', { class: 'monitor-link', testid: 'monitor-link', href: `#/monitors/${m.id}` }, m.name),
        h('span', { class: 'monitor-url' }, m.url)),
      h('div', { class: 'monitor-meta' },
        !m.enabled && h('span', { class: 'pill' }, 'paused'),
        h('span', {}, `${m.method} every ${duration(m.interval_seconds)}`),
        checked));
    rows.set(m.id, { li, badge, checked, at: m.last_checked_at || null });
    return li;
  }

  /** @param {boolean} reset */
  async function load(reset) {
    try {
      if (reset) cursor = '';
      const page = await API.get(`/monitors?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (reset) {
        rows.clear();
        list.replaceChildren();
      }
      list.append(...page.items.map(row));
      cursor = page.next_cursor || '';
      more.hidden = !cursor;
      if (rows.size === 0) {
        status.replaceChildren('No monitors yet. ', h('a', { href: '#/monitors/new' }, 'Create your first monitor'), '.');
      } else {
        status.replaceChildren();
      }
      updateCounts();
    } catch (err) {
      if (err.status !== 401) status.replaceChildren(h('span', { class: 'inline-error' }, `Could not load monitors: ${err.message}`));
    }
  }
  // refresh updates the rows in place (focus and scroll stay put); a
  // monitor it has not seen means the list changed: reload it.
  async function refresh() {
    try {
      const page = await API.get('/monitors?limit=100');
      if (page.items.some((/** @type {Monitor} */ m) => !rows.has(m.id))) {
        load(true);
        return;
      }
      for (const m of page.items) update(m.id, m.state, m.last_checked_at);
      updateCounts();
    } catch {
      // the next poll or event tries again
    }
  }

  /**
   * @param {number} id
   * @param {string | undefined} state
   * @param {string | undefined} checkedAt
   */
  function update(id, state, checkedAt) {
    const r = rows.get(id);
    if (!r) return;
    if (state) {
      setState(r.badge, state);
      r.li.dataset.state = r.badge.dataset.state;
    }
    if (checkedAt) {
      r.at = checkedAt;
      r.checked.dateTime = checkedAt;
      r.checked.textContent = `checked ${ago(checkedAt)}`;
    }
  }

  more.addEventListener('click', () => load(false));
  load(true);

  // Relative times go stale; refresh them twice a minute.
  const tick = setInterval(() => {
    for (const r of rows.values()) if (r.at) r.checked.textContent = `checked ${ago(r.at)}`;
  }, 30000);

  return {
    dispose: () => clearInterval(tick),
    onReconnect: refresh,
    poll: refresh,
    onEvent(ev) {
      if (ev.type !== 'check_result' || !rows.has(ev.monitor_id)) return;
      update(ev.monitor_id, ev.state || (ev.result ? (ev.result.ok ? 'up' : 'down') : undefined), ev.result?.checked_at);
      updateCounts();
    },
  };
}
