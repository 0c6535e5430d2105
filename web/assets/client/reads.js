// Read markers: what I have read, per conversation. READY brings the server's unread counts;
// a message seen on screen moves my marker, locally at once and on the server one request at
// a time per conversation (the newest waiting marker goes next).

import { api } from '../api.js';
import { renderSidebar } from './sidebar.js';
import { readsOf, state, ui } from './state.js';

/** READY's conversation states: the server's count of what is unread. */
export function applyReady(d) {
  for (const c of d.conversations ?? []) {
    state.reads.set(c.id, { lastSeq: c.last_seq, readSeq: c.last_seq - c.unread_count });
  }
  renderSidebar();
}

/** conversation id → the marker waiting to be sent while one is on its way (one at a time). */
const markQueue = new Map();
const markBusy = new Set();

function sendMarker(conversationId, messageId) {
  if (markBusy.has(conversationId)) {
    markQueue.set(conversationId, messageId);
    return;
  }
  markBusy.add(conversationId);
  // keepalive: the marker still reaches the server when the page is left right after.
  api('PUT', `/conversations/${conversationId}/read-marker`, { message_id: messageId }, { keepalive: true })
    .catch(() => {})
    .finally(() => {
      markBusy.delete(conversationId);
      const next = markQueue.get(conversationId);
      markQueue.delete(conversationId);
      if (next) sendMarker(conversationId, next);
    });
}

/** Moves my read marker to `m` (seen on screen): locally, and on the server. */
export function markRead(m) {
  if (!m || document.visibilityState !== 'visible') return;
  const r = readsOf(m.conversation_id);
  r.lastSeq = Math.max(r.lastSeq, m.seq);
  if (r.readSeq >= m.seq) return;
  r.readSeq = m.seq;
  renderSidebar();
  sendMarker(m.conversation_id, m.id);
}

/** The newest message on screen in the open conversation. */
export function newestShown() {
  const li = ui.log?.lastElementChild;
  return li ? { id: li.dataset.messageId, seq: Number(li.dataset.seq), conversation_id: state.openId } : null;
}
