// Beacon dashboard: a hash-routed single-page app.
//   #/login  #/monitors  #/monitors/new  #/monitors/{id}  #/monitors/{id}/edit

import { h, s, ago, dateTime, shortDateTime, ms, percent, duration, stateBadge, setState } from './dom.js';
import * as API from './api.js';
import { latencyChart, uptimeChart } from './charts.js';
import { Live } from './live.js';

const main = document.getElementById('main');
const sessionBar = document.querySelector('.session');
const userEmail = document.querySelector('.user-email');
const riverLink = document.querySelector('.riverui-link');

const app = {
  user: null,
  booted: false,
  view: null, // {dispose, onEvent, onReconnect}
  afterLogin: null,
  range: '24h',
};

const live = new Live({
  indicator: document.querySelector('[data-testid="live-status"]'),
  onEvent: (ev) => app.view?.onEvent?.(ev),
  onReconnect: () => app.view?.onReconnect?.(),
  beforeConnect: async () => {
    try {
      await API.get('/me');
      return true;
    } catch (err) {
      return err.status !== 401;
    }
  },
});

// ---- Session.

API.onUnauthorized(() => signedOut());

function signedIn(user) {
  app.user = user;
  userEmail.textContent = user.email;
  riverLink.hidden = user.role !== 'admin';
  sessionBar.hidden = false;
  live.start();
}

// signedOut shows the sign-in page; after an expired session (remember) the
// user comes back to where they were.
function signedOut(remember = true) {
  const wasIn = app.user !== null;
  app.user = null;
  live.stop();
  sessionBar.hidden = true;
  if (!remember) app.afterLogin = null;
  if (wasIn || app.booted) go('#/login', remember);
}

async function logout() {
  await API.logout();
  signedOut(false);
}

// ---- Routing.

