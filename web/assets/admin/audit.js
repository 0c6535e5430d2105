// The Audit log section of the admin console (`/admin#/audit`): events filtered by event,
// actor, org and time, paged newest first (the filters stay while moving between sections),
// and the verification of the HMAC chain.

import { api } from '../api.js';
import { busyButton, el, formValues, notice, show } from '../dom.js';
import { current, fillPage, olderButton, table } from './console.js';

const AUDIT_EVENTS = ['auth.login', 'auth.logout', 'auth.second_factor', 'session.revoked', 'sessions.revoked_others', 'password.changed', 'password.reset', 'totp.enabled', 'totp.disabled', 'impersonation.started', 'admin.user_updated', 'user.exported', 'user.erased'];
const AUDIT_FILTERS = ['event', 'actor', 'org', 'since', 'until'];
/** The filters in force (kept while moving between sections). */
const audit = { filters: {}, limit: 25 };

/** `datetime-local` value (local time) → RFC 3339, or the text as typed when not a date. */
function rfc3339(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

export async function auditView() {
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
    fillPage(body, page.items, row, { older: before, empty: 'No events match.', columns: 7 });
    show(
      more,
      el('span', { class: 'muted', text: `${body.querySelectorAll('tr[data-event-id]').length} events shown` }),
      olderButton('Older events', page.next, load) ?? el('span', { class: 'muted', text: ' · no older events' }),
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

  const verify = busyButton('Verify chain', verifyResult, async () => {
    const r = await api('GET', '/admin/audit/verify');
    show(
      verifyResult,
      r.ok
        ? notice(`Chain intact: ${r.checked} rows checked in ${r.chains.length} chain${r.chains.length === 1 ? '' : 's'}.`, 'info')
        : notice(`Chain broken: ${r.problem ?? 'problem'}${r.first_bad ? ` at row ${r.first_bad}` : ''} (${r.checked} rows checked).`),
    );
  });

  show(
    current.content,
    el('h2', { text: 'Audit log' }),
    el('p', { class: 'muted', text: 'Every security-relevant change on the server, newest first. Rows are chained by HMAC: verification finds a row altered, inserted or removed.' }),
    el('div', { class: 'card' }, el('h3', { text: 'Integrity' }), verify, verifyResult),
    form,
    status,
    el('div', { class: 'table-scroll' }, table('Audit events', ['Time', 'Event', 'Actor', 'Resource', 'Organization', 'IP', 'Outcome'], []), more),
  );
  const t = current.content.querySelector('table tbody');
  t.replaceWith(body);
  await load();
}
