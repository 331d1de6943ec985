// An incident's page: #/incidents/{id}. Its facts, its timeline, a link to
// its confirmation workflow, and Acknowledge / Resolve; incident events
// fetch it again.

import * as API from './api.js';
import { h, fill, dateTime, shortDateTime } from './dom.js';
import { errorCard, refocus, showProblem, throttle } from './ui.js';
import { incidentChip, incidentTimes } from './view-incidents.js';

/**
 * An incident with its timeline.
 * @typedef {import('./view-incidents.js').Incident & {timeline?: {at: string, kind: string, detail?: string}[]}} IncidentDetail
 */

// The timeline's kinds in words.
/** @type {Record<string, string>} */
const KINDS = {
  detected: 'Detected', confirmed: 'Confirmed', opened: 'Opened', notified: 'Notified', notify_failed: 'Notification failed',
  acknowledged: 'Acknowledged', resolved: 'Resolved',
};

/**
 * @param {import('./ui.js').Shell} shell
 * @param {number} id
 * @returns {import('./ui.js').View}
 */
export function incidentView({ main, render }, id) {
  document.title = `Incident ${id} · Beacon`;
  const root = h('section', { class: 'detail', testid: 'incident-detail', 'aria-busy': 'true' },
    h('p', { class: 'back' }, h('a', { href: '#/incidents' }, '← Incidents')),
    h('h1', { tabindex: -1 }, 'Loading…'));
  main.append(root);
  let disposed = false;
  /** @type {IncidentDetail | null} */
  let inc = null;

  const chip = incidentChip('open', 'incident-state');
  const msg = h('div', { class: 'form-error', role: 'alert', testid: 'incident-error', tabindex: -1, hidden: true });
  const note = h('p', { class: 'check-msg', role: 'status' });
  const ackBtn = h('button', { type: 'button', class: 'button primary', testid: 'incident-ack' }, 'Acknowledge');
  const resolveBtn = h('button', { type: 'button', class: 'button', testid: 'incident-resolve' }, 'Resolve');
  const facts = h('dl', { class: 'facts' });
  const timeline = h('ol', { class: 'timeline', testid: 'incident-timeline' });
  const heading = h('h1', { tabindex: -1 });

  /** @param {IncidentDetail} i */
  function show(i) {
    const first = inc === null;
    inc = i;
    const name = i.monitor_name || `Monitor ${i.monitor_id}`;
    document.title = `Incident: ${name} · Beacon`;
    heading.textContent = `${name} incident`;
    chip.dataset.state = `incident-${i.state}`;
    chip.textContent = i.state;
    root.dataset.state = i.state;
    ackBtn.hidden = i.state !== 'open';
    resolveBtn.hidden = i.state === 'resolved';
    /**
     * @param {string} term
     * @param {...import('./dom.js').Child} desc
     */
    const dl = (term, ...desc) => h('div', {}, h('dt', {}, term), h('dd', {}, ...desc));
    /** @param {string | undefined} iso */
    const when = (iso) => (iso ? h('time', { datetime: iso }, dateTime(iso)) : '–');
    fill(facts, 
      dl('Monitor', h('a', { href: `#/monitors/${i.monitor_id}`, testid: 'incident-monitor' }, name)),
      dl('Opened', when(i.opened_at)),
      i.acknowledged_at ? dl('Acknowledged', when(i.acknowledged_at)) : null,
      i.resolved_at ? dl('Resolved', when(i.resolved_at)) : null,
      i.resolution ? dl('Resolution', i.resolution === 'recovered' ? 'the monitor recovered' : 'resolved by hand') : null,
      i.workflow_id
        ? dl('Confirmation', h('a', { href: `#/workflows/${i.workflow_id}`, testid: 'incident-workflow' }, `workflow ${i.workflow_id}`))
        : null,
      i.cause ? h('div', { class: 'span-all' }, h('dt', {}, 'Cause'), h('dd', { testid: 'incident-cause' }, i.cause)) : null);
    const items = i.timeline || [];
    timeline.replaceChildren(...items.map((t) => h('li', { class: 'timeline-item', testid: 'timeline-item', dataset: { kind: t.kind } },
      h('time', { datetime: t.at, title: dateTime(t.at) }, shortDateTime(t.at)),
      h('span', { class: 'timeline-kind' }, KINDS[t.kind] || t.kind),
      h('span', { class: 'timeline-detail' }, t.detail || ''))));
    if (!items.length) timeline.replaceChildren(h('li', { class: 'muted' }, 'Nothing yet.'));
    note.textContent = incidentTimes(i);
    if (first) {
      root.replaceChildren(
        h('p', { class: 'back' }, h('a', { href: '#/incidents' }, '← Incidents')),
        h('div', { class: 'page-head' },
          h('div', { class: 'title-line' }, heading, chip),
          h('div', { class: 'actions' }, ackBtn, resolveBtn)),
        note, msg, facts,
        h('section', { class: 'card', 'aria-labelledby': 'timeline-h' }, h('h2', { id: 'timeline-h' }, 'Timeline'), timeline));
      root.setAttribute('aria-busy', 'false');
      refocus(root);
    }
  }

  async function load() {
    try {
      const i = await API.get(`/incidents/${id}`);
      if (!disposed) show(i);
    } catch (err) {
      if (disposed || err.status === 401) return;
      if (inc) {
        showProblem(msg, err);
        return;
      }
      root.replaceChildren(errorCard(err.status === 404 ? 'Incident not found' : 'Could not load the incident', err,
        err.status === 404 ? null : () => render(false)));
      refocus(root);
    }
  }
  const refresh = throttle(load, 500);

  /**
   * @param {HTMLButtonElement} btn
   * @param {string} action acknowledge or resolve
   */
  async function act(btn, action) {
    btn.disabled = true;
    msg.hidden = true;
    try {
      await API.request('POST', `/incidents/${id}/${action}`);
      // The answer has no timeline: fetch the incident with it.
      await load();
    } catch (err) {
      if (disposed || err.status === 401) return;
      showProblem(msg, err);
      msg.focus();
      refresh.run();
    } finally {
      btn.disabled = false;
    }
  }
  ackBtn.addEventListener('click', () => act(ackBtn, 'acknowledge'));
  resolveBtn.addEventListener('click', () => act(resolveBtn, 'resolve'));

  load();
  return {
    dispose() {
      disposed = true;
      refresh.cancel();
    },
    onReconnect: () => refresh.run(),
    poll: () => refresh.run(),
    onEvent(ev) {
      if (ev.type === 'incident' && ev.incident?.id === id) refresh.run();
    },
  };
}
