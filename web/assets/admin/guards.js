// The Guards section of the admin console (`/admin#/guards`): for each org, its content guards
// (RATE-6) in running order with how many posts each allowed, flagged and blocked (and its
// failed remote checks) — create one (a blocklist, regular expressions, a moderation endpoint
// or a guard agent; mode block or flag), change, disable or enable, delete — and the review
// queue of flagged messages, each dismissed (the message stays) or removed (deleted).
//
// A flagged message is shown as text, like the chat client shows it. A moderation endpoint's
// API key is write-only: sent when typed, never shown (`has_api_key` says whether one is set).
// Only an org's owners and admins manage its guards (the org's `permissions` list
// `manage_guards`); for other orgs the section says who may.

import { api } from '../api.js';
import { el, field, onSubmit, smallButton } from '../dom.js';
import { count, errorTo, managedOrgCard, replaceOrgCard, openParts, row, showOrgCards, table } from './console.js';

const KINDS = [
  ['blocklist', 'Blocklist (whole words, any case)'],
  ['regex', 'Regular expressions'],
  ['moderation_endpoint', 'Moderation endpoint'],
  ['agent', 'Guard agent'],
];
const KIND_NAME = new Map(KINDS.map(([k, label]) => [k, label.replace(/ \(.*\)$/, '')]));

/** org id → `{edit, resolved}`: the guard whose edit form is open, and whether the queue lists resolved flags. */
const open = openParts(() => ({ edit: null, resolved: false }));

export async function guardsView() {
  open.clear();
  const [orgs, convs] = await Promise.all([api('GET', '/orgs'), api('GET', '/conversations?limit=100').catch(() => ({ items: [] }))]);
  const convName = new Map(convs.items.map((c) => [c.id, c.name || 'Direct conversation']));
  await showOrgCards(
    'Guards',
    'Content guards of your organizations: every message people, bots and AI agents post passes them in order. A guard in block mode refuses what it objects to; in flag mode it lets it through and queues it for review. An organization’s owners and admins manage them.',
    orgs.items,
    (org) => orgCard(org, convName),
  );
}

function orgCard(org, convName) {
  return managedOrgCard(org, 'guards', 'manage_guards', async () => {
    const shown = open.of(org);
    const [guards, flags, agents] = await Promise.all([
      api('GET', `/orgs/${org.id}/guards`),
      api('GET', `/orgs/${org.id}/flags?limit=50&status=${shown.resolved ? 'resolved' : 'open'}`),
      // A guard agent is one of the org's agents; without them that kind offers none.
      api('GET', `/orgs/${org.id}/agents`).catch(() => ({ items: [] })),
    ]);
    const status = el('div');
    const refresh = () => replaceOrgCard(org, (o) => orgCard(o, convName));
    const editing = guards.items.find((g) => g.id === shown.edit);
    const headers = ['Guard', 'Kind', 'Mode', 'Rules', 'Status', 'Allowed', 'Flagged', 'Blocked', 'Errors', 'Actions'];
    return [
      el('div', { class: 'table-scroll' }, table(`Guards of ${org.name}`, headers, guards.items.map((g) => guardRow(org, g, status, refresh)))),
      status,
      guardForm(org, editing ?? null, agents.items, refresh),
      reviewQueue(org, flags.items, convName, refresh),
    ];
  });
}

/** What a guard checks, in a few words. */
function rulesOf(g) {
  if (g.terms) return g.terms.join(', ');
  if (g.patterns) return g.patterns.join('  ');
  if (g.url) return `${g.url} (${g.has_api_key ? 'with an API key' : 'no API key'}; ${g.timeout_ms} ms; fail ${g.fail})`;
  if (g.fail) return `fail ${g.fail}`;
  return '';
}

