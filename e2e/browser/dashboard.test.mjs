// Browser tests of the Beacon dashboard, the API's Swagger UI and River UI,
// in Debian's Chromium driven by playwright-core. scripts/browser-test.sh
// starts PostgreSQL and `beacon all`, then runs this file with
// BEACON_API_URL and BEACON_DASHBOARD_URL set. The check target is served
// here, on 127.0.0.1, so nothing leaves the machine.
//
// The tests run in order and share state (the signed-in page, the monitor);
// a test whose prerequisite failed fails at once, naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const API = trimSlash(mustEnv('BEACON_API_URL'));
const DASH = trimSlash(mustEnv('BEACON_DASHBOARD_URL'));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ADMIN_EMAIL = 'admin@beacon.local';
const ADMIN_PASSWORD = 'beacon-dev-password';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = path.join(process.env.BEACON_TEST_RESULTS || path.join(ROOT, 'test-results'), 'screenshots');

const LIVE_MS = 20_000; // live events and scheduled checks
const UI_MS = 15_000; // ordinary UI waits
const SLOW_PAGE_MS = 60_000; // a heavy page (Swagger UI) on a busy machine
const TEST_MS = 150_000; // whole test

const run = crypto.randomBytes(4).toString('hex');
const slug = `e2e-${run}`;

// What the tests share, in order.
const s = {
  browser: null,
  target: null, // { url, hits: Map<path, count> }
  ctx: null, // the admin's context
  page: null, // the admin's page
  loggedIn: false,
  monitorID: null, // created through the form
  monitorName: `E2E form ${run}`,
  pageErrors: [],
};

function mustEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/browser-test.sh)`);
  return v;
}

function trimSlash(u) {
  return u.replace(/\/+$/, '');
}

function need(cond, what) {
  assert.ok(cond, `skipped for a failed prerequisite: ${what}`);
}

let shotN = 0;
async function shot(page, name) {
  shotN += 1;
  const file = path.join(SHOTS, `${String(shotN).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function newContext(opts = {}) {
  const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  ctx.setDefaultTimeout(UI_MS);
  ctx.setDefaultNavigationTimeout(UI_MS);
  return ctx;
}

function watchErrors(page, label) {
  page.on('pageerror', (err) => s.pageErrors.push(`${label}: ${err.message}`));
}

// The dashboard's API proxy from the page's origin, with its cookies: unsafe
// methods need X-Requested-With.
async function apiCall(page, method, p, body) {
  return page.evaluate(
    async ({ method, p, body }) => {
      const res = await fetch(p, {
        method,
        headers: {
          'X-Requested-With': 'beacon',
          Accept: 'application/json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: res.status, text, json };
    },
    { method, p, body },
  );
}

async function login(page, email, password) {
  await page.goto(`${DASH}/`);
  await page.getByTestId('login-email').fill(email);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

// The monitor list is shown (it may be empty, and an empty <ul> has no box).
async function onMonitorList(page) {
  await page.getByTestId('monitor-list').waitFor({ state: 'attached' });
  await page.getByTestId('new-monitor').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/monitors$/);
}

async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // Only this file's screenshots (NN-name.png): newcomer.test.mjs keeps its own.
  for (const f of fs.readdirSync(SHOTS)) if (/^\d{2}-.*\.png$/.test(f)) fs.rmSync(path.join(SHOTS, f));

  // The check target: 200 on every path, counting hits per path.
  const hits = new Map();
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    hits.set(p, (hits.get(p) || 0) + 1);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.target = { server, hits, url: `http://127.0.0.1:${server.address().port}` };

  // playwright gives every launch a fresh temporary --user-data-dir.
  s.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  s.ctx = await newContext();
  s.page = await s.ctx.newPage();
  watchErrors(s.page, 'admin page');
});

after(async () => {
  await s.browser?.close();
  await new Promise((resolve) => (s.target ? s.target.server.close(resolve) : resolve()));
});

test('a. login: a wrong password is refused, the right one lands on the monitor list', { timeout: TEST_MS }, async () => {
  const page = s.page;
  await page.goto(`${DASH}/`);
  await page.getByTestId('login-email').waitFor();
  await shot(page, 'login');

  await login(page, ADMIN_EMAIL, 'not-the-password');
  await assert.doesNotReject(page.getByTestId('login-error').waitFor({ state: 'visible' }), 'login-error not shown');
  assert.match(await page.getByTestId('login-error').innerText(), /\S/, 'login-error is empty');
  await shot(page, 'login-error');
  assert.equal(await page.getByTestId('new-monitor').count(), 0, 'monitor list shown after a wrong password');

  await login(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await onMonitorList(page);
  assert.equal(await page.getByTestId('login-error').isVisible(), false, 'login-error still visible after signing in');
  const cookies = await s.ctx.cookies(DASH);
  const at = cookies.find((c) => c.name === 'beacon_at');
  assert.ok(at, 'no beacon_at cookie');
  assert.equal(at.httpOnly, true, 'beacon_at is not HttpOnly');
  assert.equal(at.sameSite, 'Strict', 'beacon_at is not SameSite=Strict');
  assert.equal(await page.evaluate(() => document.cookie.includes('beacon_at')), false, 'token readable from JS');
  const me = await apiCall(page, 'GET', '/api/me');
  assert.equal(me.status, 200, `/api/me: ${me.status} ${me.text}`);
  assert.equal(me.json?.email, ADMIN_EMAIL);
  await shot(page, 'monitors-empty');
  s.loggedIn = true;
});

test('b. create a monitor through the form; it is in the list', { timeout: TEST_MS }, async () => {
  need(s.loggedIn, 'a. login');
  const page = s.page;
  await page.getByTestId('new-monitor').click();
  await page.getByTestId('monitor-name').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/monitors\/new$/);

  // Submitting an empty form shows the API's (or the form's) error.
  await page.getByTestId('monitor-name').fill('');
  await page.getByTestId('monitor-url').fill('');
  await page.getByTestId('monitor-save').click();
  const invalid = await page.evaluate(() => [...document.querySelectorAll('form :invalid')].length);
  if (invalid === 0) {
    // No browser-side validation stopped it: the API's problem must show.
    await page.getByTestId('form-error').waitFor({ state: 'visible' });
    assert.match(await page.getByTestId('form-error').innerText(), /\S/);
  }
  await shot(page, 'monitor-form-error');

  await page.getByTestId('monitor-name').fill(s.monitorName);
  await page.getByTestId('monitor-url').fill(`${s.target.url}/form`);
  await page.getByTestId('monitor-method').selectOption('GET');
  await page.getByTestId('monitor-interval').fill('10');
  await page.getByTestId('monitor-timeout').fill('2000');
  await page.getByTestId('monitor-expected').fill('200');
  // Disabled: only "run check" checks it, so the live result in test c can
  // come from nowhere else. The scheduler is covered by a second monitor.
  await page.getByTestId('monitor-enabled').setChecked(false);
  await page.getByTestId('monitor-slug').fill(slug);
  await shot(page, 'monitor-form');
  await page.getByTestId('monitor-save').click();

  // Wherever the form goes after saving, the list has the monitor.
  await page.waitForFunction(() => !location.hash.endsWith('/new'), null, { timeout: UI_MS }).catch(() => {});
  const err = page.getByTestId('form-error');
  if (await err.isVisible()) assert.fail(`form-error after saving: ${await err.innerText()}`);
  await page.goto(`${DASH}/#/monitors`);
  const row = page.getByTestId('monitor-row').filter({ hasText: s.monitorName });
  await row.waitFor({ state: 'visible' });
  assert.equal(await row.count(), 1);
  const id = await row.getAttribute('data-monitor-id');
  assert.match(id ?? '', /^\d+$/, `data-monitor-id = ${id}`);
  assert.equal(await row.getAttribute('data-state'), 'unknown');
  await assert.doesNotReject(row.getByTestId('monitor-link').waitFor(), 'row has no monitor-link');
  s.monitorID = Number(id);

  const m = await apiCall(page, 'GET', `/api/monitors/${id}`);
  assert.equal(m.status, 200, m.text);
  assert.equal(m.json.url, `${s.target.url}/form`);
  assert.equal(m.json.interval_seconds, 10);
  assert.equal(m.json.timeout_ms, 2000);
  assert.deepEqual(m.json.expected_status, [200]);
  assert.equal(m.json.enabled, false);
  assert.equal(m.json.public_slug, slug);
  await shot(page, 'monitor-list');
});

test('c. detail: run-check result arrives live, without a reload', { timeout: TEST_MS }, async () => {
  need(s.monitorID, 'b. create a monitor');
  const page = s.page;
  await page
    .getByTestId('monitor-row')
    .filter({ hasText: s.monitorName })
    .getByTestId('monitor-link')
    .click();
  await page.getByTestId('monitor-detail').waitFor({ state: 'visible' });
  assert.match(page.url(), new RegExp(`#/monitors/${s.monitorID}$`));
  await page.locator('[data-testid="live-status"][data-connected="true"]').waitFor({ timeout: LIVE_MS });

  const rows = page.getByTestId('result-row');
  const p50 = page.locator('[data-testid="latency-chart"] path[data-series="p50"]');
  const p95 = page.locator('[data-testid="latency-chart"] path[data-series="p95"]');
  assert.equal(await p50.count(), 1, 'latency-chart has no p50 path');
  assert.equal(await p95.count(), 1, 'latency-chart has no p95 path');
  assert.equal(await rows.count(), 0, 'results before any check');
  assert.equal(((await p50.getAttribute('d')) ?? '').trim(), '', 'p50 drawn before any check');
  assert.equal((await page.getByTestId('monitor-state').innerText()).trim().toLowerCase(), 'unknown');
  assert.equal(await page.getByTestId('public-link').getAttribute('href'), `/status/${slug}`);
  assert.deepEqual(
    await page.getByTestId('range-select').locator('option').evaluateAll((os) => os.map((o) => o.value || o.textContent.trim())),
    ['1h', '24h', '7d', '30d'],
  );
  await shot(page, 'monitor-detail-empty');

  await page.evaluate(() => {
    window.__noReload = true;
  });
  const hitsBefore = s.target.hits.get('/form') || 0;
  const urlBefore = page.url();
  const posted = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/api/monitors/${s.monitorID}/checks`,
  );
  await page.getByTestId('run-check').click();
  const res = await posted;
  assert.ok([200, 202].includes(res.status()), `run-check answered ${res.status()}`);

  await rows.first().waitFor({ state: 'visible', timeout: LIVE_MS });
  await page.waitForFunction(
    () => (document.querySelector('[data-testid="latency-chart"] path[data-series="p50"]')?.getAttribute('d') || '').trim() !== '',
    null,
    { timeout: LIVE_MS },
  );
  await page.waitForFunction(
    () => document.querySelector('[data-testid="monitor-state"]')?.textContent.trim().toLowerCase() === 'up',
    null,
    { timeout: LIVE_MS },
  );
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded');
  assert.equal(page.url(), urlBefore);
  assert.ok((s.target.hits.get('/form') || 0) > hitsBefore, 'the target was not requested');
  assert.equal(await page.locator('[data-testid="uptime-chart"] rect[data-bucket]').count() > 0, true, 'uptime-chart has no bucket');
  assert.equal(await page.locator('[data-testid="live-status"]').getAttribute('data-connected'), 'true');
  await shot(page, 'monitor-detail-live');
});

test('c. a scheduled check of an API-created monitor arrives within 20 s', { timeout: TEST_MS }, async () => {
  need(s.loggedIn, 'a. login');
  const page = s.page;
  const name = `E2E scheduled ${run}`;
  const created = await apiCall(page, 'POST', '/api/monitors', {
    name,
    url: `${s.target.url}/scheduled`,
    interval_seconds: 10,
    timeout_ms: 2000,
  });
  assert.equal(created.status, 201, `POST /api/monitors: ${created.status} ${created.text}`);
  const id = created.json.id;
  assert.equal(created.json.enabled, true);

  // Without X-Requested-With the proxy refuses unsafe methods (CSRF).
  const csrf = await page.evaluate(async () => {
    const r = await fetch('/api/monitors', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'csrf', url: 'http://127.0.0.1:9/' }),
    });
    return r.status;
  });
  assert.equal(csrf, 403, 'a POST without X-Requested-With was not refused');

  await page.goto(`${DASH}/#/monitors`);
  await page.locator(`[data-testid="monitor-row"][data-monitor-id="${id}"]`).waitFor();
  await page.evaluate(() => {
    window.__noReload = true;
  });
  const results = await waitFor(
    async () => {
      const r = await apiCall(page, 'GET', `/api/monitors/${id}/results`);
      const items = Array.isArray(r.json) ? r.json : r.json?.items;
      return r.status === 200 && items?.length > 0 ? items : null;
    },
    LIVE_MS,
    'a scheduled result',
  );
  assert.equal(results[0].ok, true, JSON.stringify(results[0]));
  assert.ok((s.target.hits.get('/scheduled') || 0) > 0, 'the target was not requested');
  // The list row follows live.
  await page.locator(`[data-testid="monitor-row"][data-monitor-id="${id}"][data-state="up"]`).waitFor({ timeout: LIVE_MS });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded');
  await shot(page, 'monitor-list-scheduled');
});

test('d. the public status page needs no sign-in', { timeout: TEST_MS }, async () => {
  need(s.monitorID, 'b. create a monitor');
  const ctx = await newContext();
  try {
    const page = await ctx.newPage();
    watchErrors(page, 'status page');
    const res = await page.goto(`${DASH}/status/${slug}`);
    assert.equal(res.status(), 200);
    await page.getByTestId('status-page').waitFor({ state: 'visible' });
    // The shell renders first; the name arrives with the data.
    await page.getByTestId('status-name').filter({ hasText: s.monitorName }).waitFor({ state: 'visible' });
    await page.getByTestId('status-state').waitFor({ state: 'visible' });
    assert.equal((await page.getByTestId('status-name').innerText()).trim(), s.monitorName);
    assert.match(await page.getByTestId('status-state').innerText(), /\bup\b/i);
    assert.equal((await ctx.cookies(DASH)).length, 0, 'the status page set cookies');
    await shot(page, 'status-page');

    const missing = await page.goto(`${DASH}/status/e2e-no-such-${run}`);
    assert.ok(missing.status() === 404 || missing.status() === 200, `unknown slug: ${missing.status()}`);
    await assert.rejects(
      page.getByTestId('status-name').filter({ hasText: s.monitorName }).waitFor({ timeout: 2000 }),
      'an unknown slug shows the monitor',
    );
  } finally {
    await ctx.close();
  }
});

test('e. Swagger UI: authorize with the OAuth2 password flow, GET /v1/me answers 200', { timeout: TEST_MS }, async () => {
  const ctx = await newContext();
  try {
    const page = await ctx.newPage();
    // Swagger UI's 1.7 MB bundle takes a while to parse on a busy machine.
    const res = await page.goto(`${API}/docs`, { timeout: SLOW_PAGE_MS });
    assert.equal(res.status(), 200);
    await page.locator('.swagger-ui .info .title').waitFor({ state: 'visible', timeout: SLOW_PAGE_MS });
    assert.match(await page.locator('.swagger-ui .info .title').innerText(), /Beacon/);
    await shot(page, 'swagger');

    await page.locator('.swagger-ui .auth-wrapper button.authorize').click();
    const modal = page.locator('.swagger-ui .dialog-ux .modal-ux');
    await modal.waitFor({ state: 'visible' });
    // Once authorized the inputs turn into text, so find the container by index.
    const idx = await modal
      .locator('.auth-container')
      .evaluateAll((cs) => cs.findIndex((c) => c.querySelector('#oauth_username')));
    assert.ok(idx >= 0, 'no password-flow form in the Authorize modal');
    const flow = modal.locator('.auth-container').nth(idx);
    await flow.locator('#oauth_username').fill(ADMIN_EMAIL);
    await flow.locator('#oauth_password').fill(ADMIN_PASSWORD);
    const token = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/oauth/token');
    await flow.locator('button.authorize').click();
    const tokenRes = await token;
    assert.equal(tokenRes.status(), 200, `token endpoint: ${tokenRes.status()}`);
    await flow.locator('button.authorize', { hasText: 'Logout' }).waitFor({ state: 'visible' });
    await shot(page, 'swagger-authorized');
    await modal.locator('button.btn-done, button.close-modal').first().click();
    await modal.waitFor({ state: 'hidden' });

    const op = page.locator('#operations-Account-get-me');
    await op.locator('.opblock-summary').first().click();
    const tryIt = op.locator('button.try-out__btn');
    await tryIt.waitFor({ state: 'visible' });
    if ((await tryIt.innerText()).trim() === 'Try it out') await tryIt.click();
    const me = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/me');
    await op.locator('button.execute').click();
    assert.equal((await me).status(), 200);
    const live = op.locator('.live-responses-table');
    await live.waitFor({ state: 'visible' });
    assert.equal((await live.locator('tbody .response .response-col_status').first().innerText()).trim(), '200');
    assert.match(await live.locator('tbody .response .response-col_description').first().innerText(), /admin@beacon\.local/);
    await op.scrollIntoViewIfNeeded();
    await shot(page, 'swagger-me');
  } finally {
    await ctx.close();
  }
});

test('f. River UI: admins get it through the dashboard, members get 403', { timeout: TEST_MS }, async () => {
  need(s.loggedIn, 'a. login');
  const page = await s.ctx.newPage();
  watchErrors(page, 'riverui admin');
  try {
    const res = await page.goto(`${DASH}/riverui/`);
    assert.equal(res.status(), 200);
    await page.getByText(/^(Jobs|Queues)$/).first().waitFor({ state: 'visible', timeout: LIVE_MS });
    await shot(page, 'riverui-admin');
  } finally {
    await page.close();
  }

  const email = `member-${run}@beacon.local`;
  const password = `member-password-${run}`;
  const created = await apiCall(s.page, 'POST', '/api/admin/users', { email, password, role: 'member' });
  assert.equal(created.status, 201, `POST /api/admin/users: ${created.status} ${created.text}`);
  assert.equal(created.json.role, 'member');

  const ctx = await newContext();
  try {
    const mpage = await ctx.newPage();
    watchErrors(mpage, 'member page');
    await login(mpage, email, password);
    await onMonitorList(mpage);
    // A member sees none of the admin's monitors.
    const mine = await apiCall(mpage, 'GET', '/api/monitors');
    assert.equal(mine.status, 200, mine.text);
    assert.deepEqual(mine.json.items, [], 'a member sees monitors that are not theirs');
    assert.equal(await mpage.getByTestId('monitor-row').count(), 0, 'a member sees monitors that are not theirs');
    const users = await apiCall(mpage, 'GET', '/api/admin/users');
    assert.equal(users.status, 403, 'a member may list users');

    const denied = await mpage.goto(`${DASH}/riverui/`);
    assert.equal(denied.status(), 403);
    assert.match(await mpage.locator('body').innerText(), /403|forbidden|admin/i);
    await shot(mpage, 'riverui-member-403');
  } finally {
    await ctx.close();
  }
});

test('g. phone width: the monitor list fits in 375 px', { timeout: TEST_MS }, async () => {
  need(s.loggedIn, 'a. login');
  const page = s.page;
  // A long unbroken name and a long URL must wrap or be cut, not widen the page.
  const long = await apiCall(page, 'POST', '/api/monitors', {
    name: `E2E-${'long'.repeat(30)}-${run}`,
    url: `${s.target.url}/${'path/'.repeat(60)}`,
    enabled: false,
  });
  assert.equal(long.status, 201, long.text);
  await page.setViewportSize({ width: 375, height: 740 });
  try {
    await page.goto(`${DASH}/#/monitors`);
    await page.reload(); // the list may already be open: fetch it anew
    await page.getByTestId('monitor-list').waitFor({ state: 'visible' });
    await page.locator(`[data-testid="monitor-row"][data-monitor-id="${long.json.id}"]`).waitFor({ state: 'visible' });
    await shot(page, 'phone-monitor-list');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375 + 1, `the monitor list is ${width} px wide at 375 px`);

    if (s.monitorID) {
      await page.goto(`${DASH}/#/monitors/${s.monitorID}`);
      await page.getByTestId('monitor-detail').waitFor({ state: 'visible' });
      await page.getByTestId('result-row').first().waitFor({ state: 'visible' });
      await shot(page, 'phone-monitor-detail');
      const w = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(w <= 375 + 1, `the monitor detail is ${w} px wide at 375 px`);
    }
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
});

test('h. logout ends the session', { timeout: TEST_MS }, async () => {
  need(s.loggedIn, 'a. login');
  const page = s.page;
  await page.goto(`${DASH}/#/monitors`);
  await page.getByTestId('user-menu').waitFor({ state: 'visible' });
  const logout = page.getByTestId('logout');
  if (!(await logout.isVisible())) await page.getByTestId('user-menu').click();
  await logout.click();
  await page.getByTestId('login-email').waitFor({ state: 'visible' });
  const me = await apiCall(page, 'GET', '/api/me');
  assert.equal(me.status, 401, `/api/me after logout: ${me.status}`);
  await shot(page, 'logged-out');
});

test('no uncaught JavaScript errors on the dashboard', () => {
  assert.deepEqual(s.pageErrors, []);
});
