// The workflow list: #/workflows. Filtered by state and kind, paged, kept
// current by the websocket's workflow events; and a form to run a demo
// workflow (a chain, group or chord of arithmetic steps).

import * as API from './api.js';
import { h, ago } from './dom.js';
import { field, showProblem, throttle } from './ui.js';
import { stateChip } from './view-workflow.js';

/** @typedef {import('./view-workflow.js').Workflow} Workflow */

const STATES = ['running', 'succeeded', 'failed', 'cancelled', 'timed_out'];
const KINDS = ['demo.chain', 'demo.group', 'demo.chord'];

// The filters outlive the view: back from a workflow, the list is as it was.
const filters = { state: '', kind: '' };

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {import('./ui.js').View}
 */
export function workflowsView({ main, go }) {
  document.title = 'Workflows · Beacon';
  let disposed = false;
  let cursor = '';
  /** @type {Map<number, {li: HTMLElement, w: Workflow}>} */
  const rows = new Map();

  const list = h('ul', { class: 'monitor-list', testid: 'workflow-list', role: 'list' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading workflows…');
  const more = h('button', { type: 'button', class: 'button subtle', hidden: true }, 'Load more');

  const stateSel = h('select', { testid: 'workflow-filter-state' },
    h('option', { value: '' }, 'any state'), STATES.map((v) => h('option', { value: v, selected: v === filters.state }, v.replace('_', ' '))));
  const kindIn = h('input', { type: 'text', testid: 'workflow-filter-kind', list: 'workflow-kinds', placeholder: 'any kind', spellcheck: 'false', value: filters.kind, maxlength: 100 });
  const kinds = h('datalist', { id: 'workflow-kinds' }, KINDS.map((k) => h('option', { value: k })));
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter workflows' },
    field('State', stateSel).wrap, field('Kind', kindIn).wrap, kinds,
    h('button', { type: 'submit', class: 'button' }, 'Filter'));

  // The demo form.
  const kind = field('Kind', h('select', { testid: 'demo-kind' },
    h('option', { value: 'chord' }, 'chord'), h('option', { value: 'chain' }, 'chain'), h('option', { value: 'group' }, 'group')),
  'chord: n squares, then their sum; chain: each step adds to the last; group: n squares in parallel');
  const n = field('Steps (n)', h('input', { type: 'number', testid: 'demo-n', min: 1, max: 100, step: 1, value: '5', inputmode: 'numeric' }), '1 to 100');
  const fail = field('Failing step', h('input', { type: 'number', testid: 'demo-fail', min: 0, max: 101, step: 1, value: '0', inputmode: 'numeric' }),
    '0: none; 1 to n (n+1: a chord\'s callback)');
  const policy = field('After a failure', h('select', { testid: 'demo-policy' },
    h('option', { value: 'fail_fast' }, 'fail fast'),
    h('option', { value: 'continue' }, 'continue')),
  'fail fast cancels the rest; continue cancels only what depends on the failed step');
  const demoError = h('div', { class: 'form-error', role: 'alert', testid: 'demo-error', tabindex: -1, hidden: true });
  const run = h('button', { type: 'submit', class: 'button primary', testid: 'demo-run' }, 'Run demo');
  const demoForm = h('form', { class: 'card demo-form', novalidate: true, 'aria-labelledby': 'demo-h' },
    h('h2', { id: 'demo-h' }, 'Run a demo workflow'),
    demoError,
    h('div', { class: 'row4' }, kind.wrap, n.wrap, fail.wrap, policy.wrap),
    h('div', { class: 'actions' }, run));

  main.append(
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Workflows')),
    demoForm, filterForm, status, list, more);

  /** @param {Workflow} w */
  function rowBody(w) {
    const done = w.steps_total - w.steps_left;
    return [
      stateChip(w.state),
      h('div', { class: 'monitor-main' },
        h('a', { class: 'monitor-link', testid: 'workflow-link', href: `#/workflows/${w.id}` }, `Workflow ${w.id}`),
        h('span', { class: 'monitor-url' }, w.kind)),
      h('div', { class: 'monitor-meta' },
        h('span', {}, `${done}/${w.steps_total} steps${w.steps_failed ? `, ${w.steps_failed} failed` : ''}`),
        h('time', { datetime: w.created_at }, `started ${ago(w.created_at)}`)),
    ];
  }

  /** @param {Workflow} w */
  function row(w) {
    const li = h('li', { class: 'monitor-row wf-row', testid: 'workflow-row', dataset: { state: w.state, workflowId: w.id } }, rowBody(w));
    rows.set(w.id, { li, w });
    return li;
  }

  function query() {
    const q = new URLSearchParams({ limit: '50' });
    if (filters.state) q.set('state', filters.state);
    if (filters.kind) q.set('kind', filters.kind);
    return q;
  }

  /** @param {boolean} reset */
  async function load(reset) {
    const q = query();
    if (!reset && cursor) q.set('cursor', cursor);
    try {
      const page = await API.get(`/workflows?${q}`);
      if (disposed) return;
      if (reset) {
        rows.clear();
        list.replaceChildren();
      }
      list.append(...page.items.filter((/** @type {Workflow} */ w) => !rows.has(w.id)).map(row));
      cursor = page.next_cursor || '';
      more.hidden = !cursor;
      status.replaceChildren(rows.size ? '' : (filters.state || filters.kind ? 'No workflow matches.' : 'No workflows yet: run a demo above.'));
    } catch (err) {
      if (!disposed && err.status !== 401) status.replaceChildren(h('span', { class: 'inline-error' }, `Could not load workflows: ${err.message}`));
    }
  }

  // refresh updates the first page in place; a workflow not shown yet means
  // the list changed: reload it.
  async function refresh() {
    try {
      const page = await API.get(`/workflows?${query()}`);
      if (disposed) return;
      if (page.items.some((/** @type {Workflow} */ w) => !rows.has(w.id))) {
        load(true);
        return;
      }
      for (const w of page.items) {
        const r = rows.get(w.id);
        if (!r) continue;
        r.w = w;
        r.li.dataset.state = w.state;
        r.li.replaceChildren(...rowBody(w));
      }
    } catch {
      // the next event or poll tries again
    }
  }
  const refreshSoon = throttle(refresh, 1000);

  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    filters.state = stateSel.value;
    filters.kind = kindIn.value.trim();
    load(true);
  });
  stateSel.addEventListener('change', () => filterForm.requestSubmit());
  more.addEventListener('click', () => load(false));

  demoForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    demoError.hidden = true;
    for (const f of [n, fail]) f.setError('');
    const num = Number(n.control.value);
    const failStep = Number(fail.control.value || '0');
    if (!Number.isInteger(num) || num < 1 || num > 100) {
      n.setError('must be a whole number from 1 to 100');
      n.control.focus();
      return;
    }
    if (!Number.isInteger(failStep) || failStep < 0) {
      fail.setError('must be 0 or a step number');
      fail.control.focus();
      return;
    }
    /** @type {Record<string, unknown>} */
    const body = { kind: kind.control.value, n: num, policy: policy.control.value };
    if (failStep) body.fail_step = failStep;
    run.disabled = true;
    run.textContent = 'Starting…';
    try {
      const { data } = await API.request('POST', '/workflows/demo', body);
      go(`#/workflows/${data.id}`);
    } catch (err) {
      if (disposed || err.status === 401) return;
      showProblem(demoError, err);
      demoError.focus();
    } finally {
      run.disabled = false;
      run.textContent = 'Run demo';
    }
  });

  load(true);

  // Relative times go stale; refresh them twice a minute.
  const tick = setInterval(() => {
    for (const r of rows.values()) r.li.replaceChildren(...rowBody(r.w));
  }, 30000);

  return {
    dispose() {
      disposed = true;
      refreshSoon.cancel();
      clearInterval(tick);
    },
    onReconnect: () => refreshSoon.run(),
    poll: () => refreshSoon.run(),
    onEvent(ev) {
      if (ev.type === 'workflow_finished' || ev.type === 'workflow_step') refreshSoon.run();
    },
  };
}
