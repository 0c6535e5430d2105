// The home view of the chat client: my pending invitations, each with its Accept button, and
// for owners and admins of the chosen org a form that invites a person by username (AZ-7).

import { api } from '../api.js';
import { card, el, formValues, notice, show } from '../dom.js';
import { app, state, ui } from './state.js';

const ROLES = ['member', 'viewer', 'admin', 'owner'];

/** The home view: pending invitations to accept, and (for owners and admins) an invite form. */
export async function welcomeView() {
  const org = state.orgs.find((o) => o.id === state.orgId);
  // A reload (e.g. the gateway's READY) while this view of the same org is up refreshes the
  // invitations only: rebuilding would drop what the user is typing into the invite form.
  const key = `${org?.id ?? ''}:${org?.role ?? ''}`;
  if (ui.welcome && ui.welcome.key === key && ui.main.contains(ui.welcome.invites)) {
    return fillInvitations(ui.welcome.invites, ui.welcome.status);
  }
  const invites = el('ul', { class: 'plain-list', 'aria-label': 'Pending invitations' });
  const inviteStatus = el('div');
  ui.welcome = { key, invites, status: inviteStatus };
  show(
    ui.main,
    el('div', { class: 'welcome' }, el('h2', { text: 'Welcome' }), el('p', { text: 'Pick a conversation on the left, or create one.' })),
    card(
      'invites-title',
      'Invitations',
      el('p', { class: 'muted', text: 'Organizations that invited you. You join only when you accept.' }),
      inviteStatus,
      invites,
    ),
    org?.permissions?.includes('create_invite') ? inviteForm(org) : null,
  );
  return fillInvitations(invites, inviteStatus);
}

/** The caller's pending invitations, each with its Accept button, into `invites`. */
async function fillInvitations(invites, inviteStatus) {
  try {
    const pending = await api('GET', '/users/@me/invites');
    show(
      invites,
      pending.items.length === 0
        ? el('li', { class: 'empty', text: 'No invitations.' })
        : pending.items.map((i) =>
            el(
              'li',
              { 'data-invite-id': i.id },
              el('span', { text: `${i.org_name} (as ${i.role})` }),
              el('button', {
                type: 'button',
                class: 'small',
                'aria-label': `Accept the invitation to ${i.org_name}`,
                text: 'Accept',
                onclick: async () => {
                  try {
                    const joined = await api('POST', `/orgs/invites/${i.id}/accept`);
                    state.orgId = joined.id;
                    await app.reload();
                  } catch (e) {
                    show(inviteStatus, notice(e.message));
                  }
                },
              }),
            ),
          ),
    );
  } catch (e) {
    show(inviteStatus, notice(e.message));
  }
}

/** Invite a person by username (they accept it themselves; AZ-7). */
function inviteForm(org) {
  const status = el('div');
  const form = el(
    'form',
    { class: 'inline-form', 'aria-label': `Invite someone to ${org.name}` },
    el('input', { name: 'username', 'aria-label': `Username to invite to ${org.name}`, placeholder: 'username', required: true, autocomplete: 'off' }),
    el(
      'select',
      { name: 'role', 'aria-label': 'Role for the invited person' },
      ROLES.filter((r) => r !== 'owner' || org.permissions.includes('manage_owners')).map((r) => el('option', { value: r, text: r })),
    ),
    el('button', { type: 'submit', text: 'Invite' }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const username = v.username.trim();
    try {
      await api('POST', `/orgs/${org.id}/invites`, { username, role: v.role });
      form.reset();
      show(status, notice(`Invited ${username}: they join once they accept.`, 'info'));
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  return card('invite-title', `Invite to ${org.name}`, form, status);
}