function parseRoute(hash) {
  const path = hash.replace(/^#/, '') || '/';
  let m;
  if (path === '/login') return { name: 'login' };
  if (path === '/' || path === '/monitors') return { name: 'monitors' };
  if (path === '/monitors/new') return { name: 'form', id: null };
  if ((m = path.match(/^\/monitors\/(\d+)$/))) return { name: 'detail', id: Number(m[1]) };
  if ((m = path.match(/^\/monitors\/(\d+)\/edit$/))) return { name: 'form', id: Number(m[1]) };
  return { name: 'notFound' };
}

// go navigates; remember keeps the current page to come back to after
// signing in.
function go(hash, remember = false) {
  if (remember && !location.hash.startsWith('#/login')) app.afterLogin = location.hash || null;
  if (location.hash === hash) render(true);
  else location.hash = hash;
}

const views = { login: loginView, monitors: monitorsView, detail: detailView, form: formView, notFound: notFoundView };

function render(moveFocus) {
  if (!app.booted) return;
  const route = parseRoute(location.hash);
  if (!app.user && route.name !== 'login') {
    go('#/login', true);
    return;
  }
  if (app.user && route.name === 'login') {
    go('#/monitors');
    return;
  }
  app.view?.dispose?.();
  app.view = null;
  main.replaceChildren();
  app.view = views[route.name](route) || null;
  if (moveFocus) {
    // Screen readers hear the new page; keyboard users start from its top.
    (main.querySelector('h1') || main).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

// Without the websocket the page would go stale: poll until it is back.
const POLL_MS = 15000;
setInterval(() => {
  if (app.user && !live.connected && document.visibilityState === 'visible') app.view?.poll?.();
}, POLL_MS);

async function boot() {
  window.addEventListener('hashchange', () => render(true));
  document.querySelector('[data-testid="logout"]').addEventListener('click', logout);
  let user = null;
  try {
    user = await API.get('/me');
  } catch (err) {
    if (err.status !== 401) {
      app.booted = true;
      main.replaceChildren(errorCard('Beacon is unreachable', err, () => location.reload()));
      return;
    }
  }
  app.booted = true;
  if (user) signedIn(user);
  if (!location.hash) history.replaceState(null, '', '#/monitors');
  render(false);
}

// ---- Shared pieces.

// refocus puts focus on the page heading when rebuilding the page took it
// away (a removed element loses focus to <body>).
function refocus(root) {
  if (document.activeElement === document.body) root.querySelector('h1')?.focus({ preventScroll: true });
}

function errorCard(title, err, retry) {
  return h('div', { class: 'card error-card', role: 'alert' },
    h('h1', { tabindex: -1 }, title),
    h('p', {}, err.message || String(err)),
    retry && h('button', { type: 'button', class: 'button', onclick: retry }, 'Try again'));
}

let fieldSeq = 0;

// field wraps a control with its label, an optional hint and an error slot
// linked through aria-describedby.
function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errEl = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const describe = () => {
    const ids = [hintEl?.id, errEl.hidden ? null : errEl.id].filter(Boolean);
    if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
    else control.removeAttribute('aria-describedby');
  };
  describe();
  const isCheck = control.type === 'checkbox';
  const wrap = isCheck
    ? h('div', { class: 'field check' }, h('label', { for: id }, control, ' ', label), hintEl, errEl)
    : h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, errEl);
  return {
    wrap,
    control,
    setError(msg) {
      errEl.textContent = msg || '';
      errEl.hidden = !msg;
      if (msg) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
      describe();
    },
  };
}

// ---- Login.

function loginView() {
  document.title = 'Sign in · Beacon';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, testid: 'login-email', spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, testid: 'login-password' });
  const error = h('p', { class: 'form-error', testid: 'login-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'button primary wide', testid: 'login-submit' }, 'Sign in');
  const showError = (msg) => {
    error.textContent = msg;
    error.hidden = !msg;
  };

  const form = h('form', { class: 'card login', novalidate: true },
    h('h1', { tabindex: -1 }, 'Sign in to Beacon'),
    field('Email', email).wrap,
    field('Password', password).wrap,
    error,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!email.value.trim() || !password.value) {
      showError('Enter your email and password.');
      (email.value.trim() ? password : email).focus();
      return;
    }
    showError('');
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    const res = await API.login(email.value.trim(), password.value);
    if (res.ok) {
      try {
        signedIn(await API.get('/me'));
        const next = app.afterLogin && !app.afterLogin.startsWith('#/login') ? app.afterLogin : '#/monitors';
        app.afterLogin = null;
        go(next);
        return;
      } catch (err) {
        res.error = err.message;
      }
    }
    submit.disabled = false;
    submit.textContent = 'Sign in';
    if (res.status === 401) {
      showError('Invalid email or password.');
      password.select();
    } else if (res.status === 429) {
      const secs = Number(res.retryAfter);
      const wait = secs > 0 ? ` Try again in ${secs < 120 ? `${secs} seconds` : `${Math.ceil(secs / 60)} minutes`}.` : ' Try again later.';
      showError('Too many failed sign-ins.' + wait);
    } else {
      showError(res.error ? `Sign-in failed: ${res.error}` : 'Sign-in failed. Try again.');
    }
  });
  main.append(h('div', { class: 'login-wrap' }, form));
  if (!email.value) email.focus();
  return null;
}

// ---- Monitor list.

function monitorsView() {
  document.title = 'Monitors · Beacon';
  const list = h('ul', { class: 'monitor-list', testid: 'monitor-list', role: 'list' });
  const counts = h('p', { class: 'counts', 'aria-live': 'polite' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading monitors…');
  const more = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load more');
  const rows = new Map();
  let cursor = '';

  main.append(
    h('div', { class: 'page-head' },
      h('h1', { tabindex: -1 }, 'Monitors'),
      h('button', { type: 'button', class: 'button primary', testid: 'new-monitor', onclick: () => go('#/monitors/new') }, 'New monitor')),
    counts, status, list, more);

  function updateCounts() {
    const n = { up: 0, down: 0, unknown: 0 };
    for (const r of rows.values()) n[r.li.dataset.state]++;
    counts.replaceChildren(
      h('span', { class: 'count up' }, `${n.up} up`), ' · ',
      h('span', { class: 'count down' }, `${n.down} down`), ' · ',
      h('span', { class: 'count unknown' }, `${n.unknown} unknown`));
    counts.hidden = rows.size === 0;
  }

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
    rows.set(m.id, { li, badge, checked, at: m.last_checked_at });
    return li;
  }

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
      if (page.items.some((m) => !rows.has(m.id))) {
        load(true);
        return;
      }
      for (const m of page.items) update(m.id, m.state, m.last_checked_at);
      updateCounts();
    } catch {
      // the next poll or event tries again
    }
  }

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

