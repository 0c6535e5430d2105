// The Users section of the admin console (`/admin#/users`): every account with its status and
// file usage (bytes against the per-user quota, files stored), their linked SSO identities, create a user, enable or disable one, require 2FA of one, impersonate one (the token is
// shown once and kept nowhere), and make a one-time password reset link for one.

import { api } from '../api.js';
import { cardForm, el, field, formatBytes, notice, onSubmit, show, smallButton } from '../dom.js';
import { copyButton, current, errorTo, row, table } from './console.js';

export async function usersView() {
  const status = el('div');
  const form = cardForm(
    'new-user-title',
    'Create a user',
    field('Username', { name: 'username', required: true, autocomplete: 'off' }),
    field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' }),
    field('Email (optional)', { name: 'email', type: 'email', autocomplete: 'off' }),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'server_admin' }), el('span', { text: 'Server administrator' })),
    el('button', { type: 'submit', text: 'Create user' }),
    status,
  );
  onSubmit(form, status, async (v) => {
    const u = await api('POST', '/admin/users', {
      username: v.username.trim(),
      password: v.password,
      email: v.email ? v.email.trim() : undefined,
      server_admin: v.server_admin === 'on',
    });
    await usersView();
    current.content.prepend(notice(`User ${u.username} created.`, 'info'));
  });
  const users = await api('GET', '/admin/users?limit=100');
  const listStatus = el('div');
  const rows = users.items.map((u) =>
    row(
      { 'data-user-id': u.id },
      u.username,
      u.email ?? '',
      u.kind,
      u.server_admin ? 'yes' : 'no',
      u.disabled ? 'disabled' : 'active',
      u.require_2fa ? 'required' : '—',
      usageCell(u),
      el(
        'td',
        { class: 'actions-cell' },
        u.id === current.me.id
          ? el('span', { class: 'muted', text: 'you' })
          : smallButton(
              u.disabled ? 'Enable' : 'Disable',
              `${u.disabled ? 'Enable' : 'Disable'} ${u.username}`,
              () => api('PATCH', `/admin/users/${u.id}`, { disabled: !u.disabled }).then(usersView, errorTo(listStatus)),
            ),
        // Requiring 2FA: until the user turns it on, their session reaches only their account.
        u.kind === 'user' && !u.disabled
          ? smallButton(
              u.require_2fa ? 'Stop requiring 2FA' : 'Require 2FA',
              `${u.require_2fa ? 'Stop requiring' : 'Require'} 2FA for ${u.username}`,
              () => api('PATCH', `/admin/users/${u.id}`, { require_2fa: !u.require_2fa }).then(usersView, errorTo(listStatus)),
            )
          : null,
        // The server refuses the rest (yourself, server admins, bots, disabled accounts).
        u.id !== current.me.id && !u.server_admin && !u.disabled && u.kind === 'user'
          ? smallButton(
              'Impersonate',
              `Impersonate ${u.username}`,
              () => impersonate(u, listStatus),
            )
          : null,
        u.kind === 'user'
          ? smallButton('Reset password', `Make a password reset link for ${u.username}`, () => resetPassword(u, listStatus))
          : null,
        u.kind === 'user' ? smallButton('Identities', `Linked identities of ${u.username}`, () => identities(u, listStatus)) : null,
      ),
    ),
  );
  show(current.content, el('h2', { text: 'Users' }), listStatus, el('div', { class: 'table-scroll' }, table('All accounts', ['Username', 'Email', 'Kind', 'Server admin', 'Status', '2FA', 'Files', 'Actions'], rows)), form);
}

