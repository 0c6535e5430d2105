// The admin console at `/admin`: users (with impersonation), orgs with their members, teams
// and bots, API keys, the audit log, capabilities.
// Sections are addressable as `/admin#/<section>`.

import { api, currentSession, signOut } from './api.js';
import { el, field, formValues, notice, show } from './dom.js';
import { signInView } from './signin.js';

const root = document.getElementById('app');
const nav = document.getElementById('nav');
const SECTIONS = [
  ['users', 'Users'],
  ['orgs', 'Organizations'],
  ['api-keys', 'API keys'],
  ['audit', 'Audit log'],
  ['capabilities', 'Capabilities'],
];
const SCOPES = ['messages:read', 'messages:write', 'conversations:read', 'conversations:admin', 'org:read', 'org:admin', 'files:write', 'webhooks:admin'];
const ROLES = ['owner', 'admin', 'member', 'viewer'];

let me = null;
let content = null;

async function start() {
  const session = await currentSession();
  if (session) signedIn(session.user);
  else signInView(root, signedIn);
}

function signedIn(user) {
  me = user;
  show(
    nav,
    el('span', { class: 'who', text: `Signed in as ${user.display_name || user.username}` }),
    el('a', { href: '/', text: 'Chat' }),
    el('button', {
      type: 'button',
      class: 'link',
      text: 'Sign out',
      onclick: async () => {
        await signOut().catch(() => {});
        location.reload();
      },
    }),
  );
  const tabs = el('nav', { class: 'tabs', 'aria-label': 'Admin sections' }, SECTIONS.map(([id, label]) => el('a', { href: `#/${id}`, 'data-section': id, text: label })));
  content = el('section', { class: 'content admin-content', 'aria-live': 'polite' });
  show(root, tabs, content);
  render();
}

window.addEventListener('hashchange', () => {
  if (me) render();
});

function render() {
  const id = location.hash.replace(/^#\//, '') || 'users';
  for (const a of document.querySelectorAll('.tabs a')) {
    if (a.dataset.section === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = { users: usersView, orgs: orgsView, 'api-keys': keysView, audit: auditView, capabilities: capabilitiesView }[id];
  if (!view) {
    show(content, notice('No such section.'));
    return;
  }
  view().catch((e) => show(content, notice(e.status === 403 ? 'This section needs a server administrator.' : e.message)));
}

function errorTo(node) {
  return (e) => show(node, notice(e.message));
}

function table(caption, headers, rows) {
  return el(
    'table',
    {},
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'empty', text: 'None.' }))),
  );
}

// ---- users --------------------------------------------------------------------------------

async function usersView() {
  const status = el('div');
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': 'new-user-title' },
    el('h3', { id: 'new-user-title', text: 'Create a user' }),
    field('Username', { name: 'username', required: true, autocomplete: 'off' }),
    field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' }),
    field('Email (optional)', { name: 'email', type: 'email', autocomplete: 'off' }),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'server_admin' }), el('span', { text: 'Server administrator' })),
    el('button', { type: 'submit', text: 'Create user' }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    try {
      const u = await api('POST', '/admin/users', {
        username: v.username.trim(),
        password: v.password,
        email: v.email ? v.email.trim() : undefined,
        server_admin: v.server_admin === 'on',
      });
      await usersView();
      content.prepend(notice(`User ${u.username} created.`, 'info'));
    } catch (e) {
      show(status, notice(e.message));
    }
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
        u.id === me.id
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
        u.id !== me.id && !u.server_admin && !u.disabled && u.kind === 'user'
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
  show(content, el('h2', { text: 'Users' }), listStatus, el('div', { class: 'table-scroll' }, table('All accounts', ['Username', 'Email', 'Kind', 'Server admin', 'Status', '2FA', 'Actions'], rows)), form);
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
      el('button', { type: 'button', class: 'small', text: 'Copy', onclick: () => navigator.clipboard?.writeText(r.token) }),
      el('button', { type: 'button', class: 'small', text: 'Dismiss', onclick: () => status.replaceChildren() }),
    ),
  );
  status.querySelector('input')?.focus();
}