// ---- Monitor detail.

// Each range picks a bucket that gives 60 to 168 points.
const RANGES = {
  '1h': { label: 'Last hour', span: 3600e3, bucket: '1m', bucketMs: 60e3 },
  '24h': { label: 'Last 24 hours', span: 86400e3, bucket: '15m', bucketMs: 900e3 },
  '7d': { label: 'Last 7 days', span: 7 * 86400e3, bucket: '1h', bucketMs: 3600e3 },
  '30d': { label: 'Last 30 days', span: 30 * 86400e3, bucket: '6h', bucketMs: 6 * 3600e3 },
};

// window returns [from, to) ending with the bucket that holds now: the API
// aligns buckets on the epoch, so every bucket drawn is a whole one.
function rangeWindow(key) {
  const r = RANGES[key];
  const to = Math.ceil((Date.now() + 1) / r.bucketMs) * r.bucketMs;
  return { from: to - r.span, to };
}

const MAX_ROWS = 300;

function detailView({ id }) {
  document.title = 'Monitor · Beacon';
  const root = h('section', { class: 'detail', testid: 'monitor-detail', 'aria-busy': 'true' },
    h('p', { class: 'back' }, h('a', { href: '#/monitors' }, '← Monitors')),
    h('h1', { tabindex: -1 }, 'Loading…'));
  main.append(root);

  let monitor = null;
  let stats = null;
  let win = rangeWindow(app.range);
  let disposed = false;
  let statsTimer = null;
  let resultsCursor = '';
  const shown = new Set();

  const badge = stateBadge('unknown', 'monitor-state');
  const checkMsg = h('p', { class: 'check-msg', role: 'status' });
  const runBtn = h('button', { type: 'button', class: 'button primary', testid: 'run-check' }, 'Run check');
  const latencySvg = s('svg', { testid: 'latency-chart', class: 'chart-svg' });
  const uptimeSvg = s('svg', { testid: 'uptime-chart', class: 'chart-svg' });
  const summary = h('dl', { class: 'summary' });
  const select = h('select', { testid: 'range-select', id: 'range-select' },
    Object.entries(RANGES).map(([k, r]) => h('option', { value: k, selected: k === app.range }, `${r.label}`)));
  const tbody = h('tbody');
  const noResults = h('p', { class: 'muted', hidden: true }, 'No checks yet.');
  const olderBtn = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load older checks');

  function draw() {
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
    win = rangeWindow(app.range);
    const r = RANGES[app.range];
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

  function resultRow(r) {
    const st = r.ok ? 'up' : 'down';
    return h('tr', { testid: 'result-row', dataset: { resultId: r.id, ok: r.ok } },
      h('td', {}, h('time', { datetime: r.checked_at, title: dateTime(r.checked_at) }, shortDateTime(r.checked_at))),
      h('td', {}, stateBadge(st)),
      h('td', {}, r.status_code ? String(r.status_code) : '–'),
      h('td', { class: 'num' }, ms(r.duration_ms)),
      h('td', { class: 'err' }, r.error_kind ? `${r.error_kind}${r.error ? `: ${r.error}` : ''}` : ''));
  }

  function addResult(r, atTop) {
    if (shown.has(r.id)) return;
    shown.add(r.id);
    if (atTop) tbody.prepend(resultRow(r));
    else tbody.append(resultRow(r));
    noResults.hidden = true;
    // A page left open keeps receiving results: keep the newest only (the
    // older ones are a reload away).
    if (atTop && tbody.rows.length > MAX_ROWS) {
      while (tbody.rows.length > MAX_ROWS) {
        shown.delete(Number(tbody.lastElementChild.dataset.resultId));
        tbody.lastElementChild.remove();
      }
      resultsCursor = '';
      olderBtn.hidden = true;
    }
  }

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
      noResults.hidden = shown.size > 0;
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
        checkMsg.textContent = `Check finished: ${r.ok ? 'up' : 'down'} in ${ms(r.duration_ms)}${r.status_code ? ` (HTTP ${r.status_code})` : ''}${r.error_kind ? `, ${r.error_kind}` : ''}.`;
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
    if (!window.confirm(`Delete monitor “${monitor.name}” and all its results?`)) return;
    try {
      await API.request('DELETE', `/monitors/${id}`);
      go('#/monitors');
    } catch (err) {
      checkMsg.textContent = `Could not delete: ${err.message}`;
    }
  }

  function build(m) {
    document.title = `${m.name} · Beacon`;
    setState(badge, m.state);
    const dl = (term, ...desc) => h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
    const chartsCard = h('section', { class: 'card', 'aria-labelledby': 'charts-h' },
      h('div', { class: 'card-head' },
        h('h2', { id: 'charts-h' }, 'Latency and uptime'),
        h('div', { class: 'range' }, h('label', { for: 'range-select' }, 'Range'), select)),
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
    const table = h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-labelledby': 'results-h' },
      h('table', { class: 'results', testid: 'results-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Result'), h('th', { scope: 'col' }, 'HTTP'),
          h('th', { scope: 'col', class: 'num' }, 'Duration'), h('th', { scope: 'col' }, 'Error'))),
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
    app.range = select.value;
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
    if (disposed) return;
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

// ---- Create and edit.

const FIELD_NAMES = {
  name: 'Name', url: 'URL', method: 'Method', interval_seconds: 'Interval', timeout_ms: 'Timeout',
  expected_status: 'Expected status', enabled: 'Enabled', public_slug: 'Status page slug',
};

function formView({ id }) {
  const editing = id !== null;
  document.title = `${editing ? 'Edit monitor' : 'New monitor'} · Beacon`;
  const heading = h('h1', { tabindex: -1 }, editing ? 'Edit monitor' : 'New monitor');
  const back = h('p', { class: 'back' }, h('a', { href: editing ? `#/monitors/${id}` : '#/monitors' }, editing ? '← Monitor' : '← Monitors'));
  main.append(back, heading);
  let disposed = false;

  const f = {
    name: field('Name', h('input', { type: 'text', testid: 'monitor-name', maxlength: 200, autocomplete: 'off' })),
    url: field('URL', h('input', { type: 'url', testid: 'monitor-url', inputmode: 'url', spellcheck: 'false' }), 'A full http or https URL, without credentials'),
    method: field('Method', h('select', { testid: 'monitor-method' }, ['GET', 'HEAD', 'POST'].map((v) => h('option', { value: v }, v)))),
    interval_seconds: field('Interval (seconds)', h('input', { type: 'number', testid: 'monitor-interval', min: 10, max: 86400, step: 1, inputmode: 'numeric' }), '10 to 86400'),
    timeout_ms: field('Timeout (milliseconds)', h('input', { type: 'number', testid: 'monitor-timeout', min: 100, max: 60000, step: 1, inputmode: 'numeric' }), '100 to 60000, shorter than the interval'),
    expected_status: field('Expected status codes', h('input', { type: 'text', testid: 'monitor-expected', placeholder: '200, 204', spellcheck: 'false' }), 'Comma-separated; empty means any 2xx'),
    enabled: field('Check on schedule', h('input', { type: 'checkbox', testid: 'monitor-enabled' })),
    public_slug: field('Status page slug', h('input', { type: 'text', testid: 'monitor-slug', spellcheck: 'false', autocomplete: 'off', placeholder: 'my-service' }), 'Publishes a public page at /status/<slug>; empty keeps it private'),
  };
  const formError = h('div', { class: 'form-error', testid: 'form-error', role: 'alert', tabindex: -1, hidden: true });
  const save = h('button', { type: 'submit', class: 'button primary', testid: 'monitor-save' }, editing ? 'Save changes' : 'Create monitor');
  const form = h('form', { class: 'card monitor-form', novalidate: true },
    formError,
    f.name.wrap, f.url.wrap,
    h('div', { class: 'row3' }, f.method.wrap, f.interval_seconds.wrap, f.timeout_ms.wrap),
    f.expected_status.wrap, f.public_slug.wrap, f.enabled.wrap,
    h('div', { class: 'actions' }, save, h('a', { class: 'button subtle', href: editing ? `#/monitors/${id}` : '#/monitors' }, 'Cancel')));

  function fill(m) {
    f.name.control.value = m.name ?? '';
    f.url.control.value = m.url ?? '';
    f.method.control.value = m.method || 'GET';
    f.interval_seconds.control.value = m.interval_seconds ?? 60;
    f.timeout_ms.control.value = m.timeout_ms ?? 5000;
    f.expected_status.control.value = (m.expected_status || []).join(', ');
    f.enabled.control.checked = m.enabled ?? true;
    f.public_slug.control.value = m.public_slug ?? '';
  }

  function showErrors(detail, errors) {
    for (const x of Object.values(f)) x.setError('');
    const items = [];
    let first = null;
    for (const e of errors) {
      const key = String(e.location || '').replace(/^body\./, '').split(/[.[]/)[0];
      const target = f[key];
      const msg = e.message || 'is invalid';
      if (target) {
        target.setError(msg);
        first ||= target.control;
        items.push(h('li', {}, `${FIELD_NAMES[key]}: ${msg}`));
      } else {
        items.push(h('li', {}, e.location ? `${e.location}: ${msg}` : msg));
      }
    }
    formError.replaceChildren(
      h('p', {}, detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : 'The monitor could not be saved.'),
      items.length ? h('ul', {}, items) : null);
    formError.hidden = false;
    (first || formError).focus();
  }

  function collect() {
    const errors = [];
    const body = {
      name: f.name.control.value.trim(),
      url: f.url.control.value.trim(),
      method: f.method.control.value,
      enabled: f.enabled.control.checked,
    };
    for (const key of ['interval_seconds', 'timeout_ms']) {
      const c = f[key].control;
      if (c.validity.badInput || (c.value !== '' && !Number.isInteger(Number(c.value)))) {
        errors.push({ location: `body.${key}`, message: 'must be a whole number' });
      } else if (c.value !== '') {
        body[key] = Number(c.value);
      }
    }
    const raw = f.expected_status.control.value.trim();
    const codes = raw ? raw.split(/[\s,]+/).filter(Boolean) : [];
    if (codes.some((c) => !/^\d{3}$/.test(c))) {
      errors.push({ location: 'body.expected_status', message: 'must be three-digit status codes separated by commas' });
    }
    if (codes.length || editing) body.expected_status = codes.map(Number);
    const slug = f.public_slug.control.value.trim();
    if (slug || editing) body.public_slug = slug; // "" unpublishes
    return { body, errors };
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const { body, errors } = collect();
    if (errors.length) {
      showErrors('Some fields need attention.', errors);
      return;
    }
    save.disabled = true;
    const label = save.textContent;
    save.textContent = 'Saving…';
    try {
      const { data } = editing
        ? await API.request('PATCH', `/monitors/${id}`, body)
        : await API.request('POST', '/monitors', body);
      go(`#/monitors/${data.id}`);
    } catch (err) {
      if (disposed || err.status === 401) return;
      showErrors(err.problem?.detail || err.message, err.problem?.errors || []);
    } finally {
      save.disabled = false;
      save.textContent = label;
    }
  });

  if (editing) {
    const loading = h('p', { class: 'muted', role: 'status' }, 'Loading…');
    main.append(loading);
    API.get(`/monitors/${id}`).then((m) => {
      if (disposed) return;
      fill(m);
      loading.replaceWith(form);
    }, (err) => {
      if (disposed || err.status === 401) return;
      loading.replaceWith(errorCard(err.status === 404 ? 'Monitor not found' : 'Could not load the monitor', err, null));
    });
  } else {
    fill({});
    main.append(form);
  }
  return { dispose: () => { disposed = true; } };
}

function notFoundView() {
  document.title = 'Not found · Beacon';
  main.append(h('div', { class: 'card' },
    h('h1', { tabindex: -1 }, 'Page not found'),
    h('p', {}, h('a', { href: '#/monitors' }, 'Back to the monitors'))));
  return null;
}

boot();
