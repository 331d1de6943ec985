// Beacon dashboard: a hash-routed single-page app. This module is the
// shell (session, routing, live updates); each view is a module of its own.
//   #/login  #/monitors  #/monitors/new  #/monitors/{id}  #/monitors/{id}/edit
//   #/incidents  #/incidents/{id}  #/workflows  #/workflows/{id}  #/channels

import * as API from './api.js';
import { Live } from './live.js';
import { h } from './dom.js';
import { errorCard, throttle } from './ui.js';
import { loginView } from './view-login.js';
import { monitorsView } from './view-monitors.js';
import { monitorView } from './view-monitor.js';
import { monitorFormView } from './view-monitor-form.js';
import { notFoundView } from './view-not-found.js';
import { workflowsView } from './view-workflows.js';
import { workflowView } from './view-workflow.js';
import { incidentsView } from './view-incidents.js';
import { incidentView } from './view-incident.js';
import { channelsView } from './view-channels.js';

/** @typedef {import('./ui.js').Shell} Shell */
/** @typedef {import('./ui.js').User} User */
/** @typedef {import('./ui.js').View} View */

/**
 * @param {string} selector
 * @returns {HTMLElement}
 */
function el(selector) {
  const found = document.querySelector(selector);
  if (!(found instanceof HTMLElement)) throw new Error(`index.html has no ${selector}`);
  return found;
}

const main = el('#main');
const sessionBar = el('.session');
const userEmail = el('.user-email');
const riverLink = el('.riverui-link');
const nav = el('.nav');
const incidentBadge = el('[data-testid="nav-incidents-count"]');

/** @type {import('./ui.js').AppState} */
const state = {
  user: null,
  afterLogin: null,
  next: nextPage(),
  range: null,
};
let booted = false;
/** @type {View | null} */
let view = null;

/** @type {Shell} */
const shell = { main, state, go, render, signedIn };

/**
 * nextPage is the River UI page the server sent the browser from to sign
 * in (/?next=/riverui/...#/login). Only River UI paths are followed, so the
 * parameter cannot send anyone off-site.
 * @returns {string | null}
 */
function nextPage() {
  const next = new URLSearchParams(location.search).get('next');
  return next && /^\/riverui\/[^\\\s]*$/.test(next) ? next : null;
}

// ---- The nav's count of active incidents (open or acknowledged), kept by
// the shell so every view shows it; incident events recount, at most once a
// second.

// The API's largest page: beyond it the badge says "200+".
const COUNT_LIMIT = 200;

const countIncidents = throttle(async () => {
  if (!state.user) return;
  try {
    const page = await API.get(`/incidents?state=active&limit=${COUNT_LIMIT}`);
    const n = page.items.length;
    incidentBadge.replaceChildren(page.next_cursor ? `${n}+` : String(n), h('span', { class: 'sr-only' }, ' active'));
    incidentBadge.title = `${n}${page.next_cursor ? ' or more' : ''} active incident${n === 1 ? '' : 's'}`;
    incidentBadge.hidden = n === 0;
  } catch {
    // A server without incidents (404) or a blip: no badge until the next event.
    incidentBadge.hidden = true;
  }
}, 1000);

