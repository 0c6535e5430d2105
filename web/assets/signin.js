// The sign-in screens shared by the client and the admin console: password, then the second
// factor when the account has 2FA; and the one-time bootstrap of the first server admin. When
// the server has the access-token gate on (AUTH-9), both forms also ask for the access code,
// which `api.js` keeps for this tab and sends with every request from then on.

import { accessGate, bootstrapAdmin, setAccessCode, signIn, signInMfa } from './api.js';
import { el, field, formValues, notice, show } from './dom.js';

/** The access-code field when capabilities report the gate; null otherwise. */
async function accessCodeField() {
  const gated = await accessGate().catch(() => false);
  return gated
    ? field('Access code', { name: 'access_code', type: 'password', autocomplete: 'off', required: true })
    : null;
}

/** Keeps the typed access code (if the form asked for one) for the requests that follow. */
function keepAccessCode(values) {
  if (values.access_code !== undefined) setAccessCode(values.access_code.trim() || null);
}

/** Renders the sign-in form into `root`; calls `done(user)` once signed in. */
export async function signInView(root, done) {
  const status = el('div');
  const access = await accessCodeField();
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': 'signin-title' },
    el('h2', { id: 'signin-title', text: 'Sign in' }),
    access,
    field('Username', { name: 'username', autocomplete: 'username', required: true }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    el('button', { type: 'submit', text: 'Sign in' }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const values = formValues(form);
    keepAccessCode(values);
    try {
      const r = await signIn(values.username, values.password);
      if (r.mfaToken) mfaView(root, r.mfaToken, done);
      else done(r.user);
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  show(root, form);
  form.querySelector('input').focus();
}

function mfaView(root, mfaToken, done) {
  const status = el('div');
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': 'mfa-title' },
    el('h2', { id: 'mfa-title', text: 'Two-factor authentication' }),
    el('p', { text: 'Enter the 6-digit code from your authenticator app, or a recovery code.' }),
    field('Authentication code', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true }),
    el('button', { type: 'submit', text: 'Verify' }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await signInMfa(mfaToken, formValues(form).code.trim());
      done(r.user);
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  show(root, form);
  form.querySelector('input').focus();
}

/** The first-admin form for a `#bootstrap=<token>` link. */
export async function bootstrapView(root, token, done) {
  const status = el('div');
  const access = await accessCodeField();
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': 'bootstrap-title' },
    el('h2', { id: 'bootstrap-title', text: 'Create the first administrator' }),
    el('p', { text: 'This one-time link makes the first server admin of this Conclave server.' }),
    access,
    field('Username', { name: 'username', autocomplete: 'username', required: true }),
    field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', required: true }),
    el('button', { type: 'submit', text: 'Create administrator' }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const values = formValues(form);
    keepAccessCode(values);
    try {
      const r = await bootstrapAdmin(token, values.username, values.password);
      history.replaceState(null, '', '/');
      done(r.user);
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  show(root, form);
}
