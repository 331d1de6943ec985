// Pieces the views share: error cards, labelled form fields, focus.

import { h } from './dom.js';

/**
 * refocus puts focus on the page heading when rebuilding the page took it
 * away (a removed element loses focus to <body>).
 * @param {ParentNode} root
 */
export function refocus(root) {
  if (document.activeElement === document.body) root.querySelector('h1')?.focus({ preventScroll: true });
}

/**
 * errorCard is a page-sized error with an optional retry button.
 * @param {string} title
 * @param {{message?: string} | unknown} err
 * @param {(() => void) | null} [retry]
 */
export function errorCard(title, err, retry) {
  const message = err instanceof Error ? err.message : String(err);
  return h('div', { class: 'card error-card', role: 'alert' },
    h('h1', { tabindex: -1 }, title),
    h('p', {}, message),
    retry && h('button', { type: 'button', class: 'button', onclick: retry }, 'Try again'));
}

let fieldSeq = 0;

/**
 * @template {HTMLInputElement | HTMLSelectElement} C
 * @typedef {object} Field
 * @property {HTMLElement} wrap the label, control, hint and error slot
 * @property {C} control
 * @property {(msg: string) => void} setError shows msg under the control ("" clears it)
 */

/**
 * field wraps a control with its label, an optional hint and an error slot
 * linked through aria-describedby.
 * @template {HTMLInputElement | HTMLSelectElement} C
 * @param {string} label
 * @param {C} control
 * @param {string} [hint]
 * @returns {Field<C>}
 */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errEl = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const describe = () => {
    const ids = [hintEl?.id, errEl.hidden ? null : errEl.id].filter(Boolean);
    if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
    else control.removeAttribute('aria-describedby');
  };
  describe();
  const isCheck = control instanceof HTMLInputElement && control.type === 'checkbox';
  const wrap = isCheck
    ? h('div', { class: 'field check' }, h('label', { for: id }, control, ' ', label), hintEl, errEl)
    : h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, errEl);
  return {
    wrap,
    control,
    setError(msg) {
      errEl.textContent = msg || '';
      errEl.hidden = !msg;
      if (msg) control.setAttribute('aria-invalid', 'true');
      else control.removeAttribute('aria-invalid');
      describe();
    },
  };
}

/**
 * The signed-in user (GET /api/me).
 * @typedef {object} User
 * @property {number} id
 * @property {string} email
 * @property {string} role "admin" or "member"
 */

/**
 * What app.js keeps between views.
 * @typedef {object} AppState
 * @property {User | null} user
 * @property {string | null} afterLogin the page (hash) to return to after signing in
 * @property {string | null} next a page outside the app (River UI) to open after signing in
 * @property {string | null} range the chart range the user chose; null: chosen from the data's age
 */

/**
 * What a view gets from the shell (app.js).
 * @typedef {object} Shell
 * @property {HTMLElement} main the element a view fills
 * @property {AppState} state
 * @property {(hash: string, remember?: boolean) => void} go navigates; remember comes back here after signing in
 * @property {(moveFocus: boolean) => void} render renders the current route again
 * @property {(user: User) => void} signedIn starts the session's UI
 */

/**
 * A rendered view: what the shell calls while it is shown.
 * @typedef {object} View
 * @property {() => void} [dispose] the view is left
 * @property {(ev: any) => void} [onEvent] a live event arrived
 * @property {() => void} [onReconnect] events may have been missed
 * @property {() => void} [poll] no live updates: refresh
 */

/**
 * throttle runs fn at most once per ms: a call meanwhile runs it once more
 * when the time is up (live events come in bursts; one fetch covers one).
 * @param {() => unknown} fn
 * @param {number} ms
 * @returns {{run: () => void, cancel: () => void}}
 */
export function throttle(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let last = 0;
  const fire = () => {
    timer = undefined;
    last = Date.now();
    fn();
  };
  return {
    run() {
      // A run already timed covers this call too.
      if (timer !== undefined) return;
      const wait = last + ms - Date.now();
      if (wait <= 0) fire();
      else timer = setTimeout(fire, wait);
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/**
 * showProblem shows an API error's problem: its detail, and each of its
 * errors (huma's field errors) in a list.
 * @param {HTMLElement} box an element with role="alert"
 * @param {unknown} err an APIError, or any error
 */
export function showProblem(box, err) {
  /** @type {{location?: string, message?: string}[]} */
  const errors = /** @type {any} */ (err)?.problem?.errors || [];
  const msg = err instanceof Error ? err.message : String(err);
  box.replaceChildren(
    h('p', {}, msg.charAt(0).toUpperCase() + msg.slice(1)),
    errors.length ? h('ul', {}, errors.map((e) => h('li', {}, e.location ? `${String(e.location).replace(/^body\./, '')}: ${e.message || 'is invalid'}` : (e.message || 'is invalid')))) : '');
  box.hidden = false;
}
