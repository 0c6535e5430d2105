// The Webhooks section of the admin console (`/admin#/webhooks`): for each org, its outgoing
// webhooks (HOOK-1) — create one (URL, events, optionally one conversation; its `whsec_`
// secret shown once), rotate the secret (the new one shown once), send a test event, disable
// or enable, delete — and the deliveries of one at a time (`deliveries.js`).
//
// The server lets an org's owners and admins manage its webhooks, and nobody else: being a
// server admin gives no say over an org one does not administer. So the section lists the
// orgs the signed-in person belongs to and, for those where their role does not allow it
// (the org's `permissions` lack `manage_webhooks`), says who may.

import { api } from '../api.js';
import { el, field, onSubmit, smallButton } from '../dom.js';
import { copyButton, current, errorTo, managedOrgCard, replaceOrgCard, row, showOrgCards, table } from './console.js';
import { deliveriesPart } from './deliveries.js';

/** The events an endpoint may subscribe to (API.md, Organizations). */
const EVENTS = [
  'message.created',
  'message.updated',
  'message.deleted',
  'conversation.created',
  'conversation.updated',
  'conversation.deleted',
  'participant.added',
  'participant.removed',
  'member.added',
  'member.removed',
  'member.role_changed',
];

/** org id → the id of the webhook whose deliveries are open in that org's card. */
const openDeliveries = new Map();
/**
 * org id → the secret just issued there (`{hook, what}`): shown above the org's webhooks until
 * dismissed or the section is left, never fetched again.
 */
const revealed = new Map();

export async function webhooksView() {
  revealed.clear();
  const [orgs, convs] = await Promise.all([api('GET', '/orgs'), api('GET', '/conversations?limit=100').catch(() => ({ items: [] }))]);
  await showOrgCards(
    'Webhooks',
    'Outgoing webhooks of your organizations: each POSTs the chosen events, signed with its secret, to its URL. An organization’s owners and admins manage them.',
    orgs.items,
    (org) => orgCard(org, convs.items.filter((c) => c.org_id === org.id)),
  );
}

/** The card of one org: its webhooks, the create form and, when open, one's deliveries. */
function orgCard(org, convs) {
  return managedOrgCard(org, 'webhooks', 'manage_webhooks', async () => {
    const hooks = (await api('GET', `/orgs/${org.id}/webhooks`)).items;
    const status = el('div');
    const refresh = () => replaceOrgCard(org, (o) => orgCard(o, convs));
    const convName = new Map(convs.map((c) => [c.id, c.name || 'Direct conversation']));
    const rows = hooks.map((w) => hookRow(org, w, convName, status, refresh));
    const shown = hooks.find((w) => w.id === openDeliveries.get(org.id));
    return [
      revealed.has(org.id) ? secretBox(revealed.get(org.id), () => { revealed.delete(org.id); refresh(); }) : null,
      el('div', { class: 'table-scroll' }, table(`Webhooks of ${org.name}`, ['URL', 'Events', 'Conversation', 'Status', 'Secret', 'Actions'], rows)),
      status,
      shown ? deliveriesPart(org, shown, () => { openDeliveries.delete(org.id); refresh(); }) : null,
      createForm(org, convs, refresh),
    ];
  });
}

/** Moves the focus to the secret just shown in `org`'s card. */
function focusSecret(org) {
  current.content.querySelector(`[data-org-id="${CSS.escape(org.id)}"] .secret-box input`)?.focus();
}

/** A secret just issued (`{hook, what}`), with the button that hides it for good. */
function secretBox({ hook, what }, dismiss) {
  const until = hook.previous_secret_expires_at ? ` The previous secret keeps signing until ${new Date(hook.previous_secret_expires_at).toLocaleString()}.` : '';
  return el(
    'div',
    { class: 'card secret-box', role: 'status' },
    el('h4', { text: `Signing secret of ${hook.url} ${what}` }),
    el('p', { text: `Copy it now: it is shown only once. Receivers check the webhook-signature header with it.${until}` }),
    el('input', { readonly: true, value: hook.secret, 'aria-label': `Signing secret of webhook ${hook.url}`, class: 'secret', spellcheck: 'false' }),
    copyButton(hook.secret),
    el('button', { type: 'button', class: 'small', text: 'Dismiss', 'aria-label': `Dismiss the secret of webhook ${hook.url}`, onclick: dismiss }),
  );
}

