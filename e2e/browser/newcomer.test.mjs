// The first five minutes of a newcomer, in Debian's Chromium: sign in,
// watch a local service, see its chart draw lines, open its public status
// page, and open River UI from a signed-out browser (sign-in first, then
// back to River UI). scripts/browser-test.sh starts Beacon with
// BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8, so the target served here on
// 127.0.0.1 may be checked; any other private address is refused.
//
// The steps run in order and share the page; a step whose prerequisite
// failed fails at once, naming it. Screenshots: test-results/screenshots/newcomer-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const DASH = mustEnv('BEACON_DASHBOARD_URL').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const EMAIL = 'admin@beacon.local'; // the development admin
const PASSWORD = 'beacon-dev-password';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = path.join(process.env.BEACON_TEST_RESULTS || path.join(ROOT, 'test-results'), 'screenshots');

const UI_MS = 15_000; // ordinary UI waits
// A 10 s interval fills two adjacent one-minute buckets within about 70 s;
// the deadline leaves room for a busy machine.
const LINES_MS = 150_000;
const TEST_MS = 240_000;

const run = crypto.randomBytes(4).toString('hex');
const s = {
  browser: null,
  target: null, // { url, hits }
  ctx: null,
  page: null,
  signedIn: false,
  monitorID: null,
  name: `My local service ${run}`,
  slug: `newcomer-${run}`,
  pageErrors: [],
};

function mustEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/browser-test.sh)`);
  return v;
}

function need(cond, what) {
  assert.ok(cond, `skipped for a failed prerequisite: ${what}`);
}

let shotN = 0;
async function shot(page, name) {
  shotN += 1;
  await page.screenshot({ path: path.join(SHOTS, `newcomer-${String(shotN).padStart(2, '0')}-${name}.png`), fullPage: true });
}

async function newContext() {
  const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
  ctx.setDefaultTimeout(UI_MS);
  ctx.setDefaultNavigationTimeout(UI_MS);
  return ctx;
}

function watchErrors(page, label) {
  page.on('pageerror', (err) => s.pageErrors.push(`${label}: ${err.message}`));
}

// waitUntil polls probe until it returns a truthy value; on timeout it
// fails with what probe last saw (describe turns that into words).
async function waitUntil(probe, ms, what, describe = (v) => JSON.stringify(v)) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last?.done) return last;
    if (Date.now() > end) assert.fail(`timed out after ${ms / 1000} s waiting for ${what}; last seen: ${describe(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function signIn(page) {
  await page.getByTestId('login-email').fill(EMAIL);
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (/^newcomer-.*\.png$/.test(f)) fs.rmSync(path.join(SHOTS, f));

  // The newcomer's local service: 200 on every path.
  const hits = new Map();
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    hits.set(p, (hits.get(p) || 0) + 1);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.target = { server, hits, url: `http://127.0.0.1:${server.address().port}` };

  s.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  s.ctx = await newContext();
  s.page = await s.ctx.newPage();
  watchErrors(s.page, 'newcomer page');
});

after(async () => {
  await s.browser?.close();
  await new Promise((resolve) => (s.target ? s.target.server.close(resolve) : resolve()));
});

test('1. sign in with the development admin', { timeout: TEST_MS }, async () => {
  const page = s.page;
  await page.goto(`${DASH}/`);
  await page.getByTestId('login-email').waitFor();
  await shot(page, 'sign-in');
  await signIn(page);
  await page.getByTestId('new-monitor').waitFor({ state: 'visible' });
  assert.match(page.url(), /#\/monitors$/);
  s.signedIn = true;
});

test('2. watch a local service: a new monitor through the form', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await page.getByTestId('new-monitor').click();
  await page.getByTestId('monitor-name').fill(s.name);
  await page.getByTestId('monitor-url').fill(`${s.target.url}/health`);
  await page.getByTestId('monitor-interval').fill('10');
  await page.getByTestId('monitor-timeout').fill('2000');
  await page.getByTestId('monitor-slug').fill(s.slug);
  assert.equal(await page.getByTestId('monitor-enabled').isChecked(), true, 'a new monitor is checked on schedule');
  await shot(page, 'new-monitor');
  await page.getByTestId('monitor-save').click();

  await page.getByTestId('monitor-detail').waitFor({ state: 'visible' });
  const m = page.url().match(/#\/monitors\/(\d+)$/);
  assert.ok(m, `after saving, the page is ${page.url()}`);
  s.monitorID = Number(m[1]);
  // A monitor created a moment ago is charted over the last hour, not
  // squeezed into the edge of a day.
  await page.getByTestId('range-select').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('range-select').inputValue(), '1h');
  await page.getByTestId('range-note').waitFor({ state: 'visible' }); // "since it was created"
});

test('3. its chart draws lines, not just dots, within a minute or so', { timeout: TEST_MS }, async () => {
  need(s.monitorID, '2. create a monitor');
  const page = s.page;
  const started = Date.now();
  const probe = () =>
    page.evaluate(() => {
      const chart = document.querySelector('[data-testid="latency-chart"]');
      const d = chart?.querySelector('path[data-series="p50"]')?.getAttribute('d') || '';
      return {
        // A line is an "L" segment; "M" alone is a point.
        done: /L/.test(d),
        d,
        dots: chart?.querySelectorAll('circle').length ?? 0,
        results: document.querySelectorAll('[data-testid="result-row"]').length,
        // Where the first point is, as a share of the chart's width.
        firstX: (() => {
          const m = d.match(/^M\s*([\d.]+)/);
          const w = Number(chart?.getAttribute('width'));
          return m && w ? Number(m[1]) / w : null;
        })(),
        state: document.querySelector('[data-testid="monitor-state"]')?.textContent,
        live: document.querySelector('[data-testid="live-status"]')?.getAttribute('data-connected'),
      };
    });
  // The first result shows as a dot (a lone point), live.
  const first = await waitUntil(async () => {
    const v = await probe();
    return { ...v, done: v.results > 0 && (v.dots > 0 || v.done) };
  }, 60_000, 'the first result and its point', JSON.stringify);
  assert.equal(first.state, 'up', JSON.stringify(first));
  // Charted from the monitor's start: its first point is on the left, not
  // one of two dots at the right edge of a day.
  assert.ok(first.firstX !== null && first.firstX < 0.5, `the first point is at ${first.firstX} of the width: ${JSON.stringify(first)}`);
  await shot(page, 'chart-first-point');

  const lines = await waitUntil(probe, LINES_MS, 'a line in the latency chart', JSON.stringify);
  const secs = Math.round((Date.now() - started) / 1000);
  console.log(`# the chart drew lines ${secs} s after the monitor was created (${lines.results} results)`);
  assert.ok(lines.results >= 2, JSON.stringify(lines));
  assert.ok((s.target.hits.get('/health') || 0) >= 2, 'the local service was not checked');

  // The results table's headers sit over their columns.
  const cols = await page.getByTestId('results-table').evaluate((t) => {
    const ths = [...t.querySelectorAll('thead th')].map((th) => th.getBoundingClientRect());
    const tds = [...t.querySelectorAll('tbody tr:first-child td')].map((td) => td.getBoundingClientRect());
    return { table: t.getBoundingClientRect().left, ths: ths.map((r) => [r.left, r.right]), tds: tds.map((r) => [r.left, r.right]) };
  });
  assert.ok(Math.abs(cols.ths[0][0] - cols.table) < 2, `the first header is not at the table's left: ${JSON.stringify(cols)}`);
  cols.ths.forEach(([l, r], i) => {
    assert.ok(Math.abs(l - cols.tds[i][0]) < 2 && Math.abs(r - cols.tds[i][1]) < 2, `header ${i} is not over its column: ${JSON.stringify(cols)}`);
  });
  await shot(page, 'chart-lines');
});

test('4. a monitor without checks shows no empty table', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  const created = await page.evaluate(async (url) => {
    const res = await fetch('/api/monitors', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'beacon' },
      body: JSON.stringify({ name: 'Not checked yet', url, enabled: false }),
    });
    return { status: res.status, body: await res.json() };
  }, `${s.target.url}/idle`);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.goto(`${DASH}/#/monitors/${created.body.id}`);
  await page.getByTestId('no-results').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('results-table').isVisible(), false, 'an empty results table is shown');
  await shot(page, 'no-checks-yet');
});

