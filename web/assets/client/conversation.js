// The conversation view of the chat client: its log (newest 50, older pages on request), the
// composer (Enter sends, typing is announced at most every 5 s), and the people panel with
// presence and, for those who may, a Remove button per participant.

import { api } from '../api.js';
import { el, notice, show } from '../dom.js';
import { upsertMessage } from './messages.js';
import { markRead } from './reads.js';
import { renderSidebar, setDirectName } from './sidebar.js';
import { conversationName, displayName, state, ui } from './state.js';

export async function conversationView(id) {
  const c = state.conversations.get(id);
  if (!c) {
    show(ui.main, notice('This conversation does not exist or you are not a participant.'));
    return;
  }
  if (c.org_id !== state.orgId) {
    state.orgId = c.org_id;
    renderSidebar();
  }
  ui.renderedId = id;
  ui.log = el('ol', { class: 'messages', role: 'log', 'aria-label': `Messages in ${conversationName(c)}`, 'aria-live': 'polite' });
  ui.typing = el('p', { class: 'typing', 'aria-live': 'polite' });
  ui.people = el('ul', { class: 'people', 'aria-label': 'Participants' });
  ui.sendStatus = el('div');
  const input = el('textarea', { name: 'content', 'aria-label': 'Message', placeholder: `Message ${conversationName(c)}`, rows: 2, maxlength: 4000, required: true });
  const composer = el('form', { class: 'composer', 'aria-label': 'Send a message' }, input, el('button', { type: 'submit', text: 'Send' }));
  let lastTyping = 0;
  input.addEventListener('input', () => {
    const now = Date.now();
    if (now - lastTyping > 5000 && input.value) {
      lastTyping = now;
      api('POST', `/conversations/${id}/typing`).catch(() => {});
    }
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    try {
      const m = await api('POST', `/conversations/${id}/messages`, { content, format: 'text', idempotency_key: crypto.randomUUID() });
      input.value = '';
      lastTyping = 0;
      upsertMessage(m);
      markRead(m);
      ui.sendStatus.replaceChildren();
    } catch (e) {
      show(ui.sendStatus, notice(e.message));
    }
  });
  show(
    ui.main,
    el('div', { class: 'conv-head' }, (ui.convTitle = el('h2', { text: conversationName(c) })), el('span', { class: 'muted', text: c.kind === 'group' ? 'Group' : 'Direct' })),
    (ui.older = el('div', { class: 'older' })),
    el('div', { class: 'conv-body' }, ui.log, el('aside', { class: 'people-panel', 'aria-labelledby': 'people-title' }, el('h3', { id: 'people-title', text: 'People' }), ui.people)),
    ui.typing,
    composer,
    ui.sendStatus,
  );
  const [messages, participants, current] = await Promise.all([
    api('GET', `/conversations/${id}/messages?limit=50`),
    api('GET', `/conversations/${id}/participants?limit=100`),
    api('GET', `/conversations/${id}`),
  ]);
  if (state.openId !== id) return;
  // What the caller may do here, as the server decides it (never a copy of its rules).
  state.permissions = new Set(current.permissions);
  for (const m of messages.items.reverse()) upsertMessage(m);
  olderButton(id, messages.next);
  state.participants = new Map(participants.items.map((p) => [p.user.id, p]));
  if (c.kind === 'direct') {
    setDirectName(id, participants.items);
    ui.convTitle.textContent = conversationName(c);
    input.placeholder = `Message ${conversationName(c)}`;
  }
  renderPeople();
  markRead(messages.items.at(-1));
  input.focus();
}

/** "Load older messages" while the server says there are more (`next` continues backwards). */
function olderButton(id, next) {
  show(
    ui.older,
    next
      ? el('button', {
          type: 'button',
          class: 'small',
          text: 'Load older messages',
          onclick: async () => {
            try {
              const page = await api('GET', `/conversations/${id}/messages?limit=50&before=${encodeURIComponent(next)}`);
              if (state.openId !== id) return;
              for (const m of page.items) upsertMessage(m, { scroll: false });
              olderButton(id, page.next);
            } catch (e) {
              show(ui.sendStatus, notice(e.message));
            }
          },
        })
      : null,
  );
}

/** The people panel: each participant with presence, and Remove for those who may remove. */
export function renderPeople() {
  if (!ui.people) return;
  const may = state.permissions;
  const canRemove = (p) => may.has('remove_participants') && (p.role !== 'owner' || may.has('manage_owners'));
  show(
    ui.people,
    [...state.participants.values()].map((p) => {
      const self = p.user.id === state.me.id && state.connection === 'online';
      const status = self ? 'online' : state.presence.get(p.user.id) ?? 'offline';
      return el(
        'li',
        { 'data-user-id': p.user.id },
        el('span', { class: `dot ${status}`, 'aria-hidden': 'true' }),
        el('span', { text: displayName(p.user) }),
        el('span', { class: 'visually-hidden', text: ` (${status})` }),
        canRemove(p) && p.user.id !== state.me.id
          ? el('button', { type: 'button', class: 'small', 'aria-label': `Remove ${displayName(p.user)}`, text: 'Remove', onclick: () => removeParticipant(p) })
          : null,
      );
    }),
  );
}

async function removeParticipant(p) {
  try {
    await api('DELETE', `/conversations/${p.conversation_id}/participants/${p.user.id}`);
    state.participants.delete(p.user.id);
    renderPeople();
  } catch (e) {
    show(ui.sendStatus, notice(e.message));
  }
}
