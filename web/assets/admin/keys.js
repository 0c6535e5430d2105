// The API keys section of the admin console (`/admin#/api-keys`): my keys (masked) with their
// org, scopes and last use; create one (its secret shown once) and revoke one.

import { api } from '../api.js';
import { cardForm, el, field, onSubmit, show, smallButton } from '../dom.js';
import { copyButton, current, errorTo, row, table } from './console.js';

const SCOPES = ['messages:read', 'messages:write', 'conversations:read', 'conversations:admin', 'org:read', 'org:admin', 'files:write', 'webhooks:admin'];

export async function keysView() {
  const [keys, orgs] = await Promise.all([api('GET', '/api-keys'), api('GET', '/orgs')]);
  const status = el('div');
  const secret = el('div');
  const form = cardForm(
    'new-key-title',
    'Create an API key',
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
  onSubmit(form, status, async (values) => {
    const scopes = new FormData(form).getAll('scope');
    const k = await api('POST', '/api-keys', { name: values.name.trim(), org_id: values.org_id, scopes });
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
        copyButton(k.key, null),
      ),
    );
    current.content.prepend(secret);
  });
  const orgName = new Map(orgs.items.map((o) => [o.id, o.name]));
  const listStatus = el('div');
  const rows = keys.items.map((k) =>
    row(
      { 'data-key-id': k.id },
      k.name,
      el('code', { text: k.key }),
      orgName.get(k.org_id) ?? k.org_id,
      k.scopes.join(', '),
      k.last_used_at ? new Date(k.last_used_at).toLocaleString() : 'never',
      smallButton('Revoke', `Revoke API key ${k.name}`, () => api('DELETE', `/api-keys/${k.id}`).then(keysView, errorTo(listStatus))),
    ),
  );
  show(current.content, el('h2', { text: 'API keys' }), el('p', { class: 'muted', text: 'Your API keys. Each acts as you, capped by its scopes.' }), listStatus, table('API keys', ['Name', 'Key', 'Organization', 'Scopes', 'Last used', 'Actions'], rows), form);
}
