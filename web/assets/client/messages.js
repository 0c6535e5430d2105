// The messages of the open conversation: how one is drawn (plain text as text, server-sanitized
// HTML through DOMPurify, its attachments as `attachments.js` draws them), kept in seq order in the log, edited and deleted by its author; and
// the "… is typing" line under the log.

import DOMPurify from '../vendor/dompurify/purify.es.mjs';
import { api } from '../api.js';
import { el, notice, show, smallButton } from '../dom.js';
import { attachmentsOf } from './attachments.js';
import { displayName, state, ui } from './state.js';

/** The body of a message: plain text as text; HTML (sanitized by the server) through DOMPurify. */
function messageBody(m) {
  const body = el('div', { class: 'body' });
  if (m.deleted_at || m.content === null) {
    body.classList.add('deleted');
    body.textContent = 'This message was deleted.';
  } else if (m.format === 'html') {
    body.append(DOMPurify.sanitize(m.content, { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ['style', 'form', 'svg', 'math'] }));
  } else {
    body.textContent = m.content;
  }
  return body;
}

function messageElement(m) {
  const mine = m.author?.id === state.me.id && !m.deleted_at;
  const time = new Date(m.created_at);
  const li = el(
    'li',
    { class: 'message', 'data-message-id': m.id, 'data-seq': m.seq },
    el(
      'div',
      { class: 'meta' },
      el('span', { class: 'author', text: displayName(m.author) }),
      el('time', { datetime: m.created_at, text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) }),
      m.edited_at && !m.deleted_at ? el('span', { class: 'muted', text: '(edited)' }) : null,
    ),
    messageBody(m),
    attachmentsOf(m),
  );
  if (mine) {
    li.append(
      el(
        'div',
        { class: 'actions' },
        smallButton('Edit', 'Edit message', () => editMessage(li, m)),
        smallButton('Delete', 'Delete message', () => deleteMessage(m)),
      ),
    );
  }
  return li;
}

/** Shows `m` in the open conversation's log (replacing its older version), in seq order. */
export function upsertMessage(m, { scroll = true } = {}) {
  state.seqOf.set(m.id, m.seq);
  if (!ui.log || m.conversation_id !== state.openId) return;
  const node = messageElement(m);
  const existing = ui.log.querySelector(`[data-message-id="${CSS.escape(m.id)}"]`);
  if (existing) {
    existing.replaceWith(node);
    return;
  }
  const later = [...ui.log.children].find((li) => Number(li.dataset.seq) > m.seq);
  ui.log.insertBefore(node, later ?? null);
  if (scroll) node.scrollIntoView({ block: 'nearest' });
}

function editMessage(li, m) {
  const input = el('textarea', { 'aria-label': 'Edit message text', rows: 2, maxlength: 4000, required: true });
  input.value = m.content;
  const form = el(
    'form',
    { class: 'edit-form', 'aria-label': 'Edit message' },
    input,
    el('button', { type: 'submit', text: 'Save' }),
    el('button', { type: 'button', text: 'Cancel', onclick: () => li.replaceWith(messageElement(m)) }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      upsertMessage(await api('PATCH', `/messages/${m.id}`, { content: input.value.trim() }));
    } catch (e) {
      form.append(notice(e.message));
    }
  });
  li.querySelector('.body').replaceWith(form);
  input.focus();
}

async function deleteMessage(m) {
  try {
    await api('DELETE', `/messages/${m.id}`);
    upsertMessage({ ...m, content: null, deleted_at: new Date().toISOString() });
  } catch (e) {
    show(ui.sendStatus, notice(e.message));
  }
}

export function renderTyping() {
  if (!ui.typing) return;
  const now = Date.now();
  const names = [...state.typing.entries()]
    .filter(([, t]) => t.conversation === state.openId && t.until > now)
    .map(([userId]) => displayName(state.participants.get(userId)?.user));
  ui.typing.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}
