// Workflows, incidents and notification channels in the dashboard, in
// Debian's Chromium (issue 12): a demo chord's DAG reaches "succeeded" live,
// a failing chain shows its failed step, a thousand-step DAG draws as a few
// summary nodes; a monitor of a local target that fails opens an incident
// that appears live, is acknowledged and links to its workflow; a webhook
// channel shows its secret once. scripts/browser-test.sh starts Beacon with
// BEACON_CHECK_ALLOW_CIDRS=127.0.0.0/8: the targets are served here.
//
// The steps run in order and share the page; a step whose prerequisite
// failed fails at once, naming it.
// Screenshots: test-results/screenshots/wf-*.png.
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
const LIVE_MS = 60_000; // a demo workflow's steps on a busy machine
// Down, then confirmed by re-checks, then opened: the monitor's first
// check, the confirmation chord's spaced re-checks, and room for a busy machine.
const INCIDENT_MS = 180_000;
const TEST_MS = 300_000;

const run = crypto.randomBytes(4).toString('hex');
const s = {
  browser: null,
  target: null, // { url, hits, hooks }
  ctx: null,
  page: null,
  signedIn: false,
  incidentID: null,
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
  await page.screenshot({ path: path.join(SHOTS, `wf-${String(shotN).padStart(2, '0')}-${name}.png`), fullPage: true });
}

function watchErrors(page, label) {
  page.on('pageerror', (err) => s.pageErrors.push(`${label}: ${err.message}`));
}

// waitUntil polls probe until it returns {done: true, ...}; on timeout it
// fails with what probe last saw.
async function waitUntil(probe, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last?.done) return last;
    if (Date.now() > end) assert.fail(`timed out after ${ms / 1000} s waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// The dashboard's API proxy from the page's origin, with its cookies.
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

// The states the DAG's nodes show, by step name.
async function nodeStates(page) {
  return page.locator('[data-testid="dag-node"]').evaluateAll((gs) =>
    Object.fromEntries(gs.map((g) => [g.querySelector('.dag-name')?.textContent, g.dataset.state])));
}

// requireAPI fails unless the server lists p (a skipped step would pass
// without testing anything).
async function requireAPI(p) {
  const r = await apiCall(s.page, 'GET', p);
  assert.equal(r.status, 200, `GET ${p}: ${r.status} ${r.text}`);
}

// A synthetic workflow of n + 1 steps (a chord: n, then one callback) or n
// (a chain), served instead of the API's to draw a DAG no demo can make.
function bigWorkflow(id, kind, n) {
  const at = new Date().toISOString();
  const steps = [];
  for (let i = 0; i < n; i++) {
    const failed = i === 7;
    steps.push({
      index: i, name: `${kind === 'chain' ? 'add' : 'square'} ${i + 1}`, kind: 'demo.square',
      state: failed ? 'failed' : i % 100 === 3 ? 'enqueued' : 'succeeded', job_state: i % 100 === 3 ? 'running' : undefined,
      deps: kind === 'chain' && i > 0 ? [i - 1] : [], attempts: 1, max_attempts: 3,
      enqueued_at: at, started_at: at, finished_at: failed ? at : undefined, error: failed ? 'step 8 failed on request' : undefined,
    });
  }
  if (kind === 'chord') {
    steps.push({ index: n, name: 'sum', kind: 'demo.sum', state: 'pending', deps: steps.map((x) => x.index), attempts: 0, max_attempts: 3 });
  }
  return {
    id, kind: `demo.${kind}`, state: 'running', policy: 'continue', owner_id: 1, steps_total: steps.length,
    steps_left: steps.filter((x) => x.state !== 'succeeded' && x.state !== 'failed').length, steps_failed: 1,
    created_at: at, deadline: new Date(Date.now() + 300e3).toISOString(), steps,
  };
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (/^wf-.*\.png$/.test(f)) fs.rmSync(path.join(SHOTS, f));

  // The targets: /down answers 500, every other path 200; POSTs to /hook
  // (the webhook channel) are kept.
  const hits = new Map();
  const hooks = [];
  const server = http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    hits.set(p, (hits.get(p) || 0) + 1);
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      if (p === '/hook') hooks.push({ headers: req.headers, body });
      res.writeHead(p.startsWith('/down') ? 500 : 200, { 'Content-Type': 'text/plain' });
      res.end(p.startsWith('/down') ? 'down\n' : 'ok\n');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.target = { server, hits, hooks, url: `http://127.0.0.1:${server.address().port}` };

  s.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  s.ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
  s.ctx.setDefaultTimeout(UI_MS);
  s.ctx.setDefaultNavigationTimeout(UI_MS);
  s.page = await s.ctx.newPage();
  watchErrors(s.page, 'workflows page');
});

