// Live events from the gateway (DISPATCH frames) applied to what is on screen: messages (and
// AI agents' answers as they grow, `answers.js`),
// read markers of my other sessions, conversations created, changed or deleted, participants,
// typing and presence; the support inbox (`inbox.js`); and my own presence, idle while the page
// is hidden.

import { api } from '../api.js';
import { notice, show } from '../dom.js';
import { streamDelta } from './answers.js';
import { inboxEvent } from './inbox.js';
import { renderPeople } from './conversation.js';
import { renderTyping, upsertMessage } from './messages.js';
import { markRead, newestShown } from './reads.js';
import { renderSidebar } from './sidebar.js';
import { app, listsChanged, readsOf, state, ui } from './state.js';

export function dispatch(t, d) {
  inboxEvent(t, d);
  switch (t) {
    case 'MESSAGE_CREATE': {
      state.typing.delete(d.author?.id);
      upsertMessage(d, { live: true });
      renderTyping();
      const r = readsOf(d.conversation_id);
      r.lastSeq = Math.max(r.lastSeq, d.seq);
      if (d.conversation_id === state.openId && ui.log) markRead(d);
      renderSidebar();
      break;
    }
    case 'MESSAGE_UPDATE':
    case 'MESSAGE_DELETE':
      upsertMessage(d);
      break;
    case 'MESSAGE_STREAM':
      streamDelta(d);
      break;
    case 'READ_MARKER_UPDATE': {
      // Another of my sessions read up to this message (its seq, when known here; else all).
      const r = readsOf(d.conversation_id);
      r.readSeq = Math.max(r.readSeq, state.seqOf.get(d.message_id) ?? r.lastSeq);
      renderSidebar();
      break;
    }
    case 'CONVERSATION_CREATE':
    case 'CONVERSATION_UPDATE':
      state.conversations.set(d.id, d);
      listsChanged();
      readsOf(d.id).lastSeq = Math.max(readsOf(d.id).lastSeq, d.last_seq);
      state.available = state.available.filter((a) => a.id !== d.id);
      renderSidebar();
      break;
    case 'CONVERSATION_DELETE':
      state.conversations.delete(d.id);
      listsChanged();
      renderSidebar();
      if (state.openId === d.id) show(ui.main, notice('This conversation was deleted.', 'info'));
      break;
    case 'PARTICIPANT_ADD':
      if (d.conversation_id === state.openId) {
        api('GET', `/conversations/${d.conversation_id}/participants?limit=100`)
          .then((p) => {
            state.participants = new Map(p.items.map((x) => [x.user.id, x]));
            renderPeople();
          })
          .catch(() => {});
      }
      break;
    case 'PARTICIPANT_REMOVE':
      if (d.user_id === state.me.id) {
        state.conversations.delete(d.conversation_id);
        listsChanged();
        renderSidebar();
        if (state.openId === d.conversation_id) {
          ui.log = null;
          show(ui.main, notice('You were removed from this conversation.', 'info'));
        }
      } else if (d.conversation_id === state.openId) {
        state.participants.delete(d.user_id);
        renderPeople();
      }
      break;
    case 'TYPING_START':
      if (d.user_id !== state.me.id) {
        state.typing.set(d.user_id, { conversation: d.conversation_id, until: Date.now() + 6000 });
        renderTyping();
        setTimeout(renderTyping, 6100);
      }
      break;
    case 'PRESENCE_UPDATE':
      state.presence.set(d.user_id, d.status);
      renderPeople();
      break;
    case 'ORG_ACCESS_LOST':
    case 'ORG_ACCESS_RESTORED':
      // An organization now requires two-factor authentication this account lacks (or access
      // came back): what we may see changed, so load it again (AUTH-4a).
      app.reload().catch(() => {});
      break;
    default:
      break;
  }
}

document.addEventListener('visibilitychange', () => {
  state.gateway?.setPresence(document.hidden ? 'idle' : 'online');
  // Back on the page: what the open conversation shows is now read.
  if (!document.hidden && ui.log && state.openId) markRead(newestShown());
});
