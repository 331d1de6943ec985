// Creating and editing a monitor: #/monitors/new, #/monitors/{id}/edit.
// The API validates; its problem's errors are shown at their fields.

import * as API from './api.js';
import { h } from './dom.js';
import { errorCard, field } from './ui.js';

/** @typedef {'name' | 'url' | 'method' | 'interval_seconds' | 'timeout_ms' | 'expected_status' | 'enabled' | 'public_slug'} FieldName */

/** @type {Record<FieldName, string>} */
const FIELD_NAMES = {
  name: 'Name', url: 'URL', method: 'Method', interval_seconds: 'Interval', timeout_ms: 'Timeout',
  expected_status: 'Expected status', enabled: 'Enabled', public_slug: 'Status page slug',
};

/**
 * @param {string} key
 * @returns {key is FieldName}
 */
function isFieldName(key) {
  return Object.hasOwn(FIELD_NAMES, key);
}

/**
 * The form to create a monitor (id null) or edit one.
 * @param {import('./ui.js').Shell} shell
 * @param {number | null} id
 * @returns {import('./ui.js').View}
 */
export function monitorFormView({ main, go }, id) {
  const editing = id !== null;
  document.title = `${editing ? 'Edit monitor' : 'New monitor'} · Beacon`;
  const heading = h('h1', { tabindex: -1 }, editing ? 'Edit monitor' : 'New monitor');
  const back = h('p', { class: 'back' }, h('a', { href: editing ? `#/monitors/${id}` : '#/monitors' }, editing ? '← Monitor' : '← Monitors'));
  main.append(back, heading);
  let disposed = false;

  /** @type {Record<FieldName, import('./ui.js').Field<HTMLInputElement | HTMLSelectElement>> & {enabled: import('./ui.js').Field<HTMLInputElement>}} */
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

  /** @param {Partial<import('./view-monitors.js').Monitor>} m */
  function fill(m) {
    f.name.control.value = m.name ?? '';
    f.url.control.value = m.url ?? '';
    f.method.control.value = m.method || 'GET';
    f.interval_seconds.control.value = String(m.interval_seconds ?? 60);
    f.timeout_ms.control.value = String(m.timeout_ms ?? 5000);
    f.expected_status.control.value = (m.expected_status || []).join(', ');
    f.enabled.control.checked = m.enabled ?? true;
    f.public_slug.control.value = m.public_slug ?? '';
  }

  /**
   * showErrors shows a problem: its detail on top, each of its errors at
   * its field (and in the list on top).
   * @param {string} detail
   * @param {{location?: string, message?: string}[]} errors
   */
  function showErrors(detail, errors) {
    for (const x of Object.values(f)) x.setError('');
    const items = [];
    /** @type {HTMLElement | null} */
    let first = null;
    for (const e of errors) {
      const key = String(e.location || '').replace(/^body\./, '').split(/[.[]/)[0];
      const msg = e.message || 'is invalid';
      if (isFieldName(key)) {
        const target = f[key];
        target.setError(msg);
        first ||= target.control;
        items.push(h('li', {}, `${FIELD_NAMES[key]}: ${msg}`));
      } else {
        items.push(h('li', {}, e.location ? `${e.location}: ${msg}` : msg));
      }
    }
    formError.replaceChildren(
      h('p', {}, detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : 'The monitor could not be saved.'),
      items.length ? h('ul', {}, items) : '');
    formError.hidden = false;
    (first || formError).focus();
  }

  function collect() {
    /** @type {{location: string, message: string}[]} */
    const errors = [];
    /** @type {Record<string, unknown>} */
    const body = {
      name: f.name.control.value.trim(),
      url: f.url.control.value.trim(),
      method: f.method.control.value,
      enabled: f.enabled.control.checked,
    };
    for (const key of /** @type {const} */ (['interval_seconds', 'timeout_ms'])) {
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