after(async () => {
  await s.browser?.close();
  await new Promise((resolve) => (s.target ? s.target.server.close(resolve) : resolve()));
});

test('1. sign in; the nav links to workflows, incidents and channels', { timeout: TEST_MS }, async () => {
  const page = s.page;
  await page.goto(`${DASH}/`);
  await page.getByTestId('login-email').fill(EMAIL);
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('new-monitor').waitFor({ state: 'visible' });
  for (const id of ['nav-workflows', 'nav-incidents', 'nav-channels']) {
    await page.getByTestId(id).waitFor({ state: 'visible' });
  }
  await page.locator('[data-testid="live-status"][data-connected="true"]').waitFor({ timeout: LIVE_MS });
  s.signedIn = true;
});

test('2. a demo chord run from the form: its DAG reaches all succeeded live', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await page.getByTestId('nav-workflows').click();
  await page.getByTestId('demo-run').waitFor({ state: 'visible' });
  assert.equal(await page.locator('[data-testid="nav-workflows"][aria-current="page"]').count(), 1, 'the nav does not mark Workflows');
  await page.getByTestId('demo-kind').selectOption('chord');
  await page.getByTestId('demo-n').fill('5');
  await page.getByTestId('demo-fail').fill('0');
  await shot(page, 'workflows-form');
  await page.evaluate(() => {
    window.__noReload = true;
  });
  await page.getByTestId('demo-run').click();

  await page.getByTestId('workflow-detail').waitFor({ state: 'visible' });
  await page.getByTestId('dag').waitFor({ state: 'visible' });
  const m = page.url().match(/#\/workflows\/(\d+)$/);
  assert.ok(m, `after running the demo, the page is ${page.url()}`);
  const first = await nodeStates(page);
  console.log(`  first drawn: ${JSON.stringify(first)}`);
  assert.equal(Object.keys(first).length, 6, `a chord of 5 draws 6 nodes: ${JSON.stringify(first)}`);

  const end = await waitUntil(async () => {
    const st = await nodeStates(page);
    const wf = (await page.getByTestId('workflow-state').innerText()).trim();
    return { done: wf === 'succeeded' && Object.values(st).every((x) => x === 'succeeded'), wf, st };
  }, LIVE_MS, 'every node and the workflow to be succeeded');
  console.log(`  ended: ${JSON.stringify(end)}`);
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded');
  // The legend says it in words, not colour only.
  assert.match(await page.getByTestId('legend-succeeded').innerText(), /succeeded\s+6/);
  assert.match(await page.getByTestId('legend-failed').innerText(), /failed\s+0/);
  assert.equal(await page.getByTestId('workflow-cancel').isVisible(), false, 'Cancel shown on an ended workflow');
  // The callback's output is the sum of the squares of 1..5.
  await page.locator('[data-testid="dag-node"]', { hasText: 'sum' }).click();
  await page.getByTestId('step-panel').waitFor({ state: 'visible' });
  assert.match(await page.getByTestId('step-output').innerText(), /"value":\s*55/);
  await shot(page, 'chord-succeeded');
});

