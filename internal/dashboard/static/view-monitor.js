// A monitor's page: #/monitors/{id}. Charts of the stats endpoint, the
// newest results, and live updates over the shell's websocket.

import * as API from './api.js';
import { h, s, dateTime, shortDateTime, ms, percent, duration, stateBadge, setState } from './dom.js';
import { latencyChart, uptimeChart } from './charts.js';
import { errorCard, refocus } from './ui.js';

/** @typedef {import('./view-monitors.js').Monitor} Monitor */
/** @typedef {import('./charts.js').Stats} Stats */

/**
 * A check result as the API returns it.
 * @typedef {object} Result
 * @property {number} id
 * @property {string} checked_at
 * @property {boolean} ok
 * @property {number | null} [status_code]
 * @property {number} duration_ms
 * @property {string} [error_kind] timeout, dns, connect, tls, refused (by the outbound policy), ...
 * @property {string} [error]
 */

/** @typedef {{label: string, span: number, bucket: string, bucketMs: number}} Range */

// Each range picks a bucket that gives 60 to 168 points.
/** @type {Record<string, Range>} */
export const RANGES = {
  '1h': { label: 'Last hour', span: 3600e3, bucket: '1m', bucketMs: 60e3 },
  '24h': { label: 'Last 24 hours', span: 86400e3, bucket: '15m', bucketMs: 900e3 },
  '7d': { label: 'Last 7 days', span: 7 * 86400e3, bucket: '1h', bucketMs: 3600e3 },
  '30d': { label: 'Last 30 days', span: 30 * 86400e3, bucket: '6h', bucketMs: 6 * 3600e3 },
};

/**
 * rangeFor chooses the range from the age of a monitor's data: the
 * shortest range that holds all of it, so a new monitor's first checks
 * fill a chart of minutes, not two dots at the edge of a day.
 * @param {string | undefined} createdAt
 * @param {number} [now]
 * @returns {string} a key of RANGES
 */
export function rangeFor(createdAt, now = Date.now()) {
  const age = now - Date.parse(createdAt || '');
  if (!(age >= 0)) return '24h';
  for (const [key, r] of Object.entries(RANGES)) if (age <= r.span) return key;
  return '30d';
}

// A chart drawn from the data's start spans at least this many buckets.
const MIN_BUCKETS = 10;

/**
 * rangeWindow returns [from, to) ending with the bucket that holds now: the
 * API aligns buckets on the epoch, so every bucket drawn is a whole one.
 * Given since (the data's start, when the range was chosen from its age),
 * the window starts at the data instead, and spans at least MIN_BUCKETS:
 * a young monitor's chart fills from the left as its checks come in,
 * rather than gathering a few points at the right edge.
 * @param {string} key
 * @param {number | null} [since]
 * @param {number} [now]
 */
export function rangeWindow(key, since = null, now = Date.now()) {
  const r = RANGES[key];
  const end = Math.ceil((now + 1) / r.bucketMs) * r.bucketMs;
  if (since !== null && Number.isFinite(since) && since > end - r.span) {
    const from = Math.floor(since / r.bucketMs) * r.bucketMs;
    return { from, to: Math.max(end, from + MIN_BUCKETS * r.bucketMs) };
  }
  return { from: end - r.span, to: end };
}

const MAX_ROWS = 300;

/**
 * @param {import('./ui.js').Shell} shell
 * @param {number} id
 * @returns {import('./ui.js').View}
 */
