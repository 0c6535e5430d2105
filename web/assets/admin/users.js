// The Users section of the admin console (`/admin#/users`): every account with its status,
// create a user, enable or disable one, require 2FA of one, and impersonate one (the token is
// shown once and kept nowhere).

import { api } from '../api.js';
import { cardForm, el, field, notice, onSubmit, show } from '../dom.js';
import { copyButton, current, errorTo, table } from './console.js';

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
    el(
      'tr',
      { 'data-user-id': u.id },
      el('td', { text: u.username }),
      el('td', { text: u.email ?? '' }),
      el('td', { text: u.kind }),
      el('td', { text: u.server_admin ? 'yes' : 'no' }),
      el('td', { text: u.disabled ? 'disabled' : 'active' }),
      el('td', { text: u.require_2fa ? 'required' : '—' }),
      el(
        'td',
        { class: 'actions-cell' },
        u.id === current.me.id
          ? el('span', { class: 'muted', text: 'you' })
          : el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.username}`,
              text: u.disabled ? 'Enable' : 'Disable',
              onclick: () => api('PATCH', `/admin/users/${u.id}`, { disabled: !u.disabled }).then(usersView, errorTo(listStatus)),
            }),
        // Requiring 2FA: until the user turns it on, their session reaches only their account.
        u.kind === 'user' && !u.disabled
          ? el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `${u.require_2fa ? 'Stop requiring' : 'Require'} 2FA for ${u.username}`,
              text: u.require_2fa ? 'Stop requiring 2FA' : 'Require 2FA',
              onclick: () => api('PATCH', `/admin/users/${u.id}`, { require_2fa: !u.require_2fa }).then(usersView, errorTo(listStatus)),
            })
          : null,
        // The server refuses the rest (yourself, server admins, bots, disabled accounts).
        u.id !== current.me.id && !u.server_admin && !u.disabled && u.kind === 'user'
          ? el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `Impersonate ${u.username}`,
              text: 'Impersonate',
              onclick: () => impersonate(u, listStatus),
            })
          : null,
      ),
    ),
  );
  show(current.content, el('h2', { text: 'Users' }), listStatus, el('div', { class: 'table-scroll' }, table('All accounts', ['Username', 'Email', 'Kind', 'Server admin', 'Status', '2FA', 'Actions'], rows)), form);
}

/**
 * Starts an impersonated session as `u` and shows its bearer token once. The token is kept
 * nowhere (no storage, no cookie): this browser stays signed in as the admin.
 */
async function impersonate(u, status) {
  let r;
  try {
    r = await api('POST', `/admin/users/${u.id}/impersonate`, {});
  } catch (e) {
    show(status, notice(e.message));
    return;
  }
  const expires = new Date(r.expires_at);
  show(
    status,
    el(
      'div',
      { class: 'card secret-box', role: 'status', 'aria-labelledby': 'impersonation-title' },
      el('h3', { id: 'impersonation-title', text: `Impersonation token for ${u.username}` }),
      el('p', { class: 'warning', text: `Anyone holding this token acts as ${u.username} — reads and sends as them — until ${expires.toLocaleString()}. ${u.username} sees this impersonation among their security events, and everything done with it is recorded under your name.` }),
      el('p', { text: 'Copy it now: it is shown only once and kept nowhere. Send it as "Authorization: Bearer <token>"; this browser stays signed in as you. Revoking is done by the user (sessions page) or by disabling the account.' }),
      el('input', { readonly: true, value: r.token, 'aria-label': `Token to act as ${u.username}`, class: 'secret', spellcheck: 'false' }),
      el('p', { class: 'muted' }, 'Expires ', el('time', { datetime: r.expires_at, text: expires.toLocaleString() }), ` · session ${r.session_id}`),
      copyButton(r.token),
      el('button', { type: 'button', class: 'small', text: 'Dismiss', onclick: () => status.replaceChildren() }),
    ),
  );
  status.querySelector('input')?.focus();
}