test('3. a failing chain shows its failed step, and why', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await page.goto(`${DASH}/#/workflows`);
  await page.getByTestId('demo-run').waitFor({ state: 'visible' });
  await page.getByTestId('demo-kind').selectOption('chain');
  await page.getByTestId('demo-n').fill('4');
  await page.getByTestId('demo-fail').fill('2');
  await page.getByTestId('demo-policy').selectOption('fail_fast');
  await page.getByTestId('demo-run').click();
  await page.getByTestId('dag').waitFor({ state: 'visible' });
  const id = page.url().match(/#\/workflows\/(\d+)$/)?.[1];
  assert.ok(id, `after running the demo, the page is ${page.url()}`);

  const end = await waitUntil(async () => {
    const st = await nodeStates(page);
    const wf = (await page.getByTestId('workflow-state').innerText()).trim();
    return { done: wf === 'failed' && st['add 2'] === 'failed', wf, st };
  }, LIVE_MS, 'step "add 2" and the workflow to be failed');
  assert.equal(end.st['add 1'], 'succeeded', JSON.stringify(end.st));
  assert.equal(end.st['add 3'], 'cancelled', JSON.stringify(end.st));
  const failed = page.locator('[data-testid="dag-node"][data-state="failed"]');
  assert.equal(await failed.count(), 1);
  // Its state is in words on the node too.
  assert.match(await failed.locator('.dag-state').textContent(), /failed/);
  await failed.click();
  await page.getByTestId('step-error').waitFor({ state: 'visible' });
  assert.match(await page.getByTestId('step-error').innerText(), /step 2 failed on request/);
  assert.match(await page.getByTestId('step-state').innerText(), /failed/);
  await shot(page, 'chain-failed');

  // The list shows it failed (other tests' monitors may start incident
  // workflows meanwhile: find it by id), and filters by state.
  await page.goto(`${DASH}/#/workflows`);
  const row = page.locator(`[data-testid="workflow-row"][data-workflow-id="${id}"]`);
  await row.waitFor({ state: 'visible' });
  assert.equal(await row.getAttribute('data-state'), 'failed');
  await page.getByTestId('workflow-filter-state').selectOption('succeeded');
  await waitUntil(async () => {
    const states = await page.getByTestId('workflow-row').evaluateAll((rs) => rs.map((r) => r.dataset.state));
    return { done: states.length > 0 && states.every((x) => x === 'succeeded'), states };
  }, UI_MS, 'only succeeded workflows in the list');
  await page.getByTestId('workflow-filter-state').selectOption('');

  // A workflow started elsewhere (the API) appears in the open list, and
  // ends there, without a reload.
  await page.getByTestId('workflow-row').first().waitFor({ state: 'visible' });
  await page.evaluate(() => {
    window.__noReload = true;
  });
  const started = await apiCall(page, 'POST', '/api/workflows/demo', { kind: 'group', n: 3 });
  assert.equal(started.status, 202, `POST /api/workflows/demo: ${started.status} ${started.text}`);
  await page.locator(`[data-testid="workflow-row"][data-workflow-id="${started.json.id}"][data-state="succeeded"]`)
    .waitFor({ timeout: LIVE_MS });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded');
  await shot(page, 'workflow-list');
});

test('4. a thousand-step workflow draws a few summary nodes', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  const fakes = { 987654321: bigWorkflow(987654321, 'chord', 1000), 987654322: bigWorkflow(987654322, 'chain', 1000) };
  await page.route(/\/api\/workflows\/98765432[12]$/, (route) => {
    const id = Number(new URL(route.request().url()).pathname.split('/').pop());
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(fakes[id]) });
  });
  try {
    await page.goto(`${DASH}/#/workflows/987654321`);
    await page.getByTestId('dag-summary').first().waitFor({ state: 'visible' });
    assert.equal(await page.getByTestId('dag-summary').count(), 1, 'a chord of 1,000 has one summary node');
    assert.equal(await page.getByTestId('dag-node').count(), 1, 'the callback is drawn on its own');
    assert.match(await page.getByTestId('dag-summary').textContent(), /1000 steps/);
    assert.match(await page.getByTestId('legend-failed').innerText(), /failed\s+1/);
    assert.match(await page.getByTestId('legend-running').innerText(), /running\s+10/);
    // The summary is coloured by its failure, and lists the failed step first.
    assert.equal(await page.getByTestId('dag-summary').getAttribute('data-state'), 'failed');
    await page.getByTestId('dag-summary').click();
    const first = page.getByTestId('summary-steps').locator('li').first();
    await first.waitFor({ state: 'visible' });
    assert.match(await first.innerText(), /square 8[\s\S]*failed/);
    await first.getByRole('button').click();
    assert.match(await page.getByTestId('step-error').innerText(), /step 8 failed/);
    await shot(page, 'big-chord');

    await page.goto(`${DASH}/#/workflows/987654322`);
    await page.getByTestId('dag-summary').first().waitFor({ state: 'visible' });
    const nodes = await page.locator('[data-testid="dag-node"], [data-testid="dag-summary"]').count();
    assert.ok(nodes <= 30, `a chain of 1,000 draws ${nodes} nodes`);
    await shot(page, 'big-chain');
  } finally {
    await page.unroute(/\/api\/workflows\/98765432[12]$/);
  }
});

