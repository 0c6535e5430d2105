// The support inbox of the chat client (`#/inbox`, WEB-4): the chosen org's widget
// conversations by status — `bot` (the AI agent answers), `open` (waiting for or with a person),
// `resolved` — kept live from the gateway (a widget conversation created or changed, or a
// message in one listed, loads the list again), each with its actions: Take (a person answers
// from now on: status `open`, and I join it), Resolve, Reopen. A conversation opens in the ordinary
// conversation view, which shows the same actions in its header (`widgetActions`).
// Who may see the inbox and act is the server's decision: a refusal is shown as it says.

import { api } from '../api.js';
import { el, notice, show } from '../dom.js';
import { listsChanged, state, ui } from './state.js';

const STATUSES = [
  ['bot', 'With the AI agent'],
  ['open', 'Open'],
  ['resolved', 'Resolved'],
];
const EMPTY = { bot: 'No conversation is with the AI agent.', open: 'No open conversations.', resolved: 'No resolved conversations.' };

/** The status filter on show (kept while the client runs). */
let chosen = 'open';
/** The pending reload of the list after live events (one at a time). */
let reloadTimer = null;

/** The conversation id of an inbox item (`conversation_id`) or of a conversation (`id`). */
function idOf(c) {
  return c.conversation_id ?? c.id;
}

/** What a widget conversation is called in lists: its name, or its visitor's. */
export function widgetName(c) {
  const visitor = c.visitor?.name || c.visitor?.email;
  return c.name || (visitor ? `Visitor ${visitor}` : 'Website visitor');
}

export async function inboxView() {
  const org = state.orgs.find((o) => o.id === state.orgId);
  if (!org) {
    show(ui.main, notice('Create or join an organization first.', 'info'));
    return;
  }
  const list = el('ul', { class: 'inbox-list', 'aria-label': `Widget conversations: ${label(chosen)}` });
  const status = el('div');
  const filters = el(
    'div',
    { class: 'inbox-filters', role: 'group', 'aria-label': 'Conversation status' },
    STATUSES.map(([value, text]) =>
      el('button', {
        type: 'button',
        class: 'small',
        'aria-pressed': String(value === chosen),
        'data-status': value,
        text,
        onclick: () => {
          chosen = value;
          inboxView();
        },
      }),
    ),
  );
  ui.inbox = { orgId: org.id, list, status, ids: new Set() };
  show(
    ui.main,
    el('div', { class: 'conv-head' }, el('h2', { text: `Support inbox of ${org.name}` }), el('span', { class: 'muted', text: 'Conversations from the website widget' })),
    filters,
    status,
    list,
  );
  await fillInbox();
}

function label(value) {
  return STATUSES.find(([v]) => v === value)?.[1] ?? value;
}

/** Loads the list of the chosen status into the inbox on show. */
async function fillInbox() {
  const inbox = ui.inbox;
  if (!inbox || !ui.main.contains(inbox.list)) return;
  let page;
  try {
    page = await api('GET', `/orgs/${inbox.orgId}/inbox?status=${chosen}&limit=100`);
  } catch (e) {
    show(inbox.status, notice(e.status === 403 ? 'Only the support team of this organization sees its inbox.' : e.message));
    show(inbox.list);
    return;
  }
  if (ui.inbox !== inbox) return;
  inbox.ids = new Set(page.items.map(idOf));
  inbox.status.replaceChildren();
  show(
    inbox.list,
    page.items.length === 0 ? el('li', { class: 'empty', text: EMPTY[chosen] }) : page.items.map((c) => inboxItem(c, inbox)),
  );
}

function inboxItem(c, inbox) {
  const name = widgetName(c);
  const when = c.updated_at ?? c.created_at;
  const id = idOf(c);
  return el(
    'li',
    { 'data-conversation-id': id, 'data-status': c.status },
    el(
      'div',
      { class: 'inbox-main' },
      el('a', { href: `#/c/${id}`, 'aria-label': `Open conversation with ${name}`, onclick: (ev) => openConversation(ev, c) }, el('span', { class: 'conv-name', text: name })),
      c.visitor?.email && c.visitor.email !== c.visitor?.name ? el('span', { class: 'muted', text: c.visitor.email }) : null,
      c.visitor?.external_id ? el('span', { class: 'badge', text: 'signed in on the site' }) : null,
      el('span', { class: `badge status-${c.status}`, text: label(c.status) }),
      when ? el('time', { class: 'muted', datetime: when, text: new Date(when).toLocaleString() }) : null,
    ),
    el('div', { class: 'actions-cell' }, actionButtons(c, (e) => show(inbox.status, notice(e.message)))),
  );
}

