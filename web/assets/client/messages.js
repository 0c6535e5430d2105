// The messages of the open conversation: how one is drawn (plain text as text, server-sanitized
// HTML through DOMPurify, its attachments as `attachments.js` draws them), kept in seq order in the log, edited and deleted by its author; and
// the "… is typing" line under the log. An AI agent's answer (AGENT-3) is drawn with its state:
// while `streaming` it grows in place (`growAnswer`, fed by `answers.js`) and has a Stop button;
// `failed` (with its reason) and `stopped` say so. Its text is text like any other: never HTML,
// no link in it is followed or previewed.

import DOMPurify from '../vendor/dompurify/purify.es.mjs';
import { api } from '../api.js';
import { el, notice, show, smallButton } from '../dom.js';
import { attachmentsOf } from './attachments.js';
import { displayName, isAgent, state, ui } from './state.js';

/** The body of a message: plain text as text; HTML (sanitized by the server) through DOMPurify. */
function messageBody(m) {
  const body = el('div', { class: 'body' });
  if (m.deleted_at || m.content === null) {
    body.classList.add('deleted');
    body.textContent = 'This message was deleted.';
  } else if (m.status === 'streaming') {
    body.textContent = state.streams.get(m.id)?.text ?? m.content;
  } else if (m.format === 'html') {
    body.append(DOMPurify.sanitize(m.content, { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ['style', 'form', 'svg', 'math'] }));
  } else {
    body.textContent = m.content;
  }
  return body;
}

/** The mark beside the name of an AI agent or another bot; none for a person. */
export function kindBadge(user) {
  if (user?.kind !== 'bot') return null;
  return el('span', { class: 'badge kind', text: isAgent(user) ? 'AI agent' : 'bot' });
}

/** What an agent's answer says of its state, in words; nothing for a complete message. */
function answerState(m) {
  if (m.deleted_at) return null;
  const reason = m.status_reason ? m.status_reason.replaceAll('_', ' ') : null;
  switch (m.status) {
    case 'streaming':
      return el(
        'div',
        { class: 'answer-state streaming' },
        el('span', { class: 'muted', text: 'Writing…' }),
        // Stopping is for the participants who may send here (the server decides; this hides it).
        !state.permissions.has('send_messages') ? null : smallButton('Stop', `Stop answer by ${displayName(m.author)}`, () => stopAnswer(m)),
      );
    case 'failed':
      return el('p', { class: 'answer-state failed', text: `The answer failed${reason ? `: ${reason}` : ''}.` });
    case 'stopped':
      return el('p', { class: 'answer-state stopped', text: `The answer was stopped${reason && reason !== 'stopped' ? ` (${reason})` : ''}.` });
    default:
      return null;
  }
}

async function stopAnswer(m) {
  try {
    upsertMessage(await api('POST', `/messages/${m.id}/stop`));
  } catch (e) {
    // 409 not_streaming: it ended meanwhile; its MESSAGE_UPDATE shows how.
    if (e.code !== 'not_streaming') show(ui.sendStatus, notice(e.message));
  }
}

function messageElement(m) {
  const mine = m.author?.id === state.me.id && !m.deleted_at;
  const time = new Date(m.created_at);
  const streaming = m.status === 'streaming';
  const li = el(
    'li',
    // A growing answer is busy: screen readers read it once it is written, not every delta.
    { class: 'message', 'data-message-id': m.id, 'data-seq': m.seq, 'data-status': m.status ?? 'complete', 'aria-busy': streaming && !m.deleted_at ? 'true' : null },
    el(
      'div',
      { class: 'meta' },
      el('span', { class: 'author', text: displayName(m.author) }),
      kindBadge(m.author),
      el('time', { datetime: m.created_at, text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) }),
      m.edited_at && !m.deleted_at ? el('span', { class: 'muted', text: '(edited)' }) : null,
    ),
    messageBody(m),
    answerState(m),
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

/**
 * Keeps the record of an agent's answer in step with `m` (AGENT-3); false when `m` is a stale
 * copy of an answer already seen ended. `live`: `m` is its MESSAGE_CREATE, so MESSAGE_STREAM
 * continues it from index 0; an answer first seen over REST has text whose index is unknown.
 */
function trackAnswer(m, live) {
  if (m.status !== 'streaming' || m.deleted_at) {
    state.streams.delete(m.id);
    if (m.status || m.deleted_at) state.ended.add(m.id);
    return true;
  }
  if (state.ended.has(m.id)) return false;
  const content = m.content ?? '';
  const known = state.streams.get(m.id);
  if (!known) {
    state.streams.set(m.id, { text: content, next: live && content === '' ? 0 : null });
  } else if (!known.text.startsWith(content)) {
    // The server has more (or other) text than shown: show it; where deltas go on is unknown.
    known.text = content;
    known.next = null;
  }
  // Otherwise what is shown is ahead of the text the server has stored so far: it stays (an
  // answer never shrinks on screen).
  return true;
}

/** Shows the text of answer `id` so far, in place (the Stop button keeps its focus). */
export function growAnswer(id) {
  const body = ui.log?.querySelector(`[data-message-id="${CSS.escape(id)}"][data-status="streaming"] .body`);
  if (body) body.textContent = state.streams.get(id)?.text ?? '';
}

/**
 * Shows `m` in the open conversation's log (replacing its older version), in seq order.
 * `live`: `m` comes from the gateway's MESSAGE_CREATE.
 */
export function upsertMessage(m, { scroll = true, live = false } = {}) {
  if (!trackAnswer(m, live)) return;
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