// ---- orgs ---------------------------------------------------------------------------------

async function orgsView() {
  const status = el('div');
  const form = el(
    'form',
    { class: 'inline-form', 'aria-label': 'Create an organization' },
    el('input', { name: 'name', 'aria-label': 'Organization name', placeholder: 'Organization name', required: true }),
    el('button', { type: 'submit', text: 'Create organization' }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/orgs', { name: formValues(form).name.trim() });
      await orgsView();
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  const orgs = await api('GET', '/orgs');
  const sections = await Promise.all(orgs.items.map(orgSection));
  show(
    content,
    el('h2', { text: 'Organizations' }),
    el('p', { class: 'muted', text: 'Organizations you belong to, with their members and roles.' }),
    form,
    status,
    sections,
  );
}

async function orgSection(org, { revealed } = {}) {
  const status = el('div');
  const canManage = ['owner', 'admin'].includes(org.role);
  const [members, matrix, teams, bots] = await Promise.all([
    api('GET', `/orgs/${org.id}/members?limit=100`),
    // Roles that may not read the matrix, the teams or the bots simply go without them.
    api('GET', `/orgs/${org.id}/permissions/matrix`).catch(() => null),
    api('GET', `/orgs/${org.id}/teams`).catch(() => null),
    canManage ? api('GET', `/orgs/${org.id}/bots`).catch(() => null) : null,
  ]);
  const invites = canManage ? await api('GET', `/orgs/${org.id}/invites`).catch(() => null) : null;
  const rows = members.items.map((m) => {
    // A bot's account is named `bot-…`: show its display name (the bot's name) with a mark.
    const name = m.user.kind === 'bot' ? `${m.user.display_name || m.user.username} (bot)` : m.user.username;
    const roleSelect = el(
      'select',
      { 'aria-label': `Role of ${name}`, disabled: !canManage || m.user.id === me.id },
      ROLES.map((r) => el('option', { value: r, text: r, selected: r === m.role })),
    );
    roleSelect.addEventListener('change', () =>
      api('PATCH', `/orgs/${org.id}/members/${m.user.id}`, { role: roleSelect.value }).then(orgsView, errorTo(status)),
    );
    return el(
      'tr',
      {},
      el('td', { text: name }),
      el('td', {}, roleSelect),
      el(
        'td',
        {},
        canManage && m.user.id !== me.id
          ? el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `Remove ${name} from ${org.name}`,
              text: 'Remove',
              onclick: () => api('DELETE', `/orgs/${org.id}/members/${m.user.id}`).then(orgsView, errorTo(status)),
            })
          : null,
      ),
    );
  });
  // Owners and admins invite by username (the person accepts, AZ-7); a server admin may also add
  // an existing account directly.
  const add = el(
    'form',
    { class: 'inline-form', 'aria-label': `Add a member to ${org.name}` },
    el('input', { name: 'username', 'aria-label': `Username to add to ${org.name}`, placeholder: 'username', required: true }),
    el('select', { name: 'role', 'aria-label': 'Role for the new member' }, ROLES.map((r) => el('option', { value: r, text: r, selected: r === 'member' }))),
    el('button', { type: 'submit', value: 'invite', text: 'Invite' }),
    me.server_admin ? el('button', { type: 'submit', value: 'add', class: 'secondary', text: 'Add member' }) : null,
  );
  add.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(add);
    const username = v.username.trim();
    try {
      if (ev.submitter?.value === 'add') {
        await api('POST', `/orgs/${org.id}/members`, { username, role: v.role });
        await orgsView();
      } else {
        await api('POST', `/orgs/${org.id}/invites`, { username, role: v.role });
        await refreshOrg(org, `Username to add to ${org.name}`);
      }
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  return el(
    'section',
    { class: 'card', 'data-org-id': org.id, 'aria-label': org.name },
    el('h3', { text: org.name }),
    el('p', { class: 'muted', text: `Your role: ${org.role}${org.require_2fa ? ' · two-factor required' : ''}` }),
    table(`Members of ${org.name}`, ['User', 'Role', 'Actions'], rows),
    canManage ? add : null,
    status,
    invites ? invitesPart(org, invites.items) : null,
    teams ? teamsPart(org, canManage, teams.items, members.items) : null,
    bots ? botsPart(org, bots.items, revealed) : null,
    matrix ? matrixTable(org, matrix) : null,
  );
}

/** The org's invites, with who they name, their use and expiry, and a revoke button each. */
function invitesPart(org, invites) {
  const status = el('div');
  const rows = invites.map((i) => {
    const who = i.username ?? 'anyone with the code';
    const uses = i.max_uses ? `${i.uses} of ${i.max_uses}` : String(i.uses);
    return el(
      'tr',
      {},
      el('td', { text: who }),
      el('td', { text: i.role }),
      el('td', { text: uses }),
      el('td', {}, i.expires_at ? el('time', { datetime: i.expires_at, text: new Date(i.expires_at).toLocaleString() }) : 'never'),
      el(
        'td',
        {},
        el('button', {
          type: 'button',
          class: 'small',
          'aria-label': `Revoke the invite for ${who}`,
          text: 'Revoke',
          onclick: () => api('DELETE', `/orgs/${org.id}/invites/${i.id}`).then(() => refreshOrg(org), errorTo(status)),
        }),
      ),
    );
  });
  return el(
    'div',
    {},
    invites.length
      ? el('div', { class: 'table-scroll' }, table(`Invites of ${org.name}`, ['Invited', 'Role', 'Used', 'Expires', 'Actions'], rows))
      : el('p', { class: 'muted', text: 'No invites.' }),
    status,
  );
}

/** Re-renders one org's card in place (keeps the rest of the page, and the focus nearby). */
async function refreshOrg(org, focusLabel, opts) {
  const card = content.querySelector(`[data-org-id="${CSS.escape(org.id)}"]`);
  const fresh = await orgSection(org, opts);
  if (card) card.replaceWith(fresh);
  if (focusLabel) fresh.querySelector(`[aria-label="${CSS.escape(focusLabel)}"]`)?.focus();
  return fresh;
}

/** The org's teams: who is in each, and (owners and admins) create, add and remove. */
function teamsPart(org, canManage, teams, members) {
  const status = el('div');
  const names = new Map(members.map((m) => [m.user.id, m.user.username]));
  const rows = teams.map((t) => {
    const inTeam = new Set(t.member_ids);
    const who = t.member_ids.map((id) => {
      const name = names.get(id) ?? id;
      return el(
        'li',
        { 'data-user-id': id },
        el('span', { text: name }),
        canManage
          ? el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `Remove ${name} from team ${t.name}`,
              text: 'Remove',
              onclick: () => api('DELETE', `/orgs/${org.id}/teams/${t.id}/members/${id}`).then(() => refreshOrg(org, `Add to team ${t.name}`), errorTo(status)),
            })
          : null,
      );
    });
    const candidates = members.filter((m) => !inTeam.has(m.user.id) && m.user.kind !== 'bot');
    let addForm = null;
    if (canManage && candidates.length > 0) {
      addForm = el(
        'form',
        { class: 'inline-form', 'aria-label': `Add a member to team ${t.name}` },
        el('select', { name: 'user', 'aria-label': `Add to team ${t.name}` }, candidates.map((m) => el('option', { value: m.user.id, text: m.user.username }))),
        el('button', { type: 'submit', class: 'small', text: 'Add to team' }),
      );
      addForm.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const user = formValues(addForm).user;
        api('POST', `/orgs/${org.id}/teams/${t.id}/members/${user}`).then(() => refreshOrg(org, `Add to team ${t.name}`), errorTo(status));
      });
    }
    return el(
      'tr',
      { 'data-team-id': t.id },
      el('th', { scope: 'row', text: t.name }),
      el('td', {}, who.length ? el('ul', { class: 'plain-list', 'aria-label': `Members of team ${t.name}` }, who) : el('span', { class: 'muted', text: 'No members.' })),
      canManage ? el('td', {}, addForm ?? el('span', { class: 'muted', text: 'Everyone is in it.' })) : null,
    );
  });
  let create = null;
  if (canManage) {
    create = el(
      'form',
      { class: 'inline-form', 'aria-label': `Create a team in ${org.name}` },
      el('input', { name: 'name', 'aria-label': `New team name in ${org.name}`, placeholder: 'Team name', required: true, maxlength: 100 }),
      el('button', { type: 'submit', text: 'Create team' }),
    );
    create.addEventListener('submit', (ev) => {
      ev.preventDefault();
      api('POST', `/orgs/${org.id}/teams`, { name: formValues(create).name.trim() }).then(() => refreshOrg(org, `New team name in ${org.name}`), errorTo(status));
    });
  }
  return el(
    'section',
    { class: 'org-part', 'aria-label': `Teams of ${org.name}` },
    el('h4', { text: 'Teams' }),
    table(`Teams of ${org.name}`, canManage ? ['Team', 'Members', 'Add'] : ['Team', 'Members'], rows),
    create,
    status,
  );
}

