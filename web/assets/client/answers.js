// AI agents' answers as they are written (AGENT-3): MESSAGE_STREAM events `{conversation_id,
// message_id, index, delta}` grow the answer on screen in `index` order. An event seen before
// (a duplicate or a replay) changes nothing; one that skips an index, or continues an answer
// whose position is not known here (first seen over REST), makes the client fetch the
// message again — the server's text so far — and keep fetching on later events, one request
// at a time per answer, until its MESSAGE_UPDATE says how it ended.

import { api } from '../api.js';
import { growAnswer, upsertMessage } from './messages.js';
import { state, ui } from './state.js';

/** message id → whether another fetch is wanted once the one on its way answers. */
const fetching = new Map();

/** Applies one MESSAGE_STREAM event. */
export function streamDelta(d) {
  const answer = state.streams.get(d.message_id);
  if (!answer) {
    // Not known as streaming: ended already (a late event), or its MESSAGE_CREATE was missed.
    const shown = ui.log?.querySelector(`[data-message-id="${CSS.escape(d.message_id)}"]`);
    if (d.conversation_id === state.openId && !shown && !state.ended.has(d.message_id)) refetch(d);
    return;
  }
  if (answer.next === null || d.index > answer.next) {
    answer.next = null;
    refetch(d);
    return;
  }
  if (d.index < answer.next) return;
  answer.text += d.delta;
  answer.next += 1;
  growAnswer(d.message_id);
}

/** A message cursor (as the server makes them): base64url of `seq:<n>`, no padding. */
function seqCursor(seq) {
  return btoa(`seq:${seq}`).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** The message as REST has it now, or null: by its seq when known, else among the newest. */
async function fetchMessage(conversationId, id) {
  const seq = state.seqOf.get(id);
  const query = seq === undefined ? 'limit=20' : `limit=1&after=${seqCursor(seq - 1)}`;
  const page = await api('GET', `/conversations/${conversationId}/messages?${query}`);
  return page.items.find((m) => m.id === id) ?? null;
}

/** Fetches answer `d.message_id` again and shows it; at most one request on its way per answer. */
async function refetch(d) {
  const id = d.message_id;
  if (fetching.has(id)) {
    fetching.set(id, true);
    return;
  }
  fetching.set(id, false);
  try {
    for (;;) {
      const m = await fetchMessage(d.conversation_id, id).catch(() => null);
      if (m) upsertMessage(m);
      if (!fetching.get(id) || !state.streams.has(id)) break;
      fetching.set(id, false);
    }
  } finally {
    fetching.delete(id);
  }
}