const live = new Live({
  indicator: el('[data-testid="live-status"]'),
  onEvent: (/** @type {any} */ ev) => {
    if (ev.type === 'incident') countIncidents.run();
    view?.onEvent?.(ev);
  },
  onReconnect: () => {
    countIncidents.run();
    view?.onReconnect?.();
  },
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

/** @param {User} user */
function signedIn(user) {
  state.user = user;
  userEmail.textContent = user.email;
  riverLink.hidden = user.role !== 'admin';
  sessionBar.hidden = false;
  nav.hidden = false;
  live.start();
  countIncidents.run();
}

/**
 * signedOut shows the sign-in page; after an expired session (remember) the
 * user comes back to where they were.
 * @param {boolean} [remember]
 */
function signedOut(remember = true) {
  const wasIn = state.user !== null;
  state.user = null;
  live.stop();
  sessionBar.hidden = true;
  nav.hidden = true;
  incidentBadge.hidden = true;
  if (!remember) state.afterLogin = null;
  if (wasIn || booted) go('#/login', remember);
}

async function logout() {
  await API.logout();
  signedOut(false);
}

// ---- Routing.

/**
 * @typedef {{name: 'login' | 'monitors' | 'notFound' | 'incidents' | 'workflows' | 'channels'} |
 *   {name: 'detail' | 'form' | 'incident' | 'workflow', id: number | null}} Route
 */

/**
 * @param {string} hash
 * @returns {Route}
 */
function parseRoute(hash) {
  const path = hash.replace(/^#/, '') || '/';
  let m;
  if (path === '/login') return { name: 'login' };
  if (path === '/' || path === '/monitors') return { name: 'monitors' };
  if (path === '/monitors/new') return { name: 'form', id: null };
  if ((m = path.match(/^\/monitors\/(\d+)$/))) return { name: 'detail', id: Number(m[1]) };
  if ((m = path.match(/^\/monitors\/(\d+)\/edit$/))) return { name: 'form', id: Number(m[1]) };
  if (path === '/incidents') return { name: 'incidents' };
  if ((m = path.match(/^\/incidents\/(\d+)$/))) return { name: 'incident', id: Number(m[1]) };
  if (path === '/workflows') return { name: 'workflows' };
  if ((m = path.match(/^\/workflows\/(\d+)$/))) return { name: 'workflow', id: Number(m[1]) };
  if (path === '/channels') return { name: 'channels' };
  return { name: 'notFound' };
}

/**
 * go navigates; remember keeps the current page to come back to after
 * signing in.
 * @param {string} hash
 * @param {boolean} [remember]
 */
function go(hash, remember = false) {
  if (remember && !location.hash.startsWith('#/login')) state.afterLogin = location.hash || null;
  if (location.hash === hash) render(true);
  else location.hash = hash;
}

/**
 * @param {Route} route
 * @returns {View | null}
 */
function show(route) {
  switch (route.name) {
    case 'login':
      return loginView(shell);
    case 'monitors':
      return monitorsView(shell);
    case 'detail':
      return monitorView(shell, /** @type {number} */ (route.id));
    case 'form':
      return monitorFormView(shell, route.id);
    case 'incidents':
      return incidentsView(shell);
    case 'incident':
      return incidentView(shell, /** @type {number} */ (route.id));
    case 'workflows':
      return workflowsView(shell);
    case 'workflow':
      return workflowView(shell, /** @type {number} */ (route.id));
    case 'channels':
      return channelsView(shell);
    default:
      return notFoundView(shell);
  }
}

// The nav link of the current section says so (aria-current).
/** @type {Record<string, string>} */
const SECTION = {
  monitors: 'monitors', detail: 'monitors', form: 'monitors', incidents: 'incidents', incident: 'incidents',
  workflows: 'workflows', workflow: 'workflows', channels: 'channels',
};

/** @param {string} name */
function markNav(name) {
  for (const a of nav.querySelectorAll('a[data-section]')) {
    if (a instanceof HTMLElement && a.dataset.section === SECTION[name]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** @param {boolean} moveFocus */
function render(moveFocus) {
  if (!booted) return;
  const route = parseRoute(location.hash);
  if (!state.user && route.name !== 'login') {
    go('#/login', true);
    return;
  }
  if (state.user && route.name === 'login') {
    go('#/monitors');
    return;
  }
  view?.dispose?.();
  view = null;
  main.replaceChildren();
  markNav(route.name);
  view = show(route);
  if (moveFocus) {
    // Screen readers hear the new page; keyboard users start from its top.
    (main.querySelector('h1') || main).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

// Without the websocket the page would go stale: poll until it is back.
const POLL_MS = 15000;
setInterval(() => {
  if (state.user && !live.connected && document.visibilityState === 'visible') {
    countIncidents.run();
    view?.poll?.();
  }
}, POLL_MS);

async function boot() {
  window.addEventListener('hashchange', () => render(true));
  el('[data-testid="logout"]').addEventListener('click', logout);
  let user = null;
  try {
    user = await API.get('/me');
  } catch (err) {
    if (err.status !== 401) {
      booted = true;
      main.replaceChildren(errorCard('Beacon is unreachable', err, () => location.reload()));
      return;
    }
  }
  if (user && state.next) {
    // Signed in meanwhile (another tab): straight back to River UI.
    location.replace(state.next);
    return;
  }
  booted = true;
  if (user) signedIn(user);
  if (!location.hash) history.replaceState(null, '', '#/monitors');
  render(false);
}

boot();
