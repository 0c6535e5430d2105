// The Organizations section of the admin console (`/admin#/orgs`): my orgs, each a card with
// its members and their roles, the invite (or, for server admins, add) form, and the parts in
// `org-parts.js` (invites, teams, bots); the permissions matrix by role; create an org.

import { api } from '../api.js';
import { el, inlineForm, notice, onSubmit, show, smallButton } from '../dom.js';
import { current, errorTo, ROLES, row, table } from './console.js';
import { botsPart, invitesPart, teamsPart } from './org-parts.js';

export async function orgsView() {
  const status = el('div');
  const form = inlineForm(
    'Create an organization',
    { name: 'name', 'aria-label': 'Organization name', placeholder: 'Organization name', required: true },
    'Create organization',
    async (values) => {
      try {
        await api('POST', '/orgs', { name: values.name.trim() });
        await orgsView();
      } catch (e) {
        show(status, notice(e.message));
      }
    },
  );
  const orgs = await api('GET', '/orgs');
  const sections = await Promise.all(orgs.items.map(orgSection));
  show(
    current.content,
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
      { 'aria-label': `Role of ${name}`, disabled: !canManage || m.user.id === current.me.id },
      ROLES.map((r) => el('option', { value: r, text: r, selected: r === m.role })),
    );
    roleSelect.addEventListener('change', () =>
      api('PATCH', `/orgs/${org.id}/members/${m.user.id}`, { role: roleSelect.value }).then(orgsView, errorTo(status)),
    );
    return row(
      {},
      name,
      roleSelect,
      canManage && m.user.id !== current.me.id
        ? smallButton('Remove', `Remove ${name} from ${org.name}`, () => api('DELETE', `/orgs/${org.id}/members/${m.user.id}`).then(orgsView, errorTo(status)))
        : null,
    );
  });
  // Owners and admins invite by username (the person accepts, AZ-7); a server admin may also add
  // an existing account directly.
  const refresh = (focusLabel, opts) => refreshOrg(org, focusLabel, opts);
  const add = el(
    'form',
    { class: 'inline-form', 'aria-label': `Add a member to ${org.name}` },
    el('input', { name: 'username', 'aria-label': `Username to add to ${org.name}`, placeholder: 'username', required: true }),
    el('select', { name: 'role', 'aria-label': 'Role for the new member' }, ROLES.map((r) => el('option', { value: r, text: r, selected: r === 'member' }))),
    el('button', { type: 'submit', value: 'invite', text: 'Invite' }),
    current.me.server_admin ? el('button', { type: 'submit', value: 'add', class: 'secondary', text: 'Add member' }) : null,
  );
  onSubmit(add, status, async (v, ev) => {
    const username = v.username.trim();
    if (ev.submitter?.value === 'add') {
      await api('POST', `/orgs/${org.id}/members`, { username, role: v.role });
      await orgsView();
    } else {
      await api('POST', `/orgs/${org.id}/invites`, { username, role: v.role });
      await refresh(`Username to add to ${org.name}`);
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
    invites ? invitesPart(org, invites.items, refresh) : null,
    teams ? teamsPart(org, canManage, teams.items, members.items, refresh) : null,
    bots ? botsPart(org, bots.items, revealed, refresh) : null,
    matrix ? matrixTable(org, matrix) : null,
  );
}

/** Re-renders one org's card in place (keeps the rest of the page, and the focus nearby). */
async function refreshOrg(org, focusLabel, opts) {
  const card = current.content.querySelector(`[data-org-id="${CSS.escape(org.id)}"]`);
  const fresh = await orgSection(org, opts);
  if (card) card.replaceWith(fresh);
  if (focusLabel) fresh.querySelector(`[aria-label="${CSS.escape(focusLabel)}"]`)?.focus();
  return fresh;
}

/** Which roles may do what in the org, as the server's policy computes it. */
function matrixTable(org, matrix) {
  return el(
    'details',
    { class: 'matrix' },
    el('summary', { text: 'Permissions by role' }),
    table(
      `Permissions in ${org.name}`,
      ['Action', ...ROLES],
      matrix.roles.map((entry) =>
        el('tr', {}, el('th', { scope: 'row', text: entry.action.replaceAll('_', ' ') }), ROLES.map((r) => el('td', { class: entry[r] ? 'yes' : 'no', text: entry[r] ? 'yes' : 'no' }))),
      ),
    ),
  );
}