/** The buttons that move widget conversation `c` on: Take, Resolve, Reopen. */
function actionButtons(c, failed) {
  const name = widgetName(c);
  const act = (text, aria, to) =>
    el('button', {
      type: 'button',
      class: 'small',
      'aria-label': aria,
      text,
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await setStatus(c, to);
        } catch (e) {
          ev.target.disabled = false;
          failed(e);
        }
      },
    });
  const take = act('Take', `Take the conversation with ${name}`, 'open');
  const resolve = act('Resolve', `Resolve the conversation with ${name}`, 'resolved');
  // Taking an open one (handed off, waiting) makes me one of the people answering it.
  if (c.status === 'bot') return [take, resolve];
  if (c.status === 'open') return state.conversations.has(idOf(c)) ? [resolve] : [take, resolve];
  if (c.status === 'resolved') return [act('Reopen', `Reopen the conversation with ${name}`, 'open')];
  return [];
}

async function setStatus(c, to) {
  const id = idOf(c);
  await api('PATCH', `/conversations/${id}`, { status: to });
  const taking = to === 'open' && c.status !== 'resolved';
  // Taking one makes me one of its participants (the key's team may join it).
  if (taking && !state.conversations.has(id)) await join(id);
  remember(await api('GET', `/conversations/${id}`));
  if (taking) {
    // Taken: answer it at once.
    location.hash = `#/c/${id}`;
    return;
  }
  refreshViews(state.conversations.get(id));
}

/** Joins conversation `id` (already in it: nothing to do). */
async function join(id) {
  try {
    await api('POST', `/conversations/${id}/join`);
  } catch (e) {
    if (e.status !== 409) throw e;
  }
}

/**
 * Keeps conversation `c` among mine (the client's lists and the view read them from there),
 * with its widget `source` and `status` (the REST conversation object and the gateway's
 * CONVERSATION_CREATE/UPDATE of a widget conversation carry both).
 */
function remember(c) {
  if (!c?.id) return;
  state.conversations.set(c.id, { ...state.conversations.get(c.id), ...c });
  listsChanged();
}

/** Opens a listed conversation in the conversation view, loading it first when it is not in my lists yet. */
async function openConversation(ev, c) {
  const id = idOf(c);
  if (state.conversations.has(id)) return;
  ev.preventDefault();
  try {
    await join(id);
    remember(await api('GET', `/conversations/${id}`));
    location.hash = `#/c/${id}`;
  } catch (e) {
    if (ui.inbox) show(ui.inbox.status, notice(e.message));
  }
}

/** Redraws what shows widget conversation `c`: the inbox, or the header of its open view. */
function refreshViews(c) {
  if (ui.inbox && ui.main?.contains(ui.inbox.list)) scheduleReload(0);
  if (c && state.openId === idOf(c) && ui.widgetBar) fillWidgetBar(c);
}

/**
 * The header part of an open widget conversation (`c.source === 'widget'`): its status and
 * actions; null for other conversations.
 */
export function widgetActions(c) {
  if (c.source !== 'widget') {
    ui.widgetBar = null;
    return null;
  }
  ui.widgetBar = el('div', { class: 'widget-bar', role: 'group', 'aria-label': 'Support conversation' });
  fillWidgetBar(c);
  return ui.widgetBar;
}

function fillWidgetBar(c) {
  const status = el('div');
  show(ui.widgetBar, el('span', { class: `badge status-${c.status}`, text: label(c.status) }), actionButtons(c, (e) => show(status, notice(e.message))), status);
}

function scheduleReload(delay = 250) {
  if (reloadTimer) return;
  reloadTimer = setTimeout(() => {
    reloadTimer = null;
    fillInbox();
  }, delay);
}

/**
 * A gateway event, seen by the inbox: a widget conversation created or changed (its status), or
 * a message in one that is listed, loads the list again; the open conversation's header follows
 * its status.
 */
export function inboxEvent(t, d) {
  const conversation = t === 'CONVERSATION_CREATE' || t === 'CONVERSATION_UPDATE' ? d : null;
  if (conversation?.source === 'widget' && state.openId === conversation.id && ui.widgetBar) fillWidgetBar(conversation);
  if (!ui.inbox || !ui.main?.contains(ui.inbox.list)) return;
  const relevant =
    conversation?.source === 'widget' ||
    (t === 'MESSAGE_CREATE' && ui.inbox.ids.has(d.conversation_id)) ||
    ui.inbox.ids.has(d?.id) ||
    /INBOX|WIDGET/.test(t);
  if (relevant) scheduleReload();
}
