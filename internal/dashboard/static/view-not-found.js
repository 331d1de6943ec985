// Any hash the router does not know.

import { h } from './dom.js';

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {null}
 */
export function notFoundView({ main }) {
  document.title = 'Not found · Beacon';
  main.append(h('div', { class: 'card' },
    h('h1', { tabindex: -1 }, 'Page not found'),
    h('p', {}, h('a', { href: '#/monitors' }, 'Back to the monitors'))));
  return null;
}
