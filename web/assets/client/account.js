// The account page of the chat client (`#/account`): my security events (paged), the download
// of my data, and the erasure of my account (password — or, for an account made by single
// sign-on, which has none, a sign-in within the last ten minutes —, a code when 2FA is on,
// then an explicit confirmation).

import { api, download, saveBlob, setCsrfToken, signOut } from '../api.js';
import { busyButton, card, el, formValues, notice, show } from '../dom.js';
import { app, state, ui } from './state.js';

const EVENT_LABELS = {
  'auth.login': 'Sign-in',
  'auth.logout': 'Sign-out',
  'auth.second_factor': 'Second factor',
  'password.changed': 'Password changed',
  'password.reset': 'Password reset',
  'session.revoked': 'Session revoked',
  'sessions.revoked_others': 'Other sessions signed out',
  'totp.setup_started': 'Two-factor setup started',
  'totp.enabled': 'Two-factor turned on',
  'totp.disabled': 'Two-factor turned off',
  'recovery_codes.regenerated': 'Recovery codes replaced',
  'recovery_code.used': 'Recovery code used',
  'impersonation.started': 'Impersonation by an administrator',
  'admin.user_updated': 'Account changed by an administrator',
  'user.exported': 'Data downloaded',
};

function securityEvent(e) {
  const impersonation = e.event === 'impersonation.started' || e.actor.impersonator;
  const failed = e.outcome === 'failure';
  const reason = e.detail?.reason ? ` (${e.detail.reason.replaceAll('_', ' ')})` : '';
  const until = e.event === 'impersonation.started' && e.detail?.expires_at ? ` · until ${new Date(e.detail.expires_at).toLocaleString()}` : '';
  return el(
    'li',
    { 'data-event': e.event, 'data-outcome': e.outcome, class: [failed ? 'failed' : '', impersonation ? 'impersonation' : ''].join(' ').trim() || null },
    el('strong', { text: EVENT_LABELS[e.event] ?? e.event }),
    failed ? el('span', { class: 'outcome-failure', text: `failed${reason}` }) : el('span', { class: 'muted', text: 'succeeded' }),
    impersonation ? el('span', { class: 'flag', text: e.actor.impersonator ? `Done by administrator ${e.actor.impersonator} as you` : `Administrator ${e.actor.id ?? ''} signed in as you` }) : null,
    el('span', { class: 'muted' }, el('time', { datetime: e.at, text: new Date(e.at).toLocaleString() }), ` · ${e.ip ?? 'unknown address'}${until}`),
    e.user_agent ? el('span', { class: 'muted ua', text: e.user_agent }) : null,
  );
}

export async function accountView() {
  const list = el('ul', { class: 'events', 'aria-label': 'Security events' });
  const listStatus = el('div');
  const more = el('div');
  const loadEvents = async (before) => {
    try {
      const page = await api('GET', `/users/@me/security-events?limit=20${before ? `&before=${encodeURIComponent(before)}` : ''}`);
      if (!before) list.replaceChildren();
      list.append(...page.items.map(securityEvent));
      if (!list.children.length) list.append(el('li', { class: 'empty', text: 'No events yet.' }));
      show(more, page.next ? el('button', { type: 'button', class: 'small', text: 'Older events', onclick: () => loadEvents(page.next) }) : null);
    } catch (e) {
      show(listStatus, notice(e.message));
    }
  };

  const exportStatus = el('div');
  const exportButton = busyButton('Download my data', exportStatus, async () => {
    const { blob, filename } = await download('/users/@me/export');
    saveBlob(blob, filename);
    show(exportStatus, notice(`Saved ${filename}.`, 'info'));
    loadEvents();
  });

  show(
    ui.main,
    el('h2', { text: 'Account' }),
    card(
      'events-title',
      'Security events',
      el('p', { class: 'muted', text: 'Sign-ins (also failed ones), sessions, two-factor changes and administrator impersonations of your account, newest first. Something you do not recognise? Change your password and sign out other sessions.' }),
      listStatus,
      list,
      more,
    ),
    card(
      'export-title',
      'Your data',
      el('p', { text: 'One JSON file with your profile, memberships, conversations, messages you wrote, sessions, API keys (masked) and the audit events about you.' }),
      exportButton,
      exportStatus,
    ),
    deleteAccountForm(await api('GET', '/auth/session').catch(() => null)),
  );
  await loadEvents();
}

