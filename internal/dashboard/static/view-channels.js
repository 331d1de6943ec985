// Notification channels: #/channels. Where incidents are sent: webhooks
// (signed with a secret shown once, at creation) and email addresses.

import * as API from './api.js';
import { h, ago } from './dom.js';
import { field, showProblem } from './ui.js';

/**
 * A channel as the API returns it.
 * @typedef {object} Channel
 * @property {number} id
 * @property {string} kind webhook or email
 * @property {string} name
 * @property {string} [url]
 * @property {string} [address]
 * @property {string} created_at
 */

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {import('./ui.js').View}
 */
export function channelsView({ main }) {
  document.title = 'Channels · Beacon';
  let disposed = false;

  const list = h('ul', { class: 'monitor-list', testid: 'channel-list', role: 'list' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading channels…');

  const kind = field('Kind', h('select', { testid: 'channel-kind' },
    h('option', { value: 'webhook' }, 'Webhook (JSON POST, signed)'),
    h('option', { value: 'email' }, 'Email')));
  const name = field('Name', h('input', { type: 'text', testid: 'channel-name', maxlength: 100, autocomplete: 'off' }));
  const url = field('URL', h('input', { type: 'url', testid: 'channel-url', inputmode: 'url', spellcheck: 'false' }),
    'An http or https URL; Beacon POSTs each incident to it');
  const address = field('Email address', h('input', { type: 'email', testid: 'channel-address', spellcheck: 'false', autocomplete: 'off' }));
  const formError = h('div', { class: 'form-error', role: 'alert', testid: 'channel-error', tabindex: -1, hidden: true });
  const save = h('button', { type: 'submit', class: 'button primary', testid: 'channel-save' }, 'Add channel');
  const form = h('form', { class: 'card channel-form', novalidate: true, 'aria-labelledby': 'new-channel-h' },
    h('h2', { id: 'new-channel-h' }, 'New channel'),
    formError, kind.wrap, name.wrap, url.wrap, address.wrap,
    h('div', { class: 'actions' }, save));
  // The secret of the webhook just created: shown once, never stored.
  const secretBox = h('div', { class: 'card secret-card', testid: 'channel-secret-box', role: 'region', 'aria-labelledby': 'secret-h', hidden: true });

  main.append(
    h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Notification channels')),
    h('p', { class: 'hint' }, 'Every channel hears of your incidents: opened, and resolved.'),
    secretBox, status, list, form);

  function showKind() {
    const webhook = kind.control.value === 'webhook';
    url.wrap.hidden = !webhook;
    address.wrap.hidden = webhook;
  }
  kind.control.addEventListener('change', showKind);
  showKind();

  /** @param {string} secret */
  function showSecret(secret) {
    const input = h('input', { type: 'text', readonly: true, value: secret, testid: 'channel-secret', class: 'secret', spellcheck: 'false', 'aria-label': 'Signing secret' });
    const copied = h('span', { class: 'muted', role: 'status' });
    const copy = h('button', { type: 'button', class: 'button', testid: 'channel-secret-copy' }, 'Copy');
    copy.addEventListener('click', async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
      }
    });
    const done = h('button', { type: 'button', class: 'button subtle', testid: 'channel-secret-done' }, 'I have saved it');
    done.addEventListener('click', () => {
      secretBox.replaceChildren();
      secretBox.hidden = true;
    });
    secretBox.replaceChildren(
      h('h2', { id: 'secret-h' }, 'Signing secret'),
      h('p', { class: 'notice', role: 'note' },
        'Shown this once: Beacon does not show it again. Keep it where your receiver can check the signature of each request.'),
      h('div', { class: 'secret-line' }, input, copy, copied),
      h('div', { class: 'actions' }, done));
    secretBox.hidden = false;
    input.focus();
    input.select();
  }

  /** @param {Channel} c */
  function row(c) {
    const result = h('span', { class: 'muted', role: 'status', testid: 'channel-test-result' });
    const test = h('button', { type: 'button', class: 'button', testid: 'channel-test' }, 'Send test');
    const del = h('button', { type: 'button', class: 'button danger', testid: 'channel-delete' }, 'Delete');
    const li = h('li', { class: 'monitor-row channel-row', testid: 'channel-row', dataset: { channelId: c.id, kind: c.kind } },
      h('span', { class: 'pill' }, c.kind),
      h('div', { class: 'monitor-main' },
        h('span', { class: 'channel-name' }, c.name),
        h('span', { class: 'monitor-url' }, c.url || c.address || ''),
        result),
      h('div', { class: 'monitor-meta' },
        h('time', { datetime: c.created_at }, `added ${ago(c.created_at)}`),
        test, del));
    test.addEventListener('click', async () => {
      test.disabled = true;
      result.className = 'muted';
      result.textContent = 'Sending…';
      try {
        const { data } = await API.request('POST', `/channels/${c.id}/test`);
        result.className = 'ok-text';
        result.textContent = data?.delivered ? 'Test delivered.' : 'Test sent.';
      } catch (err) {
        result.className = 'inline-error';
        result.textContent = `Test failed: ${err.message}`;
      } finally {
        test.disabled = false;
      }
    });
    del.addEventListener('click', async () => {
      if (!window.confirm(`Delete channel “${c.name}”? It will hear of no more incidents.`)) return;
      del.disabled = true;
      try {
        await API.request('DELETE', `/channels/${c.id}`);
        li.remove();
        empty();
      } catch (err) {
        result.className = 'inline-error';
        result.textContent = `Could not delete: ${err.message}`;
        del.disabled = false;
      }
    });
    return li;
  }

  function empty() {
    status.hidden = list.children.length > 0;
    if (!list.children.length) status.replaceChildren('No channels yet: add one below.');
  }

  async function load() {
    try {
      /** @type {Channel[]} */
      const items = [];
      let cursor = '';
      // Channels are few: every page at once.
      do {
        const page = await API.get(`/channels?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        items.push(...page.items);
        cursor = page.next_cursor || '';
      } while (cursor && items.length < 1000);
      if (disposed) return;
      list.replaceChildren(...items.map(row));
      empty();
    } catch (err) {
      if (disposed || err.status === 401) return;
      status.hidden = false;
      status.replaceChildren(h('span', { class: 'inline-error', testid: 'channels-error' },
        err.status === 404 ? 'This server has no notification channels yet.' : `Could not load channels: ${err.message}`));
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.hidden = true;
    for (const f of [name, url, address]) f.setError('');
    const webhook = kind.control.value === 'webhook';
    /** @type {Record<string, string>} */
    const body = { kind: kind.control.value, name: name.control.value.trim() };
    if (webhook) body.url = url.control.value.trim();
    else body.address = address.control.value.trim();
    save.disabled = true;
    try {
      const { data } = await API.request('POST', '/channels', body);
      if (disposed) return;
      list.append(row(data));
      empty();
      name.control.value = '';
      url.control.value = '';
      address.control.value = '';
      if (data.secret) showSecret(data.secret);
    } catch (err) {
      if (disposed || err.status === 401) return;
      /** @type {{location?: string, message?: string}[]} */
      const errors = err.problem?.errors || [];
      /** @type {Record<string, import('./ui.js').Field<HTMLInputElement | HTMLSelectElement>>} */
      const at = { name, url, address };
      for (const x of errors) {
        const key = String(x.location || '').replace(/^body\./, '');
        at[key]?.setError(x.message || 'is invalid');
      }
      showProblem(formError, err);
      formError.focus();
    } finally {
      save.disabled = false;
    }
  });

  load();
  return {
    dispose() {
      disposed = true;
    },
  };
}