export function monitorView({ main, state, go, render }, id) {
  document.title = 'Monitor · Beacon';
  const root = h('section', { class: 'detail', testid: 'monitor-detail', 'aria-busy': 'true' },
    h('p', { class: 'back' }, h('a', { href: '#/monitors' }, '← Monitors')),
    h('h1', { tabindex: -1 }, 'Loading…'));
  main.append(root);

  /** @type {Monitor | null} */
  let monitor = null;
  /** @type {Stats | null} */
  let stats = null;
  // The user's choice, else (once the monitor is loaded) its data's age.
  let range = state.range || '24h';
  /** @type {number | null} the data's start while the range follows it */
  let since = null;
  let win = rangeWindow(range);
  let disposed = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let statsTimer;
  let resultsCursor = '';
  /** @type {Set<number>} */
  const shown = new Set();

  const badge = stateBadge('unknown', 'monitor-state');
  const checkMsg = h('p', { class: 'check-msg', role: 'status' });
  const runBtn = h('button', { type: 'button', class: 'button primary', testid: 'run-check' }, 'Run check');
  const latencySvg = s('svg', { testid: 'latency-chart', class: 'chart-svg' });
  const uptimeSvg = s('svg', { testid: 'uptime-chart', class: 'chart-svg' });
  const summary = h('dl', { class: 'summary' });
  const select = h('select', { testid: 'range-select', id: 'range-select' },
    Object.entries(RANGES).map(([k, r]) => h('option', { value: k, selected: k === range }, `${r.label}`)));
  const rangeNote = h('span', { class: 'muted', testid: 'range-note', hidden: true }, 'since it was created');
  const tbody = h('tbody');
  const noResults = h('p', { class: 'muted', hidden: true, testid: 'no-results' }, 'No checks yet.');
  // Shown while the newest check was refused by the outbound policy: its
  // error names the setting that allows the destination.
  const refused = h('p', { class: 'notice', role: 'note', testid: 'refused-notice', hidden: true });
  const olderBtn = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load older checks');

  function draw() {
    // Says so when the window starts at the monitor's creation rather
    // than spanning the range's label.
    rangeNote.hidden = win.to - win.from >= RANGES[range].span;
    latencyChart(latencySvg, stats, win.from, win.to);
    uptimeChart(uptimeSvg, stats, win.from, win.to);
    const b = stats?.buckets || [];
    const worst = b.length ? Math.max(...b.map((x) => x.p95_ms)) : null;
    summary.replaceChildren(
      h('div', {}, h('dt', {}, 'Uptime'), h('dd', {}, stats?.uptime !== undefined ? percent(stats.uptime) : '–')),
      h('div', {}, h('dt', {}, 'Checks'), h('dd', {}, String(stats?.checks ?? 0))),
      h('div', {}, h('dt', {}, 'Worst p95'), h('dd', {}, worst === null ? '–' : ms(worst))));
  }

  async function loadStats() {
    win = rangeWindow(range, since);
    const r = RANGES[range];
    const q = `from=${encodeURIComponent(new Date(win.from).toISOString())}&to=${encodeURIComponent(new Date(win.to).toISOString())}&bucket=${r.bucket}`;
    try {
      const st = await API.get(`/monitors/${id}/stats?${q}`);
      if (disposed) return;
      stats = st;
      draw();
    } catch (err) {
      if (!disposed && err.status !== 401) checkMsg.textContent = `Could not load statistics: ${err.message}`;
    }
  }

  // Live results arrive in bursts; one stats query covers a burst.
  function refreshStatsSoon() {
    clearTimeout(statsTimer);
    statsTimer = setTimeout(loadStats, 400);
  }

  /** @param {Result} r */
  function resultRow(r) {
    const st = r.ok ? 'up' : 'down';
    return h('tr', { testid: 'result-row', dataset: { resultId: r.id, ok: r.ok } },
      h('td', {}, h('time', { datetime: r.checked_at, title: dateTime(r.checked_at) }, shortDateTime(r.checked_at))),
      h('td', {}, stateBadge(st)),
      h('td', {}, r.status_code ? String(r.status_code) : '–'),
      h('td', { class: 'num' }, ms(r.duration_ms)),
      h('td', { class: 'err' }, r.error_kind ? `${r.error_kind}${r.error ? `: ${r.error}` : ''}` : ''));
  }

  // The table is shown once it has rows: an empty one is only headers.
  /** @type {HTMLElement | null} */
  let table = null;
  function showEmpty() {
    const empty = shown.size === 0;
    noResults.hidden = !empty;
    if (table) table.hidden = empty;
  }

  /**
   * noteRefusal shows, while the newest check was refused by the outbound
   * policy, what the API said (it names BEACON_CHECK_ALLOW_CIDRS).
   * @param {Result | undefined} newest
   */
  function noteRefusal(newest) {
    if (!newest) return;
    if (newest.error_kind !== 'refused') {
      refused.hidden = true;
      return;
    }
    const detail = newest.error || 'destination refused by policy';
    refused.textContent = `The last check was refused: ${detail}.` +
      (detail.includes('BEACON_CHECK_ALLOW_CIDRS') ? '' : ' An operator may allow private ranges with BEACON_CHECK_ALLOW_CIDRS.');
    refused.hidden = false;
  }

  /**
   * @param {Result} r
   * @param {boolean} atTop a new result (else an older page)
   */
  function addResult(r, atTop) {
    if (shown.has(r.id)) return;
    shown.add(r.id);
    if (atTop) tbody.prepend(resultRow(r));
    else tbody.append(resultRow(r));
    if (atTop || shown.size === 1) noteRefusal(r);
    showEmpty();
    // A page left open keeps receiving results: keep the newest only (the
    // older ones are a reload away).
    if (atTop && tbody.rows.length > MAX_ROWS) {
      while (tbody.rows.length > MAX_ROWS) {
        const last = /** @type {HTMLElement} */ (tbody.lastElementChild);
        shown.delete(Number(last.dataset.resultId));
        last.remove();
      }
      resultsCursor = '';
      olderBtn.hidden = true;
    }
  }

  /** @param {boolean} reset */
  async function loadResults(reset) {
    // The newest checks whatever the range (retention is 30 days by default).
    const from = new Date(Date.now() - 31 * 86400e3).toISOString();
    try {
      const page = await API.get(`/monitors/${id}/results?limit=50&from=${encodeURIComponent(from)}${!reset && resultsCursor ? `&cursor=${encodeURIComponent(resultsCursor)}` : ''}`);
      if (disposed) return;
      if (reset) {
        shown.clear();
        tbody.replaceChildren();
      }
      for (const r of page.items) addResult(r, false);
      resultsCursor = page.next_cursor || '';
      olderBtn.hidden = !resultsCursor;
      showEmpty();
    } catch (err) {
      if (!disposed && err.status !== 401) checkMsg.textContent = `Could not load results: ${err.message}`;
    }
  }

  // catchUp brings the page up to date after missed events: newer results
  // go on top (the newest page holds nothing older than what is shown).
  async function catchUp() {
    try {
      const [m, page] = await Promise.all([
        API.get(`/monitors/${id}`),
        API.get(`/monitors/${id}/results?limit=50&from=${encodeURIComponent(new Date(Date.now() - 31 * 86400e3).toISOString())}`),
      ]);
      if (disposed) return;
      setState(badge, m.state);
      for (const r of [...page.items].reverse()) addResult(r, true);
    } catch {
      // the next poll or event tries again
    }
    loadStats();
  }

  async function runCheck() {
    runBtn.disabled = true;
    runBtn.textContent = 'Checking…';
    checkMsg.textContent = 'Running a check…';
    try {
      const { status, data } = await API.request('POST', `/monitors/${id}/checks?wait=10`);
      if (disposed) return;
      if (status === 200 && data.result) {
        const r = data.result;
        addResult(r, true);
        setState(badge, r.ok ? 'up' : 'down');
        checkMsg.textContent = `Check finished: ${r.ok ? 'up' : 'down'} in ${ms(r.duration_ms)}` +
          `${r.status_code ? ` (HTTP ${r.status_code})` : ''}` +
          // A refusal's detail is in the notice below.
          `${r.error_kind ? `, ${r.error_kind}${r.error && r.error_kind !== 'refused' ? `: ${r.error}` : ''}` : ''}.`;
        refreshStatsSoon();
      } else {
        checkMsg.textContent = `Check queued (job ${data.job_id}, ${data.state}); its result will appear here.`;
      }
    } catch (err) {
      if (!disposed) checkMsg.textContent = `Could not run a check: ${err.message}`;
    } finally {
      runBtn.disabled = false;
      runBtn.textContent = 'Run check';
    }
  }

  async function remove() {
    if (!monitor) return;
    if (!window.confirm(`Delete monitor “${monitor.name}” and all its results?`)) return;
    try {
      await API.request('DELETE', `/monitors/${id}`);
      go('#/monitors');
    } catch (err) {
      checkMsg.textContent = `Could not delete: ${err.message}`;
    }
  }

  /** @param {Monitor} m */
  function build(m) {
    document.title = `${m.name} · Beacon`;
    setState(badge, m.state);
    /**
     * @param {string} term
     * @param {...import('./dom.js').Child} desc
     */
    const dl = (term, ...desc) => h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
    const chartsCard = h('section', { class: 'card', 'aria-labelledby': 'charts-h' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'charts-h' }, 'Latency and uptime'),
        h('div', { class: 'range' }, h('label', { for: 'range-select' }, 'Range'), select, rangeNote)),
      summary,
      h('figure', { class: 'chart' }, latencySvg,
        h('figcaption', { class: 'legend' },
          h('span', { class: 'key key-p50' }, 'p50 (median)'),
          h('span', { class: 'key key-p95' }, 'p95'),
          h('span', { class: 'muted' }, 'response time per bucket'))),
      h('figure', { class: 'chart' }, uptimeSvg,
        h('figcaption', { class: 'legend' },
          h('span', { class: 'key key-ok' }, 'all up'),
          h('span', { class: 'key key-partial' }, 'some failures'),
          h('span', { class: 'key key-bad' }, 'all down'),
          h('span', { class: 'key key-none' }, 'no checks'))));
    table = h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-labelledby': 'results-h', hidden: shown.size === 0 },
      h('table', { class: 'results', testid: 'results-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Result'), h('th', { scope: 'col' }, 'HTTP'),
          h('th', { scope: 'col', class: 'num' }, 'Duration'), h('th', { scope: 'col', class: 'err' }, 'Error'))),
        tbody));

    root.replaceChildren(
      h('p', { class: 'back' }, h('a', { href: '#/monitors' }, '← Monitors')),
      h('div', { class: 'page-head' },
        h('div', { class: 'title-line' }, h('h1', { tabindex: -1 }, m.name), badge),
        h('div', { class: 'actions' },
          runBtn,
          h('a', { class: 'button', href: `#/monitors/${id}/edit`, testid: 'edit-monitor' }, 'Edit'),
          h('button', { type: 'button', class: 'button danger', onclick: remove }, 'Delete'))),
      checkMsg,
      refused,
      h('dl', { class: 'facts' },
        h('div', { class: 'span-all' }, h('dt', {}, 'URL'), h('dd', {}, h('span', { class: 'monitor-url' }, m.url))),
        dl('Method', m.method),
        dl('Every', duration(m.interval_seconds)),
        dl('Timeout', `${m.timeout_ms} ms`),
        dl('Up when', m.expected_status?.length ? `HTTP ${m.expected_status.join(', ')}` : 'HTTP 2xx'),
        dl('Schedule', m.enabled ? 'enabled' : 'paused'),
        dl('Status page', m.public_slug
          ? h('a', { href: `/status/${encodeURIComponent(m.public_slug)}`, testid: 'public-link' }, `/status/${m.public_slug}`)
          : 'not published')),
      chartsCard,
      h('section', { class: 'card', 'aria-labelledby': 'results-h' },
        h('h2', { id: 'results-h' }, 'Recent checks'),
        table, noResults, olderBtn));
    root.setAttribute('aria-busy', 'false');
    refocus(root);
  }

  runBtn.addEventListener('click', runCheck);
  olderBtn.addEventListener('click', () => loadResults(false));
  select.addEventListener('change', () => {
    state.range = select.value;
    range = select.value;
    since = null;
    loadStats();
  });

  // Redraw at the new width when the layout changes.
  let frameReq = 0;
  const resize = new ResizeObserver(() => {
    cancelAnimationFrame(frameReq);
    frameReq = requestAnimationFrame(() => stats && draw());
  });

  (async () => {
    try {
      monitor = await API.get(`/monitors/${id}`);
    } catch (err) {
      if (disposed || err.status === 401) return;
      root.replaceChildren(errorCard(err.status === 404 ? 'Monitor not found' : 'Could not load the monitor', err,
        err.status === 404 ? null : () => render(false)));
      refocus(root);
      return;
    }
    if (disposed || !monitor) return;
    if (!state.range) {
      range = rangeFor(monitor.created_at);
      since = Date.parse(monitor.created_at);
      select.value = range;
      win = rangeWindow(range, since);
    }
    build(monitor);
    draw();
    resize.observe(root);
    await Promise.all([loadStats(), loadResults(true)]);
  })();

  // Keep the sliding window current even without live events.
  const tick = setInterval(loadStats, 60000);

  return {
    dispose() {
      disposed = true;
      clearInterval(tick);
      clearTimeout(statsTimer);
      resize.disconnect();
    },
    onReconnect: catchUp,
    poll: catchUp,
    onEvent(ev) {
      if (ev.type !== 'check_result' || ev.monitor_id !== id || !monitor) return;
      if (ev.state) setState(badge, ev.state);
      if (ev.result) addResult(ev.result, true);
      refreshStatsSoon();
    },
  };
}