// ---- Incidents and channels.

test('5. a failing monitor opens an incident that appears live; acknowledge it, see its timeline and workflow', { timeout: TEST_MS + INCIDENT_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await requireAPI('/api/incidents');
  await page.goto(`${DASH}/#/incidents`);
  await page.getByTestId('incidents-active').waitFor({ state: 'attached' });
  await page.getByTestId('no-active-incidents').waitFor({ state: 'visible' }).catch(() => {});
  await page.evaluate(() => {
    window.__noReload = true;
  });
  const name = `Failing service ${run}`;
  const slug = `wf-${run}`;
  const created = await apiCall(page, 'POST', '/api/monitors', {
    name, url: `${s.target.url}/down`, interval_seconds: 10, timeout_ms: 2000, public_slug: slug,
  });
  assert.equal(created.status, 201, `POST /api/monitors: ${created.status} ${created.text}`);
  const monitorID = created.json.id;

  const row = page.locator('[data-testid="incidents-active"] [data-testid="incident-row"]', { hasText: name });
  await row.waitFor({ state: 'visible', timeout: INCIDENT_MS }).catch(async () => {
    const list = await apiCall(page, 'GET', `/api/incidents?monitor_id=${monitorID}`);
    assert.fail(`no incident row for "${name}" within ${INCIDENT_MS / 1000} s; GET /api/incidents: ${list.status} ${list.text}; target hits: ${s.target.hits.get('/down') || 0}`);
  });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded');
  assert.equal(await row.getAttribute('data-state'), 'open');
  await page.getByTestId('nav-incidents-count').waitFor({ state: 'visible' });
  assert.match(await page.getByTestId('nav-incidents-count').innerText(), /^[1-9]\d*\+?/);
  await shot(page, 'incident-live');

  await row.getByTestId('incident-link').click();
  await page.getByTestId('incident-detail').waitFor({ state: 'visible' });
  const m = page.url().match(/#\/incidents\/(\d+)$/);
  assert.ok(m, page.url());
  s.incidentID = Number(m[1]);
  await page.getByTestId('incident-ack').click();
  await page.locator('[data-testid="incident-state"]', { hasText: 'acknowledged' }).waitFor({ timeout: UI_MS });
  const kinds = await waitUntil(async () => {
    const k = await page.getByTestId('timeline-item').evaluateAll((ls) => ls.map((l) => l.dataset.kind));
    return { done: ['opened', 'acknowledged'].every((x) => k.includes(x)), k };
  }, UI_MS, 'the timeline to show opened and acknowledged');
  console.log(`  timeline: ${kinds.k.join(', ')}`);
  assert.equal(await page.getByTestId('incident-ack').isVisible(), false, 'Acknowledge shown once acknowledged');
  await shot(page, 'incident-acknowledged');

  const wfLink = page.getByTestId('incident-workflow');
  await wfLink.waitFor({ state: 'visible' });
  await wfLink.click();
  await page.getByTestId('workflow-detail').waitFor({ state: 'visible' });
  await page.getByTestId('dag').waitFor({ state: 'visible' });
  assert.ok(await page.locator('[data-testid="dag-node"], [data-testid="dag-summary"]').count() > 0, 'the confirmation workflow draws no node');
  await shot(page, 'incident-workflow');

  // The public status page lists the ongoing incident.
  const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const pub = await ctx.newPage();
    watchErrors(pub, 'status page');
    await pub.goto(`${DASH}/status/${slug}`);
    await pub.getByTestId('status-incidents').waitFor({ state: 'visible', timeout: UI_MS });
    assert.match(await pub.getByTestId('status-incident').first().innerText(), /ongoing/i);
    await shot(pub, 'status-incidents');
  } finally {
    await ctx.close();
  }

  // Stop the checks, then resolve by hand; a second resolve is refused.
  const paused = await apiCall(page, 'PATCH', `/api/monitors/${monitorID}`, { enabled: false });
  assert.equal(paused.status, 200, paused.text);
  await page.goto(`${DASH}/#/incidents/${s.incidentID}`);
  await page.getByTestId('incident-resolve').click();
  await page.locator('[data-testid="incident-state"]', { hasText: 'resolved' }).waitFor({ timeout: UI_MS });
  const again = await apiCall(page, 'POST', `/api/incidents/${s.incidentID}/resolve`);
  assert.equal(again.status, 409, `resolving twice: ${again.status} ${again.text}`);
  assert.match(again.json?.detail || again.json?.title || '', /\S/, 'the 409 has no problem detail');
});