/**
 * The org's bots (owners and admins): create one, rotate its token. `revealed` (`{bot, what}`)
 * is a token just issued: shown once, above the list.
 */
function botsPart(org, bots, revealed) {
  const status = el('div');
  const secret = revealed
    ? el(
        'div',
        { class: 'card secret-box', role: 'status' },
        el('h5', { text: `Token of bot "${revealed.bot.name}" ${revealed.what}` }),
        el('p', { text: 'Copy it now: it is shown only once. The bot sends it as "Authorization: Bot <token>".' }),
        el('input', { readonly: true, value: revealed.bot.token, 'aria-label': `New token of bot ${revealed.bot.name}`, class: 'secret', spellcheck: 'false' }),
        el('button', { type: 'button', class: 'small', text: 'Copy', onclick: () => navigator.clipboard?.writeText(revealed.bot.token) }),
      )
    : null;
  const withSecret = (what) => (bot) => refreshOrg(org, `New token of bot ${bot.name}`, { revealed: { bot, what } });
  const rows = bots.map((b) =>
    el(
      'tr',
      { 'data-bot-id': b.id },
      el('th', { scope: 'row', text: b.name }),
      el('td', {}, el('code', { text: b.token })),
      el('td', { text: new Date(b.created_at).toLocaleString() }),
      el(
        'td',
        {},
        el('button', {
          type: 'button',
          class: 'small',
          'aria-label': `Rotate token of bot ${b.name}`,
          text: 'Rotate token',
          onclick: () => api('POST', `/orgs/${org.id}/bots/${b.id}/token`, {}).then(withSecret('rotated'), errorTo(status)),
        }),
      ),
    ),
  );
  const create = el(
    'form',
    { class: 'inline-form', 'aria-label': `Create a bot in ${org.name}` },
    el('input', { name: 'name', 'aria-label': `New bot name in ${org.name}`, placeholder: 'Bot name', required: true, maxlength: 64 }),
    el('button', { type: 'submit', text: 'Create bot' }),
  );
  create.addEventListener('submit', (ev) => {
    ev.preventDefault();
    api('POST', `/orgs/${org.id}/bots`, { name: formValues(create).name.trim() }).then(withSecret('created'), errorTo(status));
  });
  return el(
    'section',
    { class: 'org-part bots-part', 'aria-label': `Bots of ${org.name}` },
    el('h4', { text: 'Bots' }),
    secret,
    table(`Bots of ${org.name}`, ['Bot', 'Token', 'Created', 'Actions'], rows),
    create,
    status,
  );
}

