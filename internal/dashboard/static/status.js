// The public status page of one monitor: /status/{slug}. It needs no
// session (cookies are not even sent) and refreshes itself every minute.

import { ago, percent, s, setState } from './dom.js';
import { recentStrip } from './charts.js';

const page = document.querySelector('[data-testid="status-page"]');
const name = document.querySelector('[data-testid="status-name"]');
const state = document.querySelector('[data-testid="status-state"]');
const uptime = document.querySelector('[data-testid="status-uptime"]');
const checked = document.querySelector('.status-checked');
const recent = document.querySelector('.status-recent');
const strip = document.querySelector('.status-strip');
const error = document.querySelector('.status-error');
const slug = decodeURIComponent(location.pathname.split('/')[2] || '');

let last = null;
const svg = s('svg', { class: 'chart-svg' });
strip.append(svg);

function showError(msg) {
  error.textContent = msg;
  error.hidden = !msg;
}

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
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
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
  resizeFrame = requestAnimationFrame(() => last?.recent?.length && recentStrip(svg, last.recent));
}).observe(strip);

if (await load()) setInterval(load, 60000);