test('5. a refused destination names BEACON_CHECK_ALLOW_CIDRS', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  // 10.0.0.0/8 is private and not in BEACON_CHECK_ALLOW_CIDRS: refused
  // before any connection is made.
  const created = await page.evaluate(async () => {
    const res = await fetch('/api/monitors', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'beacon' },
      body: JSON.stringify({ name: 'Private address', url: 'http://10.255.255.1/', enabled: false }),
    });
    return { status: res.status, body: await res.json() };
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await page.goto(`${DASH}/#/monitors/${created.body.id}`);
  await page.getByTestId('run-check').click();
  const notice = page.getByTestId('refused-notice');
  await notice.waitFor({ state: 'visible', timeout: 30_000 });
  assert.match(await notice.innerText(), /BEACON_CHECK_ALLOW_CIDRS/);
  assert.match(await page.locator('.check-msg').innerText(), /\brefused\b/);
  await shot(page, 'refused');
});

test('6. its public status page', { timeout: TEST_MS }, async () => {
  need(s.monitorID, '2. create a monitor');
  const page = s.page;
  await page.goto(`${DASH}/#/monitors/${s.monitorID}`);
  await page.getByTestId('public-link').click();
  await page.waitForURL(`${DASH}/status/${s.slug}`);
  await page.getByTestId('status-name').filter({ hasText: s.name }).waitFor({ state: 'visible' });
  assert.match(await page.getByTestId('status-state').innerText(), /\bup\b/i);
  await shot(page, 'status-page');
});

test('7. River UI from a signed-out browser: sign in first, then back to River UI', { timeout: TEST_MS }, async () => {
  const ctx = await newContext();
  try {
    const page = await ctx.newPage();
    watchErrors(page, 'signed-out page');
    await page.goto(`${DASH}/riverui/`);
    await page.getByTestId('login-email').waitFor({ state: 'visible' });
    const at = new URL(page.url());
    assert.equal(at.pathname, '/', page.url());
    assert.equal(at.searchParams.get('next'), '/riverui/', page.url());
    assert.equal(at.hash, '#/login', page.url());
    await page.getByTestId('login-next').waitFor({ state: 'visible' });
    await shot(page, 'riverui-sign-in-first');

    await signIn(page);
    await page.waitForURL(`${DASH}/riverui/**`);
    await page.getByText(/^(Jobs|Queues)$/).first().waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(new URL(page.url()).pathname.startsWith('/riverui/'), true, page.url());
    await shot(page, 'riverui-after-sign-in');
  } finally {
    await ctx.close();
  }
});

test('no uncaught JavaScript errors on the newcomer path', () => {
  assert.deepEqual(s.pageErrors, []);
});