/** How long after signing in an account without a password may still erase itself. */
const RECENT_SIGN_IN_MS = 10 * 60 * 1000;

/**
 * What confirms an erasure for an account without a password (`session.has_password` false):
 * a sign-in within the last ten minutes. Says until when this session counts, or that it is
 * too old and offers to sign out so that the user signs in again through their provider.
 */
function recentSignInNote(session) {
  const until = new Date(new Date(session.session.created_at).getTime() + RECENT_SIGN_IN_MS);
  const fresh = until > new Date();
  return el(
    'div',
    { class: 'reauth', 'data-fresh': String(fresh) },
    el('p', { text: 'Your account signs in through single sign-on and has no password. To confirm it is you, deleting it needs a sign-in within the last ten minutes.' }),
    fresh
      ? el('p', { class: 'muted', text: `You signed in recently: you can delete the account until ${until.toLocaleTimeString()}.` })
      : signInAgain(),
  );
}

/** "Sign in again" for a session too old to erase an account without a password. */
function signInAgain() {
  return el(
    'p',
    { class: 'notice error' },
    'Your sign-in is more than ten minutes old. ',
    el('button', {
      type: 'button',
      class: 'secondary',
      text: 'Sign out and sign in again',
      onclick: async () => {
        await signOut().catch(() => {});
        app.signedOut('Sign in again, then delete your account within ten minutes.');
      },
    }),
  );
}

/**
 * Erasure: the password (or, without one, a recent sign-in) and a code when two-factor is on,
 * then an explicit confirmation. `session` is `GET /auth/session` (null: ask for a password).
 */
function deleteAccountForm(session) {
  const hasPassword = session?.has_password !== false;
  const status = el('div');
  const confirmArea = el('div');
  const codeField = el(
    'label',
    { class: 'field', hidden: true },
    el('span', { text: 'Two-factor code or recovery code' }),
    el('input', { name: 'code', autocomplete: 'one-time-code', spellcheck: 'false' }),
  );
  const form = el(
    'form',
    { class: 'card danger-zone', 'aria-labelledby': 'delete-title' },
    el('h3', { id: 'delete-title', text: 'Delete my account' }),
    el('p', { text: 'This erases your account for good: your memberships, sessions, keys and personal data go; your messages are removed or kept under an anonymous name, as each organization decides. Download your data first if you want a copy.' }),
    hasPassword
      ? el('label', { class: 'field' }, el('span', { text: 'Current password' }), el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }))
      : recentSignInNote(session),
    codeField,
    el('button', { type: 'submit', class: 'danger', text: 'Delete my account…' }),
    confirmArea,
    status,
  );
  const markInvalid = (field) => {
    for (const i of form.querySelectorAll('input')) i.removeAttribute('aria-invalid');
    const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
    input?.setAttribute('aria-invalid', 'true');
    input?.focus();
  };
  const erase = async () => {
    const v = formValues(form);
    const body = hasPassword ? { password: v.password } : {};
    if (v.code?.trim()) body.code = v.code.trim();
    try {
      await api('DELETE', '/users/@me', body);
    } catch (e) {
      confirmArea.replaceChildren();
      const field = e.field?.replace(/^\//, '') ?? null;
      if (field === 'code') codeField.hidden = false;
      if (e.code === 'reauthentication_required') {
        show(status, signInAgain());
        return;
      }
      const what =
        e.code === 'last_owner'
          ? `${e.message}. Make someone else an owner of that organization first.`
          : field === 'code' && e.code === 'required'
            ? 'Two-factor authentication is on: enter a code from your app (or a recovery code) too.'
            : e.message;
      show(status, notice(field ? `${field === 'code' ? 'Code' : 'Password'}: ${what}` : what));
      markInvalid(field);
      return;
    }
    setCsrfToken(null);
    app.signedOut('Your account was deleted.');
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    const yes = el('button', { type: 'button', class: 'danger', text: 'Yes, delete my account forever', onclick: erase });
    show(
      confirmArea,
      el(
        'div',
        { class: 'notice error', role: 'alertdialog', 'aria-label': 'Confirm account deletion' },
        el('p', { text: `Delete the account ${state.me.username}? This cannot be undone.` }),
        yes,
        ' ',
        el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => confirmArea.replaceChildren() }),
      ),
    );
    yes.focus();
  });
  return form;
}
