// The sign-in screens shared by the client and the admin console: password, then the second
// factor when the account has 2FA; and the one-time bootstrap of the first server admin. When
// the server has the access-token gate on (AUTH-9), both forms also ask for the access code,
// which `api.js` keeps for this tab and sends with every request from then on.

import { accessGate, bootstrapAdmin, setAccessCode, signIn, signInMfa } from './api.js';
import { el, field, onSubmit, show } from './dom.js';

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

/**
 * Shows a sign-in card in `root`: its title, `fields`, the button and a status line.
 * `submit(values)` runs on submit; what it throws is shown in the status line.
 */
function cardForm(root, id, title, fields, button, submit) {
  const status = el('div');
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': id },
    el('h2', { id, text: title }),
    fields,
    el('button', { type: 'submit', text: button }),
    status,
  );
  onSubmit(form, status, submit);
  show(root, form);
  return form;
}

/** Username and password (`passwordAutocomplete` tells password managers which one). */
function credentialFields(passwordAutocomplete) {
  return [
    field('Username', { name: 'username', autocomplete: 'username', required: true }),
    field('Password', { name: 'password', type: 'password', autocomplete: passwordAutocomplete, required: true }),
  ];
}

/** Renders the sign-in form into `root`; calls `done(user)` once signed in. */
export async function signInView(root, done) {
  const access = await accessCodeField();
  const form = cardForm(root, 'signin-title', 'Sign in', [access, ...credentialFields('current-password')], 'Sign in', async (values) => {
    keepAccessCode(values);
    const r = await signIn(values.username, values.password);
    if (r.mfaToken) mfaView(root, r.mfaToken, done);
    else done(r.user);
  });
  form.querySelector('input').focus();
}

function mfaView(root, mfaToken, done) {
  const fields = [
    el('p', { text: 'Enter the 6-digit code from your authenticator app, or a recovery code.' }),
    field('Authentication code', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true }),
  ];
  const form = cardForm(root, 'mfa-title', 'Two-factor authentication', fields, 'Verify', async (values) => {
    const r = await signInMfa(mfaToken, values.code.trim());
    done(r.user);
  });
  form.querySelector('input').focus();
}

/** The first-admin form for a `#bootstrap=<token>` link. */
export async function bootstrapView(root, token, done) {
  const fields = [
    el('p', { text: 'This one-time link makes the first server admin of this Conclave server.' }),
    await accessCodeField(),
    ...credentialFields('new-password'),
  ];
  cardForm(root, 'bootstrap-title', 'Create the first administrator', fields, 'Create administrator', async (values) => {
    keepAccessCode(values);
    const r = await bootstrapAdmin(token, values.username, values.password);
    history.replaceState(null, '', '/');
    done(r.user);
  });
}