test('6. a webhook channel: its secret is shown once; send a test; delete it', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await requireAPI('/api/channels');
  await page.goto(`${DASH}/#/channels`);
  await page.getByTestId('channel-save').waitFor({ state: 'visible' });
  const name = `Hook ${run}`;
  await page.getByTestId('channel-kind').selectOption('webhook');
  await page.getByTestId('channel-name').fill(name);
  await page.getByTestId('channel-url').fill(`${s.target.url}/hook`);
  await page.getByTestId('channel-save').click();

  await page.getByTestId('channel-secret-box').waitFor({ state: 'visible' });
  const secret = await page.getByTestId('channel-secret').inputValue();
  assert.ok(secret.length >= 16, `secret "${secret}" is short`);
  assert.match(await page.getByTestId('channel-secret-box').innerText(), /once/i, 'no warning that the secret is shown once');
  const row = page.locator('[data-testid="channel-row"]', { hasText: name });
  await row.waitFor({ state: 'visible' });
  await shot(page, 'channel-secret');

  // Shown once: not after a reload, nor in the list's data.
  await page.reload();
  await row.waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('channel-secret-box').isVisible(), false, 'the secret box is back after a reload');
  assert.equal((await page.locator('body').innerText()).includes(secret), false, 'the secret is shown again');
  const list = await apiCall(page, 'GET', '/api/channels');
  assert.equal(list.text.includes(secret), false, 'GET /api/channels returns the secret');

  const hooksBefore = s.target.hooks.length;
  await row.getByTestId('channel-test').click();
  await row.getByTestId('channel-test-result').filter({ hasText: /delivered/i }).waitFor({ timeout: LIVE_MS });
  assert.ok(s.target.hooks.length > hooksBefore, 'the webhook target got no request');
  await shot(page, 'channel-tested');

  page.once('dialog', (d) => d.accept());
  await row.getByTestId('channel-delete').click();
  await row.waitFor({ state: 'detached' });
});

test('7. phone width: the workflow and incident pages fit in 375 px', { timeout: TEST_MS }, async () => {
  need(s.signedIn, '1. sign in');
  const page = s.page;
  await page.setViewportSize({ width: 375, height: 740 });
  try {
    for (const hash of ['#/workflows', '#/incidents', '#/channels']) {
      await page.goto(`${DASH}/${hash}`);
      await page.locator('h1').first().waitFor({ state: 'visible' });
      await page.waitForFunction(() => !document.querySelector('[role="status"]')?.textContent?.startsWith('Loading'), null, { timeout: UI_MS });
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375 + 1, `${hash} is ${width} px wide at 375 px`);
    }
    await page.goto(`${DASH}/#/workflows`);
    await page.getByTestId('workflow-link').first().click();
    await page.getByTestId('dag').waitFor({ state: 'visible' });
    await shot(page, 'phone-workflow');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375 + 1, `the workflow page is ${width} px wide at 375 px`);
  } finally {
    await page.setViewportSize({ width: 1280, height: 800 });
  }
});

test('no uncaught JavaScript errors', () => {
  assert.deepEqual(s.pageErrors, []);
});
