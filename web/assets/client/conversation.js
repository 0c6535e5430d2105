// The conversation view of the chat client: its log (newest 50, older pages on request), the
// composer (Enter sends, typing is announced at most every 5 s; files attached with its button
// or dropped on it upload at once and go with the message), and the people panel with
// presence and, for those who may, a Remove button per participant; a search box over its
// messages (`search.js`).

import { api } from '../api.js';
import { el, notice, show, smallButton } from '../dom.js';
import { pendingAttachments } from './attachments.js';
import { widgetActions } from './inbox.js';
import { kindBadge, upsertMessage } from './messages.js';
import { markRead } from './reads.js';
import { revealPending, searchBox } from './search.js';
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
  // A message needs text (the server refuses an empty one), files or not.
  const files = pendingAttachments(id);
  const picker = el('input', { type: 'file', multiple: true, hidden: true, 'aria-label': 'Files to attach' });
  picker.addEventListener('change', () => {
    files.add(picker.files);
    picker.value = '';
  });
  const attach = el('button', { type: 'button', class: 'secondary', text: 'Attach', 'aria-label': 'Attach files', onclick: () => picker.click() });
  const composer = el('form', { class: 'composer', 'aria-label': 'Send a message' }, attach, picker, input, el('button', { type: 'submit', text: 'Send' }));
  dropTarget(composer, (dropped) => files.add(dropped));
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
    if (files.busy()) {
      show(ui.sendStatus, notice('Wait until the files have uploaded.', 'info'));
      return;
    }
    if (!content) return;
    const attachments = files.ids();
    const body = { content, format: 'text', idempotency_key: crypto.randomUUID() };
    if (attachments.length) body.attachment_ids = attachments;
    try {
      const m = await api('POST', `/conversations/${id}/messages`, body);
      input.value = '';
      files.clear();
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
    el(
      'div',
      { class: 'conv-head' },
      (ui.convTitle = el('h2', { text: conversationName(c) })),
      el('span', { class: 'muted', text: c.source === 'widget' ? 'Website visitor' : c.kind === 'group' ? 'Group' : 'Direct' }),
      widgetActions(c),
      searchBox({ path: () => `/conversations/${id}/search`, label: 'Search this conversation', showConversation: false }),
    ),
    (ui.older = el('div', { class: 'older' })),
    el('div', { class: 'conv-body' }, ui.log, el('aside', { class: 'people-panel', 'aria-labelledby': 'people-title' }, el('h3', { id: 'people-title', text: 'People' }), ui.people)),
    ui.typing,
    composer,
    files.list,
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
  // A search hit chosen elsewhere opens here: show it in its context.
  await revealPending();
}

/** Files dragged over `node` mark it; files dropped on it go to `dropped(files)`. */
function dropTarget(node, dropped) {
  const carriesFiles = (ev) => [...(ev.dataTransfer?.types ?? [])].includes('Files');
  let depth = 0;
  node.addEventListener('dragenter', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    depth += 1;
    node.classList.add('drop-target');
  });
  node.addEventListener('dragover', (ev) => {
    if (carriesFiles(ev)) ev.preventDefault();
  });
  node.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) node.classList.remove('drop-target');
  });
  node.addEventListener('drop', (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    node.classList.remove('drop-target');
    dropped(ev.dataTransfer.files);
  });
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
        kindBadge(p.user),
        el('span', { class: 'visually-hidden', text: ` (${status})` }),
        canRemove(p) && p.user.id !== state.me.id
          ? smallButton('Remove', `Remove ${displayName(p.user)}`, () => removeParticipant(p))
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
