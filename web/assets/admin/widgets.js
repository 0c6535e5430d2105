// The Widget keys section of the admin console (`/admin#/widgets`, WEB-4): for each org, the
// publishable keys of its website support widget — its name (the chat's title on the site), the
// sites allowed to use each (origins), the
// support team that answers, the AI agent that answers first (optional), whether visitors must
// be signed by the site (identity `required`) and whether they fill a name/email form first.
// Create one (its identity secret is shown once, beside the `<script>` snippet to paste), change
// one, revoke one.
// Only an org's owners and admins manage them (the org's `permissions` list
// `manage_widget_keys`); for other orgs the section says who may.

import { api } from '../api.js';
import { el, field, onSubmit, smallButton } from '../dom.js';
import { copyButton, errorTo, managedOrgCard, openParts, replaceOrgCard, row, showOrgCards, table } from './console.js';

/** org id → `{edit}`: the id of the key whose edit form is open there. */
const open = openParts(() => ({ edit: null }));

export async function widgetsView() {
  open.clear();
  const orgs = await api('GET', '/orgs');
  await showOrgCards(
    'Widget keys',
    'Keys of the support widget your organizations put on their websites: each names the sites allowed to use it, the team that answers and the AI agent that answers first.',
    orgs.items,
    orgCard,
  );
}

/** The `<script>` tag that embeds the widget with `key`. */
export function snippet(key) {
  return `<script src="${location.origin}/widget.js" data-key="${key}" async></script>`;
}

function orgCard(org) {
  return managedOrgCard(org, 'widget keys', 'manage_widget_keys', async () => {
    const [keys, teams, agents] = await Promise.all([
      api('GET', `/orgs/${org.id}/widget-keys`),
      api('GET', `/orgs/${org.id}/teams?limit=100`),
      api('GET', `/orgs/${org.id}/agents`).catch(() => ({ items: [] })),
    ]);
    const status = el('div');
    const refresh = () => replaceOrgCard(org, orgCard);
    const shown = open.of(org);
    const editing = keys.items.find((k) => k.id === shown.edit);
    const names = { teams: new Map(teams.items.map((t) => [t.id, t.name])), agents: new Map(agents.items.map((a) => [a.id, a.name])) };
    return [
      el(
        'div',
        { class: 'table-scroll' },
        table(
          `Widget keys of ${org.name}`,
          ['Name', 'Key', 'Allowed sites', 'Team', 'AI agent', 'Identity', 'Actions'],
          keys.items.map((k) => keyRow(org, k, names, status, refresh)),
        ),
      ),
      status,
      keyForm(org, editing ?? null, teams.items, agents.items, refresh),
    ];
  });
}

function keyRow(org, k, names, status, refresh) {
  const shown = open.of(org);
  const revoked = Boolean(k.revoked_at);
  return row(
    { 'data-widget-key-id': k.id, class: revoked ? 'failed' : null },
    el('th', { scope: 'row', text: k.name ?? '' }),
    el('td', {}, el('code', { text: k.key }), revoked ? el('span', { class: 'flag', text: 'revoked' }) : null),
    (k.allowed_origins ?? []).join(', '),
    names.teams.get(k.team_id) ?? k.team_id ?? '—',
    k.agent_id ? names.agents.get(k.agent_id) ?? k.agent_id : 'none',
    `${k.identity}${k.prechat_form ? ', pre-chat form' : ''}`,
    el(
      'td',
      { class: 'actions-cell' },
      revoked
        ? null
        : [
            smallButton('Edit', `Edit widget key ${k.name}`, () => {
              shown.edit = k.id;
              return refresh();
            }),
            smallButton('Revoke', `Revoke widget key ${k.name}`, () =>
              api('DELETE', `/orgs/${org.id}/widget-keys/${k.id}`).then(() => {
                if (shown.edit === k.id) shown.edit = null;
                return refresh();
              }, errorTo(status)),
            ),
          ],
    ),
  );
}

