// The sign-in page: #/login.

import * as API from './api.js';
import { h } from './dom.js';
import { field } from './ui.js';

/**
 * @param {import('./ui.js').Shell} shell
 * @returns {null}
 */
export function loginView({ main, state, go, signedIn }) {
  document.title = 'Sign in · Beacon';
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, testid: 'login-email', spellcheck: 'false' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, testid: 'login-password' });
  const error = h('p', { class: 'form-error', testid: 'login-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'button primary wide', testid: 'login-submit' }, 'Sign in');
  /** @param {string} msg */
  const showError = (msg) => {
    error.textContent = msg;
    error.hidden = !msg;
  };

  const form = h('form', { class: 'card login', novalidate: true },
    h('h1', { tabindex: -1 }, 'Sign in to Beacon'),
    state.next && h('p', { class: 'muted', testid: 'login-next' }, 'Sign in to open River UI (the job queues).'),
    field('Email', email).wrap,
    field('Password', password).wrap,
    error,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!email.value.trim() || !password.value) {
      showError('Enter your email and password.');
      (email.value.trim() ? password : email).focus();
      return;
    }
    showError('');
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    const res = await API.login(email.value.trim(), password.value);
    if (res.ok) {
      try {
        const user = await API.get('/me');
        if (state.next) {
          // Back to River UI, which sent the browser here.
          location.assign(state.next);
          return;
        }
        signedIn(user);
        const next = state.afterLogin && !state.afterLogin.startsWith('#/login') ? state.afterLogin : '#/monitors';
        state.afterLogin = null;
        go(next);
        return;
      } catch (err) {
        res.error = err.message;
      }
    }
    submit.disabled = false;
    submit.textContent = 'Sign in';
    if (res.status === 401) {
      showError('Invalid email or password.');
      password.select();
    } else if (res.status === 429) {
      const secs = Number(res.retryAfter);
      const wait = secs > 0 ? ` Try again in ${secs < 120 ? `${secs} seconds` : `${Math.ceil(secs / 60)} minutes`}.` : ' Try again later.';
      showError('Too many failed sign-ins.' + wait);
    } else {
      showError(res.error ? `Sign-in failed: ${res.error}` : 'Sign-in failed. Try again.');
    }
  });
  main.append(h('div', { class: 'login-wrap' }, form));
  if (!email.value) email.focus();
  return null;
}
