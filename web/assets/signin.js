// The sign-in screens shared by the client and the admin console: password, then the second
// factor when the account has 2FA; and the one-time bootstrap of the first server admin. When
// the server has the access-token gate on (AUTH-9), both forms also ask for the access code,
// which `api.js` keeps for this tab and sends with every request from then on.

import { accessGate, bootstrapAdmin, finishPasswordReset, oidcStartUrl, setAccessCode, signIn, signInMfa, ssoProviders } from './api.js';
import { el, field, notice, onSubmit, show } from './dom.js';

/** What `/#/signin?error=<code>` (an OpenID sign-in that failed) means, for people. */
const SSO_ERRORS = {
  account_disabled: 'This account is disabled.',
  sso_user_unknown: 'That identity is not linked to an account on this server.',
  oidc_state_mismatch: 'The sign-in was started in another browser or tab. Try again here.',
  oidc_state_invalid: 'The sign-in link expired or was already used. Try again.',
  oidc_provider_error: 'The identity provider did not sign you in.',
  oidc_code_rejected: 'The identity provider did not accept the sign-in. Try again.',
  oidc_id_token_invalid: 'The identity provider’s answer could not be verified.',
  oidc_unavailable: 'The identity provider cannot be reached right now.',
  access_token_required: 'Enter the access code of this server first.',
  too_many_attempts: 'Too many failed attempts. Wait a little and try again.',
};

/** `error` and `mfa_token` of a `#/signin?…` the server sent the browser back to; cleared. */
function ssoReturn() {
  const m = location.hash.match(/^#\/signin\?(.*)$/);
  if (!m) return {};
  const params = new URLSearchParams(m[1]);
  history.replaceState(null, '', location.pathname);
  return { error: params.get('error'), mfaToken: params.get('mfa_token') };
}

/**
 * "Sign in with …", one per OpenID provider: links (full-page navigations to its start) — or,
 * while the access-token gate is on, buttons that keep the access code typed in `form`, start
 * the sign-in with a request that carries it, then go to the provider.
 */
async function providerLinks(form) {
  const { providers, gated } = await ssoProviders().catch(() => ({ providers: [], gated: false }));
  if (providers.length === 0) return null;
  const status = el('div');
  const start = (p) => async () => {
    const code = form.querySelector('[name="access_code"]')?.value.trim();
    if (!code) {
      show(status, notice(SSO_ERRORS.access_token_required));
      form.querySelector('[name="access_code"]')?.focus();
      return;
    }
    setAccessCode(code);
    try {
      location.assign(await oidcStartUrl(p.id));
    } catch (e) {
      show(status, notice(SSO_ERRORS[e.code] ?? e.message));
    }
  };
  return el(
    'div',
    { class: 'sso' },
    ...providers.map((p) =>
      gated
        ? el('button', { type: 'button', class: 'button', text: `Sign in with ${p.name}`, onclick: start(p) })
        : el('a', { class: 'button', href: `/api/v1/auth/oidc/${encodeURIComponent(p.id)}/start`, text: `Sign in with ${p.name}` }),
    ),
    status,
  );
}

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
  const back = ssoReturn();
  if (back.mfaToken) {
    mfaView(root, back.mfaToken, done);
    return;
  }
  const access = await accessCodeField();
  const form = cardForm(root, 'signin-title', 'Sign in', [access, ...credentialFields('current-password')], 'Sign in', async (values) => {
    keepAccessCode(values);
    const r = await signIn(values.username, values.password);
    if (r.mfaToken) mfaView(root, r.mfaToken, done);
    else done(r.user);
  });
  const links = await providerLinks(form);
  if (links) form.append(links);
  if (back.error) form.prepend(notice(SSO_ERRORS[back.error] ?? 'Single sign-on failed.'));
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

/**
 * The form of a `#reset-password=<token>` link a server admin made: a new password, typed
 * twice. The link is taken out of the address bar at once (it is single-use, and the page's
 * history should not keep it); once the password is set, `signedOut(message)` shows sign-in.
 */
export async function resetPasswordView(root, token, signedOut) {
  history.replaceState(null, '', location.pathname);
  const fields = [
    el('p', { text: 'Choose a new password for your account. Every session of the account has been signed out.' }),
    await accessCodeField(),
    field('New password', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: '12' }),
    field('New password again', { name: 'again', type: 'password', autocomplete: 'new-password', required: true }),
  ];
  const form = cardForm(root, 'reset-title', 'Set a new password', fields, 'Set password', async (values) => {
    if (values.new_password !== values.again) throw new Error('The two passwords differ.');
    keepAccessCode(values);
    await finishPasswordReset(token, values.new_password);
    signedOut('Your password is set. Sign in with it.', 'info');
  });
  form.querySelector('input').focus();
}