/** A `<select>` named `name` of `items` (`{id, name}`), `none` first when given. */
function select(label, name, items, value, none) {
  return el(
    'label',
    { class: 'field' },
    el('span', { text: label }),
    el(
      'select',
      { name, required: none ? null : true },
      none ? el('option', { value: '', text: none, selected: !value }) : null,
      items.map((i) => el('option', { value: i.id, text: i.name, selected: i.id === value })),
    ),
  );
}

/** The form that creates a key in `org` (`key` null) or changes `key`. */
function keyForm(org, key, teams, agents, refresh) {
  const status = el('div');
  const title = key ? `Edit widget key ${key.name}` : `Create a widget key in ${org.name}`;
  const origins = el('textarea', { name: 'allowed_origins', rows: 2, required: true, spellcheck: 'false', placeholder: 'https://www.example.com' });
  origins.value = (key?.allowed_origins ?? []).join('\n');
  const form = el(
    'form',
    { class: 'card widget-key-form', 'aria-label': title },
    el('h4', { text: key ? title : 'Create a widget key' }),
    field('Name (the chat’s title on the site)', { name: 'name', required: true, maxlength: 64, autocomplete: 'off', value: key?.name ?? '' }),
    el('label', { class: 'field' }, el('span', { text: 'Allowed site origins (one per line, e.g. https://www.example.com)' }), origins),
    select('Support team', 'team_id', teams, key?.team_id, null),
    select('AI agent answering first', 'agent_id', agents, key?.agent_id, 'No AI agent: people answer'),
    el(
      'label',
      { class: 'field' },
      el('span', { text: 'Visitor identity' }),
      el(
        'select',
        { name: 'identity' },
        el('option', { value: 'optional', text: 'Optional: signed visitors are verified, others are anonymous', selected: key?.identity !== 'required' }),
        el('option', { value: 'required', text: 'Required: only visitors signed by the site may chat', selected: key?.identity === 'required' }),
      ),
    ),
    el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'prechat_form', checked: key?.prechat_form === true }), el('span', { text: 'Ask anonymous visitors for their name and email first' })),
    el('div', {}, el('button', { type: 'submit', text: key ? 'Save widget key' : 'Create widget key', disabled: teams.length === 0 })),
    teams.length === 0 ? el('p', { class: 'muted', text: `${org.name} has no team yet: create the support team in Organizations first.` }) : null,
    key ? el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => { open.of(org).edit = null; refresh(); } }) : null,
    status,
  );
  onSubmit(form, status, async (v) => {
    const body = {
      name: v.name.trim(),
      allowed_origins: v.allowed_origins.split(/[\s,]+/).map((o) => o.trim()).filter(Boolean),
      team_id: v.team_id,
      agent_id: v.agent_id || null,
      identity: v.identity,
      prechat_form: v.prechat_form === 'on',
    };
    const saved = await api(key ? 'PATCH' : 'POST', key ? `/orgs/${org.id}/widget-keys/${key.id}` : `/orgs/${org.id}/widget-keys`, body);
    open.of(org).edit = null;
    const card = await refresh();
    if (!key && saved.identity_secret) card.prepend(createdBox(saved));
  });
  return form;
}

/** The new key's snippet and its identity secret, shown once. */
function createdBox(k) {
  const tag = snippet(k.key);
  return el(
    'div',
    { class: 'card secret-box', role: 'status' },
    el('h4', { text: `Widget key "${k.name}" created` }),
    el('p', { text: 'Put this tag on the pages of the allowed sites:' }),
    el('input', { readonly: true, value: tag, class: 'secret', 'aria-label': 'Widget snippet' }),
    copyButton(tag, null),
    el('p', { text: 'The identity secret signs your signed-in users on your server (never in the page). Copy it now: it is shown only once.' }),
    el('input', { readonly: true, value: k.identity_secret, class: 'secret', 'aria-label': 'Identity secret of the new widget key' }),
    copyButton(k.identity_secret, null),
  );
}
