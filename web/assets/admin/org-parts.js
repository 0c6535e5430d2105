// The parts of an org's card in the admin console: its invites (revoke), its teams (create,
// add and remove members) and its bots (create, rotate the token, shown once). Each part calls
// `refresh(focusLabel, opts)` to draw the org's card again after a change.

import { api } from '../api.js';
import { el, formValues, inlineForm, smallButton } from '../dom.js';
import { copyButton, errorTo, row, table } from './console.js';

/** The org's invites, with who they name, their use and expiry, and a revoke button each. */
export function invitesPart(org, invites, refresh) {
  const status = el('div');
  const rows = invites.map((i) => {
    const who = i.username ?? 'anyone with the code';
    const uses = i.max_uses ? `${i.uses} of ${i.max_uses}` : String(i.uses);
    return row(
      {},
      who,
      i.role,
      uses,
      i.expires_at ? el('time', { datetime: i.expires_at, text: new Date(i.expires_at).toLocaleString() }) : 'never',
      smallButton('Revoke', `Revoke the invite for ${who}`, () => api('DELETE', `/orgs/${org.id}/invites/${i.id}`).then(() => refresh(), errorTo(status))),
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

/** The org's teams: who is in each, and (owners and admins) create, add and remove. */
export function teamsPart(org, canManage, teams, members, refresh) {
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
          ? smallButton(
              'Remove',
              `Remove ${name} from team ${t.name}`,
              () => api('DELETE', `/orgs/${org.id}/teams/${t.id}/members/${id}`).then(() => refresh(`Add to team ${t.name}`), errorTo(status)),
            )
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
        api('POST', `/orgs/${org.id}/teams/${t.id}/members/${user}`).then(() => refresh(`Add to team ${t.name}`), errorTo(status));
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
    create = inlineForm(
      `Create a team in ${org.name}`,
      { name: 'name', 'aria-label': `New team name in ${org.name}`, placeholder: 'Team name', required: true, maxlength: 100 },
      'Create team',
      (values) => api('POST', `/orgs/${org.id}/teams`, { name: values.name.trim() }).then(() => refresh(`New team name in ${org.name}`), errorTo(status)),
    );
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
export function botsPart(org, bots, revealed, refresh) {
  const status = el('div');
  const secret = revealed
    ? el(
        'div',
        { class: 'card secret-box', role: 'status' },
        el('h5', { text: `Token of bot "${revealed.bot.name}" ${revealed.what}` }),
        el('p', { text: 'Copy it now: it is shown only once. The bot sends it as "Authorization: Bot <token>".' }),
        el('input', { readonly: true, value: revealed.bot.token, 'aria-label': `New token of bot ${revealed.bot.name}`, class: 'secret', spellcheck: 'false' }),
        copyButton(revealed.bot.token),
      )
    : null;
  const withSecret = (what) => (bot) => refresh(`New token of bot ${bot.name}`, { revealed: { bot, what } });
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
        smallButton(
          'Rotate token',
          `Rotate token of bot ${b.name}`,
          () => api('POST', `/orgs/${org.id}/bots/${b.id}/token`, {}).then(withSecret('rotated'), errorTo(status)),
        ),
      ),
    ),
  );
  const create = inlineForm(
    `Create a bot in ${org.name}`,
    { name: 'name', 'aria-label': `New bot name in ${org.name}`, placeholder: 'Bot name', required: true, maxlength: 64 },
    'Create bot',
    (values) => api('POST', `/orgs/${org.id}/bots`, { name: values.name.trim() }).then(withSecret('created'), errorTo(status)),
  );
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