function guardRow(org, g, status, refresh) {
  const path = `/orgs/${org.id}/guards/${g.id}`;
  const failed = errorTo(status);
  const toggle = g.enabled ? 'Disable' : 'Enable';
  return row(
    { 'data-guard-id': g.id },
    el('th', { scope: 'row', text: g.name }),
    KIND_NAME.get(g.kind) ?? g.kind,
    g.mode,
    el('td', {}, el('code', { text: rulesOf(g) })),
    g.enabled ? 'enabled' : 'disabled',
    count(g.counts.allowed),
    count(g.counts.flagged),
    count(g.counts.blocked),
    count(g.counts.errors),
    el(
      'td',
      { class: 'actions-cell' },
      smallButton('Edit', `Edit guard ${g.name}`, () => {
        open.of(org).edit = g.id;
        return refresh();
      }),
      smallButton(toggle, `${toggle} guard ${g.name}`, () => api('PATCH', path, { enabled: !g.enabled }).then(() => refresh(), failed)),
      smallButton('Delete', `Delete guard ${g.name}`, () =>
        api('DELETE', path).then(() => {
          if (open.of(org).edit === g.id) open.of(org).edit = null;
          return refresh();
        }, failed),
      ),
    ),
  );
}

/** Lines of a textarea, trimmed, the empty ones left out. */
function lines(text) {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** A labelled control (`<label class="field">`) for `kinds` only: hidden for the others. */
function kindField(kinds, label, control) {
  return el('label', { class: 'field', 'data-kinds': kinds.join(' ') }, el('span', { text: label }), control);
}

/**
 * The form that creates a guard in `org` (`guard` null) or changes `guard` (its kind stays).
 * Only the fields of the chosen kind show, and only they are sent.
 */
function guardForm(org, guard, agents, refresh) {
  const status = el('div');
  const title = guard ? `Edit guard ${guard.name}` : `Create a guard in ${org.name}`;
  const kind = el('select', { name: 'kind', 'aria-label': 'Kind', disabled: Boolean(guard) }, KINDS.map(([k, label]) => el('option', { value: k, text: label, selected: k === (guard?.kind ?? 'blocklist') })));
  const mode = el('select', { name: 'mode', 'aria-label': 'Mode' }, ['block', 'flag'].map((m) => el('option', { value: m, text: m === 'block' ? 'Block (refuse the message)' : 'Flag (deliver it, queue it for review)', selected: m === (guard?.mode ?? 'block') })));
  const terms = el('textarea', { name: 'terms', rows: 3, placeholder: 'One term a line' });
  terms.value = (guard?.terms ?? []).join('\n');
  const patterns = el('textarea', { name: 'patterns', rows: 3, placeholder: 'One pattern a line', spellcheck: 'false' });
  patterns.value = (guard?.patterns ?? []).join('\n');
  const fail = el('select', { name: 'fail', 'aria-label': 'When the check fails' }, ['open', 'closed'].map((f) => el('option', { value: f, text: f === 'open' ? 'Let the message through' : 'Refuse the message', selected: f === (guard?.fail ?? 'open') })));
  const agentSelect = el('select', { name: 'agent_id', 'aria-label': 'Guard agent' }, agents.length ? agents.map((a) => el('option', { value: a.id, text: a.name })) : el('option', { value: '', text: 'No agents in this organization' }));
  const form = el(
    'form',
    { class: 'card guard-form', 'aria-label': title },
    el('h4', { text: guard ? `Edit guard ${guard.name}` : 'Create a guard' }),
    field('Name (optional)', { name: 'name', maxlength: 64, autocomplete: 'off', value: guard?.name ?? '' }),
    el('label', { class: 'field' }, el('span', { text: 'Kind' }), kind),
    el('label', { class: 'field' }, el('span', { text: 'Mode' }), mode),
    kindField(['blocklist'], 'Blocked terms', terms),
    kindField(['regex'], 'Patterns', patterns),
    kindField(['moderation_endpoint'], 'Moderation endpoint URL', el('input', { name: 'url', type: 'url', autocomplete: 'off', spellcheck: 'false', value: guard?.url ?? '' })),
    kindField(['moderation_endpoint'], guard?.has_api_key ? 'New API key (empty: keep the current one)' : 'API key (optional)', el('input', { name: 'api_key', type: 'password', autocomplete: 'new-password' })),
    kindField(['moderation_endpoint'], 'Timeout (ms)', el('input', { name: 'timeout_ms', type: 'number', min: 100, max: 10000, step: 1, placeholder: '2000', value: guard?.timeout_ms ?? '' })),
    guard ? null : kindField(['agent'], 'Guard agent', agentSelect),
    el('p', { class: 'muted', 'data-kinds': 'agent', text: 'The agent’s model is asked to answer ALLOW or DENY for each message; any other answer, an error or a timeout counts as a failed check. Its tokens count against the agent’s budget, and the agent cannot be deleted while a guard uses it.' }),
    kindField(['moderation_endpoint', 'agent'], 'When the check fails', fail),
    el('button', { type: 'submit', text: guard ? 'Save guard' : 'Create guard' }),
    guard ? el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => { open.of(org).edit = null; refresh(); } }) : null,
    status,
  );
  const showKind = () => {
    for (const f of form.querySelectorAll('[data-kinds]')) f.hidden = !f.dataset.kinds.split(' ').includes(kind.value);
  };
  kind.addEventListener('change', showKind);
  showKind();
  onSubmit(form, status, async (v) => {
    const chosen = kind.value;
    const body = { mode: v.mode };
    if (v.name.trim()) body.name = v.name.trim();
    if (!guard) body.kind = chosen;
    if (chosen === 'blocklist') body.terms = lines(v.terms);
    if (chosen === 'regex') body.patterns = lines(v.patterns);
    if (chosen === 'moderation_endpoint') {
      body.url = v.url.trim();
      if (v.api_key) body.api_key = v.api_key;
      if (v.timeout_ms !== '') body.timeout_ms = Number(v.timeout_ms);
    }
    if (chosen === 'moderation_endpoint' || chosen === 'agent') body.fail = v.fail;
    if (chosen === 'agent' && !guard) body.agent_id = v.agent_id;
    try {
      await api(guard ? 'PATCH' : 'POST', guard ? `/orgs/${org.id}/guards/${guard.id}` : `/orgs/${org.id}/guards`, body);
    } finally {
      form.querySelector('[name="api_key"]').value = '';
    }
    open.of(org).edit = null;
    await refresh();
  });
  return form;
}