/** Which roles may do what in the org, as the server's policy computes it. */
function matrixTable(org, matrix) {
  const roles = ['owner', 'admin', 'member', 'viewer'];
  return el(
    'details',
    { class: 'matrix' },
    el('summary', { text: 'Permissions by role' }),
    table(
      `Permissions in ${org.name}`,
      ['Action', ...roles],
      matrix.roles.map((entry) =>
        el('tr', {}, el('th', { scope: 'row', text: entry.action.replaceAll('_', ' ') }), roles.map((r) => el('td', { class: entry[r] ? 'yes' : 'no', text: entry[r] ? 'yes' : 'no' }))),
      ),
    ),
  );
}

// ---- API keys -----------------------------------------------------------------------------

async function keysView() {
  const [keys, orgs] = await Promise.all([api('GET', '/api-keys'), api('GET', '/orgs')]);
  const status = el('div');
  const secret = el('div');
  const form = el(
    'form',
    { class: 'card', 'aria-labelledby': 'new-key-title' },
    el('h3', { id: 'new-key-title', text: 'Create an API key' }),
    field('Key name', { name: 'name', required: true, autocomplete: 'off' }),
    el('label', { class: 'field' }, el('span', { text: 'Organization' }), el('select', { name: 'org_id', required: true }, orgs.items.map((o) => el('option', { value: o.id, text: o.name })))),
    el(
      'fieldset',
      {},
      el('legend', { text: 'Scopes' }),
      SCOPES.map((s) => el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'scope', value: s }), el('span', { text: s }))),
    ),
    el('button', { type: 'submit', text: 'Create API key', disabled: orgs.items.length === 0 }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const scopes = new FormData(form).getAll('scope');
    try {
      const k = await api('POST', '/api-keys', { name: formValues(form).name.trim(), org_id: new FormData(form).get('org_id'), scopes });
      await keysView();
      const value = el('input', { readonly: true, value: k.key, 'aria-label': 'New API key secret', class: 'secret' });
      show(
        secret,
        el(
          'div',
          { class: 'card secret-box', role: 'status' },
          el('h3', { text: `Key "${k.name}" created` }),
          el('p', { text: 'Copy it now: it is shown only once.' }),
          value,
          el('button', { type: 'button', text: 'Copy', onclick: () => navigator.clipboard?.writeText(k.key) }),
        ),
      );
      content.prepend(secret);
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  const orgName = new Map(orgs.items.map((o) => [o.id, o.name]));
  const listStatus = el('div');
  const rows = keys.items.map((k) =>
    el(
      'tr',
      { 'data-key-id': k.id },
      el('td', { text: k.name }),
      el('td', {}, el('code', { text: k.key })),
      el('td', { text: orgName.get(k.org_id) ?? k.org_id }),
      el('td', { text: k.scopes.join(', ') }),
      el('td', { text: k.last_used_at ? new Date(k.last_used_at).toLocaleString() : 'never' }),
      el(
        'td',
        {},
        el('button', {
          type: 'button',
          class: 'small',
          'aria-label': `Revoke API key ${k.name}`,
          text: 'Revoke',
          onclick: () => api('DELETE', `/api-keys/${k.id}`).then(keysView, errorTo(listStatus)),
        }),
      ),
    ),
  );
  show(content, el('h2', { text: 'API keys' }), el('p', { class: 'muted', text: 'Your API keys. Each acts as you, capped by its scopes.' }), listStatus, table('API keys', ['Name', 'Key', 'Organization', 'Scopes', 'Last used', 'Actions'], rows), form);
}

// ---- audit log ----------------------------------------------------------------------------

const AUDIT_EVENTS = ['auth.login', 'auth.logout', 'auth.second_factor', 'session.revoked', 'sessions.revoked_others', 'password.changed', 'password.reset', 'totp.enabled', 'totp.disabled', 'impersonation.started', 'admin.user_updated', 'user.exported', 'user.erased'];
const AUDIT_FILTERS = ['event', 'actor', 'org', 'since', 'until'];
/** The filters in force (kept while moving between sections). */
const audit = { filters: {}, limit: 25 };

/** `datetime-local` value (local time) → RFC 3339, or the text as typed when not a date. */
function rfc3339(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

async function auditView() {
  const [users, orgs] = await Promise.all([api('GET', '/admin/users?limit=100').catch(() => ({ items: [] })), api('GET', '/orgs').catch(() => ({ items: [] }))]);
  const names = new Map(users.items.map((u) => [u.id, u.username]));
  const orgNames = new Map(orgs.items.map((o) => [o.id, o.name]));
  const status = el('div');
  const verifyResult = el('div');
  const body = el('tbody');
  const more = el('div', { class: 'pager' });
  // Known users by name (ids are time-ordered, so a prefix tells them apart poorly); others by id.
  const who = (id) => (id ? names.get(id) ?? id : '');

  const input = (name, label, attrs = {}) =>
    el('label', { class: 'field' }, el('span', { text: label }), el('input', { name, value: audit.filters[name] ?? '', autocomplete: 'off', ...attrs }));
  const form = el(
    'form',
    { class: 'card filters', 'aria-label': 'Audit log filters' },
    input('event', 'Event', { list: 'audit-events', placeholder: 'auth.login' }),
    el('datalist', { id: 'audit-events' }, AUDIT_EVENTS.map((e) => el('option', { value: e }))),
    input('actor', 'Actor id', { placeholder: 'user, bot or API key id', spellcheck: 'false' }),
    input('org', 'Organization id', { list: 'audit-orgs', placeholder: 'org id', spellcheck: 'false' }),
    el('datalist', { id: 'audit-orgs' }, orgs.items.map((o) => el('option', { value: o.id, text: o.name }))),
    input('since', 'Since', { type: 'datetime-local', step: 1 }),
    input('until', 'Until', { type: 'datetime-local', step: 1 }),
    el(
      'label',
      { class: 'field' },
      el('span', { text: 'Rows per page' }),
      el('select', { name: 'limit' }, [10, 25, 50, 100].map((n) => el('option', { value: n, text: String(n), selected: n === audit.limit }))),
    ),
    el('div', { class: 'filter-buttons' }, el('button', { type: 'submit', text: 'Apply filters' }), el('button', { type: 'reset', class: 'secondary', text: 'Clear' })),
  );

  const row = (e) => {
    const reason = e.detail?.reason ? ` (${e.detail.reason})` : '';
    return el(
      'tr',
      { 'data-event-id': e.id, class: e.outcome === 'failure' ? 'failed' : null },
      el('td', {}, el('time', { datetime: e.at, text: new Date(e.at).toLocaleString() })),
      el('td', {}, el('code', { text: e.event })),
      el(
        'td',
        {},
        el('span', { text: e.actor.id ? `${e.actor.type} ${who(e.actor.id)}` : e.actor.type }),
        e.actor.impersonator ? el('span', { class: 'flag', text: `impersonated by ${who(e.actor.impersonator)}` }) : null,
      ),
      el('td', { text: e.resource.type ? `${e.resource.type} ${e.resource.type === 'user' ? who(e.resource.id) : e.resource.id ?? ''}` : '' }),
      el('td', { text: e.org_id ? orgNames.get(e.org_id) ?? e.org_id : '' }),
      el('td', { text: e.ip ?? '' }),
      el('td', { class: e.outcome === 'failure' ? 'outcome-failure' : 'outcome-success', text: `${e.outcome}${reason}` }),
    );
  };

  const load = async (before) => {
    const q = new URLSearchParams();
    for (const k of AUDIT_FILTERS) if (audit.filters[k]) q.set(k, k === 'since' || k === 'until' ? rfc3339(audit.filters[k]) : audit.filters[k]);
    q.set('limit', String(audit.limit));
    if (before) q.set('before', before);
    for (const i of form.querySelectorAll('input')) i.removeAttribute('aria-invalid');
    let page;
    try {
      page = await api('GET', `/admin/audit?${q}`);
    } catch (e) {
      const f = e.field?.replace(/^\//, '');
      const bad = f ? form.querySelector(`[name="${CSS.escape(f)}"]`) : null;
      bad?.setAttribute('aria-invalid', 'true');
      show(status, notice(f ? `${f}: ${e.message}` : e.message));
      if (!before) body.replaceChildren();
      more.replaceChildren();
      return;
    }
    status.replaceChildren();
    if (!before) body.replaceChildren();
    body.append(...page.items.map(row));
    if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'No events match.' })));
    show(
      more,
      el('span', { class: 'muted', text: `${body.querySelectorAll('tr[data-event-id]').length} events shown` }),
      page.next ? el('button', { type: 'button', class: 'small', text: 'Older events', onclick: (ev) => { ev.target.disabled = true; load(page.next); } }) : el('span', { class: 'muted', text: ' · no older events' }),
    );
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    audit.filters = Object.fromEntries(AUDIT_FILTERS.map((k) => [k, (v[k] ?? '').trim()]).filter(([, x]) => x));
    audit.limit = Number(v.limit) || 25;
    load();
  });
  form.addEventListener('reset', () => {
    audit.filters = {};
    setTimeout(load);
  });

  const verify = el('button', {
    type: 'button',
    text: 'Verify chain',
    onclick: async () => {
      verify.disabled = true;
      try {
        const r = await api('GET', '/admin/audit/verify');
        show(
          verifyResult,
          r.ok
            ? notice(`Chain intact: ${r.checked} rows checked in ${r.chains.length} chain${r.chains.length === 1 ? '' : 's'}.`, 'info')
            : notice(`Chain broken: ${r.problem ?? 'problem'}${r.first_bad ? ` at row ${r.first_bad}` : ''} (${r.checked} rows checked).`),
        );
      } catch (e) {
        show(verifyResult, notice(e.message));
      } finally {
        verify.disabled = false;
      }
    },
  });

  show(
    content,
    el('h2', { text: 'Audit log' }),
    el('p', { class: 'muted', text: 'Every security-relevant change on the server, newest first. Rows are chained by HMAC: verification finds a row altered, inserted or removed.' }),
    el('div', { class: 'card' }, el('h3', { text: 'Integrity' }), verify, verifyResult),
    form,
    status,
    el('div', { class: 'table-scroll' }, table('Audit events', ['Time', 'Event', 'Actor', 'Resource', 'Organization', 'IP', 'Outcome'], []), more),
  );
  const t = content.querySelector('table tbody');
  t.replaceWith(body);
  await load();
}

// ---- capabilities -------------------------------------------------------------------------

async function capabilitiesView() {
  const caps = await api('GET', '/capabilities');
  const rows = (obj, prefix = '') =>
    Object.entries(obj).flatMap(([k, v]) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? rows(v, `${prefix}${k}.`)
        : [el('tr', {}, el('th', { scope: 'row', text: `${prefix}${k}` }), el('td', { text: Array.isArray(v) ? v.join(', ') : String(v) }))],
    );
  show(content, el('h2', { text: 'Capabilities' }), el('p', { class: 'muted', text: 'What this server reports to clients (GET /api/v1/capabilities).' }), el('table', {}, el('caption', { text: 'Server capabilities' }), el('tbody', {}, rows(caps))));
}

start().catch((e) => show(root, notice(`Could not start: ${e.message}`)));