function hookRow(org, w, convName, status, refresh) {
  const path = `/orgs/${org.id}/webhooks/${w.id}`;
  const failed = errorTo(status);
  const state = w.enabled ? 'enabled' : `disabled${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`;
  const failures = w.consecutive_failures > 0 ? ` · ${w.consecutive_failures} failed attempt${w.consecutive_failures === 1 ? '' : 's'}` : '';
  const toggle = w.enabled ? 'Disable' : 'Enable';
  const withSecret = (what) => async (hook) => {
    revealed.set(org.id, { hook, what });
    await refresh();
    focusSecret(org);
  };
  const open = () => {
    openDeliveries.set(org.id, w.id);
    return refresh();
  };
  return row(
    { 'data-webhook-id': w.id },
    el('th', { scope: 'row' }, el('code', { text: w.url })),
    w.events.join(', '),
    w.conversation_id ? convName.get(w.conversation_id) ?? w.conversation_id : 'All of the organization',
    el('td', { class: w.enabled ? 'outcome-success' : 'outcome-failure', text: `${state}${failures}` }),
    el('td', {}, el('code', { text: w.secret })),
    el(
      'td',
      { class: 'actions-cell' },
      smallButton('Deliveries', `Deliveries of webhook ${w.url}`, open),
      smallButton('Send test', `Send a test event to webhook ${w.url}`, () => api('POST', `${path}/test`, {}).then(open, failed)),
      smallButton('Rotate secret', `Rotate the secret of webhook ${w.url}`, () => api('POST', `${path}/secret`, {}).then(withSecret('rotated'), failed)),
      smallButton(toggle, `${toggle} webhook ${w.url}`, () => api('PATCH', path, { enabled: !w.enabled }).then(() => refresh(), failed)),
      smallButton('Delete', `Delete webhook ${w.url}`, () =>
        api('DELETE', path).then(() => {
          if (openDeliveries.get(org.id) === w.id) openDeliveries.delete(org.id);
          if (revealed.get(org.id)?.hook.id === w.id) revealed.delete(org.id);
          return refresh();
        }, failed),
      ),
    ),
  );
}

/** The form that creates a webhook in `org` (the secret comes back once, shown above). */
function createForm(org, convs, refresh) {
  const status = el('div');
  const form = el(
    'form',
    { class: 'card', 'aria-label': `Create a webhook in ${org.name}` },
    el('h4', { text: 'Create a webhook' }),
    field('Endpoint URL', { name: 'url', type: 'url', required: true, placeholder: 'https://example.com/hooks/conclave', autocomplete: 'off', spellcheck: 'false' }),
    el(
      'fieldset',
      {},
      el('legend', { text: 'Events' }),
      EVENTS.map((e) => el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'event', value: e, checked: e === 'message.created' }), el('span', { text: e }))),
    ),
    el(
      'label',
      { class: 'field' },
      el('span', { text: 'Conversation (optional)' }),
      el('select', { name: 'conversation_id' }, el('option', { value: '', text: 'All of the organization' }), convs.map((c) => el('option', { value: c.id, text: c.name || 'Direct conversation' }))),
    ),
    el('button', { type: 'submit', text: 'Create webhook' }),
    status,
  );
  onSubmit(form, status, async (values) => {
    const url = form.querySelector('[name="url"]');
    url.removeAttribute('aria-invalid');
    const body = { url: values.url.trim(), events: new FormData(form).getAll('event') };
    if (values.conversation_id) body.conversation_id = values.conversation_id;
    try {
      const hook = await api('POST', `/orgs/${org.id}/webhooks`, body);
      revealed.set(org.id, { hook, what: 'created' });
      await refresh();
      focusSecret(org);
    } catch (e) {
      if (e.field?.replace(/^\//, '') === 'url') url.setAttribute('aria-invalid', 'true');
      throw e;
    }
  });
  return form;
}
