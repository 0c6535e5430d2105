// The OAuth consent page of the chat client (`#/oauth/consent?request=<id>`, MCP-2): an MCP
// client sent the browser here from `/oauth/authorize`. It names the client, where the
// browser goes afterwards, the scopes asked for and the org to grant; Approve or Deny sends
// the decision (this browser session and its CSRF token only) and follows the client's
// redirect URI. Signed out, the sign-in form comes first and then this page again.

import { api } from '../api.js';
import { el, notice, show } from '../dom.js';
import { ui } from './state.js';

/** What each scope lets the client do, in words. */
const SCOPE_WORDS = {
  'messages:read': 'Read messages in your conversations and search them',
  'messages:write': 'Send messages as you',
  'conversations:read': 'See your conversations and who takes part',
  'conversations:admin': 'Create and manage conversations',
  'org:read': 'See the organization and its members',
  'org:admin': 'Administer the organization',
  'files:write': 'Upload files',
  'webhooks:admin': "Manage the organization's webhooks",
};

export async function consentView(id) {
  const status = el('div');
  show(ui.main, el('h2', { text: 'Authorize an application' }), status);
  let request;
  try {
    request = await api('GET', `/oauth/requests/${id}`);
  } catch (e) {
    show(status, notice(e.status === 404 ? 'This authorization request has expired or was already answered. Start again from the application.' : e.message));
    return;
  }
  const heading = `Allow ${request.client_name} to use Conclave as you?`;
  const orgPicker = el(
    'select',
    { id: 'consent-org', name: 'org_id' },
    request.orgs.map((o) => el('option', { value: o.id, text: `${o.name} (${o.role})` })),
  );
  const decide = async (approve, button) => {
    button.disabled = true;
    try {
      const body = approve ? { approve, org_id: orgPicker.value } : { approve };
      const answer = await api('POST', `/oauth/requests/${id}`, body);
      show(status, notice(approve ? 'Approved. Returning to the application…' : 'Denied. Returning to the application…', 'info'));
      location.assign(answer.redirect_to);
    } catch (e) {
      button.disabled = false;
      show(status, notice(e.message));
    }
  };
  const approve = el('button', { type: 'button', text: 'Approve', onclick: () => decide(true, approve) });
  const deny = el('button', { type: 'button', class: 'secondary', text: 'Deny', onclick: () => decide(false, deny) });
  if (request.orgs.length === 0) approve.disabled = true;
  show(
    ui.main,
    el(
      'section',
      { class: 'card consent', 'aria-labelledby': 'consent-title' },
      el('h2', { id: 'consent-title', text: heading }),
      el('p', {}, 'Application: ', el('strong', { class: 'consent-client', text: request.client_name }),
        request.registered ? ' (registered by an administrator of the organization)' : ` (identified by ${request.client_id})`),
      el('p', {}, 'After your answer you go back to ', el('strong', { class: 'consent-host', text: request.redirect_host }), '.'),
      el('h3', { text: 'It asks to' }),
      el('ul', { class: 'consent-scopes', 'aria-label': 'Requested permissions' },
        request.scopes.map((s) => el('li', { 'data-scope': s }, el('code', { text: s }), ` — ${SCOPE_WORDS[s] ?? s}`))),
      el('p', { class: 'muted', text: 'It never gets more than your role in the organization allows; a permission your role lacks is left out. You can revoke its access at any time.' }),
      request.orgs.length === 0
        ? notice('You are not a member of an organization this application may be granted.')
        : el('div', { class: 'field' }, el('label', { for: 'consent-org', text: 'Organization to grant' }), orgPicker),
      el('div', { class: 'actions' }, approve, deny),
      status,
    ),
  );
}