/** The review queue: flagged messages (open, or resolved on request), each with its actions. */
function reviewQueue(org, flags, convName, refresh) {
  const status = el('div');
  const shown = open.of(org);
  const path = `/orgs/${org.id}/flags`;
  const resolve = (f, resolution) => () => api('POST', `${path}/${f.id}/resolve`, { resolution }).then(() => refresh(), errorTo(status));
  const rows = flags.map((f) => {
    const m = f.message;
    const who = m?.author ? m.author.display_name || m.author.username : f.author_id ?? 'unknown';
    const text = !m ? 'The message is gone.' : m.content === null ? 'This message was deleted.' : m.content;
    return row(
      { 'data-flag-id': f.id },
      el('td', {}, el('time', { datetime: f.created_at, text: new Date(f.created_at).toLocaleString() })),
      f.guard_name,
      who,
      convName.get(f.conversation_id) ?? f.conversation_id,
      el('td', { class: 'flagged-text', text }),
      f.status === 'open'
        ? el(
            'td',
            { class: 'actions-cell' },
            smallButton('Dismiss', `Dismiss the flag on ${who}’s message`, resolve(f, 'dismissed')),
            m && m.content !== null ? smallButton('Remove message', `Remove ${who}’s flagged message`, resolve(f, 'removed')) : null,
          )
        : `${f.resolution}${f.resolved_at ? ` ${new Date(f.resolved_at).toLocaleString()}` : ''}`,
    );
  });
  return el(
    'section',
    { class: 'org-part review-queue', 'aria-label': `Review queue of ${org.name}` },
    el('h4', { text: shown.resolved ? 'Review queue: resolved flags' : 'Review queue' }),
    el('button', {
      type: 'button',
      class: 'small secondary',
      text: shown.resolved ? 'Show open flags' : 'Show resolved flags',
      onclick: () => {
        shown.resolved = !shown.resolved;
        return refresh();
      },
    }),
    status,
    el('div', { class: 'table-scroll' }, table(`Flagged messages of ${org.name}`, ['Flagged', 'Guard', 'Author', 'Conversation', 'Message', shown.resolved ? 'Resolution' : 'Actions'], rows)),
  );
}