/** The outside identities (SSO) linked to `u`, in the status area. */
async function identities(u, status) {
  let r;
  try {
    r = await api('GET', `/admin/users/${u.id}/identities`);
  } catch (e) {
    show(status, notice(e.message));
    return;
  }
  const rows = r.items.map((i) => row({}, i.kind, i.provider, i.subject, new Date(i.created_at).toLocaleString(), new Date(i.last_used_at).toLocaleString()));
  show(
    status,
    el(
      'div',
      { class: 'card', role: 'status' },
      table(`Identities linked to ${u.username}`, ['Kind', 'Provider', 'Subject', 'Linked', 'Last used'], rows),
      el('button', { type: 'button', class: 'small', text: 'Dismiss', onclick: () => status.replaceChildren() }),
    ),
  );
}

/** What the user's files take: bytes of the quota (a meter too) and how many files. */
function usageCell(u) {
  const usage = u.file_usage;
  if (!usage) return '';
  const files = `${usage.files} file${usage.files === 1 ? '' : 's'}`;
  return el(
    'td',
    { class: 'usage-cell' },
    el('meter', { min: 0, max: usage.quota_bytes, value: usage.used_bytes, high: usage.quota_bytes * 0.9, 'aria-label': `File storage used by ${u.username}` }),
    el('span', { text: `${formatBytes(usage.used_bytes)} of ${formatBytes(usage.quota_bytes)} · ${files}` }),
  );
}

/**
 * Starts an impersonated session as `u` and shows its bearer token once. The token is kept
 * nowhere (no storage, no cookie): this browser stays signed in as the admin.
 */
async function impersonate(u, status) {
  const r = await postTo(`/admin/users/${u.id}/impersonate`, status);
  if (!r) return;
  const expires = new Date(r.expires_at);
  secretBox(
    status,
    'impersonation-title',
    `Impersonation token for ${u.username}`,
    [
      el('p', { class: 'warning', text: `Anyone holding this token acts as ${u.username} — reads and sends as them — until ${expires.toLocaleString()}. ${u.username} sees this impersonation among their security events, and everything done with it is recorded under your name.` }),
      el('p', { text: 'Copy it now: it is shown only once and kept nowhere. Send it as "Authorization: Bearer <token>"; this browser stays signed in as you. Revoking is done by the user (sessions page) or by disabling the account.' }),
    ],
    r.token,
    `Token to act as ${u.username}`,
    el('p', { class: 'muted' }, 'Expires ', el('time', { datetime: r.expires_at, text: expires.toLocaleString() }), ` · session ${r.session_id}`),
  );
}

/** POSTs `{}` to `path`: its answer, or null with the error shown in `status`. */
async function postTo(path, status) {
  try {
    return await api('POST', path, {});
  } catch (e) {
    show(status, notice(e.message));
    return null;
  }
}

/** Shows a secret once in `status`: a title, what to know, the value to copy, and a dismiss. */
function secretBox(status, id, title, warnings, value, label, after = null) {
  show(
    status,
    el(
      'div',
      { class: 'card secret-box', role: 'status', 'aria-labelledby': id },
      el('h3', { id, text: title }),
      ...warnings,
      el('input', { readonly: true, value, 'aria-label': label, class: 'secret', spellcheck: 'false' }),
      after,
      copyButton(value),
      el('button', { type: 'button', class: 'small', text: 'Dismiss', onclick: () => status.replaceChildren() }),
    ),
  );
  status.querySelector('input')?.focus();
}

/**
 * Makes a one-time password reset link for `u` (an hour) and shows it once: every session of
 * `u` has ended; whoever opens the link sets the password.
 */
async function resetPassword(u, status) {
  const r = await postTo(`/admin/users/${u.id}/password-reset`, status);
  if (!r) return;
  const expires = new Date(r.expires_at);
  secretBox(
    status,
    'reset-title',
    `Password reset link for ${u.username}`,
    [el('p', { class: 'warning', text: `Whoever opens this link sets the password of ${u.username}: give it to them only, over a channel you trust. It works once, until ${expires.toLocaleString()}; a newer link replaces it. Every session of ${u.username} has been signed out.` })],
    r.url,
    `Password reset link for ${u.username}`,
  );
}
