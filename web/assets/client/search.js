// Search (MSG-6) in the chat client: a search box per conversation (in its header) and per
// organization (in the sidebar), each listing its hits with the server's snippet — escaped text
// with the matches in <mark>…</mark>, turned into text nodes and <mark> elements here, never
// parsed as HTML — and "More results" while the server has another page. Choosing a hit opens
// its conversation with the message in its context, scrolled to and marked.

import { api } from '../api.js';
import { el, notice, show } from '../dom.js';
import { upsertMessage } from './messages.js';
import { app, conversationName, displayName, state, ui } from './state.js';

const PAGE = 20;
const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" };

/** The nodes of a snippet: its escaped text as text nodes, its marks as `<mark>` elements. */
export function snippetNodes(snippet) {
  const nodes = [];
  let marked = false;
  for (const part of snippet.split(/(<mark>|<\/mark>)/)) {
    if (part === '<mark>' || part === '</mark>') {
      marked = part === '<mark>';
      continue;
    }
    if (!part) continue;
    const text = part.replace(/&(amp|lt|gt|quot|#39);/g, (_, e) => ENTITIES[e]);
    nodes.push(marked ? el('mark', { text }) : document.createTextNode(text));
  }
  return nodes;
}

/**
 * A search box: `path()` names the search route (asked at each search, so the org's box follows
 * the org picked), `label` the box, and `showConversation` whether hits name their conversation.
 * Answers the form with the hits under it.
 */
export function searchBox({ path, label, showConversation }) {
  const input = el('input', { type: 'search', name: 'q', 'aria-label': label, placeholder: 'Search messages', required: true, maxlength: 256, autocomplete: 'off' });
  const results = el('ol', { class: 'search-results', 'aria-label': `Results of ${label.toLowerCase()}`, hidden: true });
  const status = el('div', { class: 'search-status' });
  const more = el('div');
  let query = '';
  const load = async (before) => {
    const params = new URLSearchParams({ q: query, limit: String(PAGE) });
    if (before) params.set('before', before);
    try {
      const page = await api('GET', `${path()}?${params}`);
      if (!before) results.replaceChildren();
      results.hidden = false;
      for (const hit of page.items) results.append(hitItem(hit, showConversation));
      if (!before && page.items.length === 0) results.append(el('li', { class: 'empty', text: 'No messages match.' }));
      show(more, page.next ? el('button', { type: 'button', class: 'small', text: 'More results', onclick: () => load(page.next) }) : null);
      status.replaceChildren();
    } catch (e) {
      show(status, notice(e.message));
    }
  };
  const form = el('form', { class: 'inline-form search-form', role: 'search', 'aria-label': label }, input, el('button', { type: 'submit', text: 'Search' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    query = input.value.trim();
    if (query) load(null);
  });
  return el('div', { class: 'search' }, form, status, results, more);
}

function hitItem(hit, showConversation) {
  const m = hit.message;
  const conv = state.conversations.get(m.conversation_id);
  const where = showConversation && conv ? `${conversationName(conv)} · ` : '';
  return el(
    'li',
    { 'data-message-id': m.id },
    el(
      'button',
      { type: 'button', class: 'hit', onclick: () => openMessage(m) },
      el('span', { class: 'muted', text: `${where}${displayName(m.author)} · ${new Date(m.created_at).toLocaleString()}` }),
      el('span', { class: 'snippet' }, ...snippetNodes(hit.snippet)),
    ),
  );
}

/** The message to show once its conversation is on screen. */
let pending = null;

/** Opens the conversation of `m` and shows `m` there in its context. */
export async function openMessage(m) {
  pending = m;
  const target = `#/c/${m.conversation_id}`;
  if (state.openId === m.conversation_id && ui.log) return revealPending();
  if (location.hash === target) return app.showRoute();
  location.hash = target;
}

/**
 * Called by the conversation view once it is drawn: when a hit of this conversation waits,
 * loads the messages around it (older and newer), scrolls to it and marks it.
 */
export async function revealPending() {
  const m = pending;
  if (!m || m.conversation_id !== state.openId || !ui.log) return;
  pending = null;
  const find = () => ui.log.querySelector(`[data-message-id="${CSS.escape(m.id)}"]`);
  if (!find()) {
    const id = encodeURIComponent(m.id);
    const [older, newer] = await Promise.all([
      api('GET', `/conversations/${m.conversation_id}/messages?limit=10&before=${id}`),
      api('GET', `/conversations/${m.conversation_id}/messages?limit=10&after=${id}`),
    ]);
    if (state.openId !== m.conversation_id) return;
    for (const x of [...older.items, m, ...newer.items]) upsertMessage(x, { scroll: false });
  }
  const node = find();
  if (!node) return;
  for (const other of ui.log.querySelectorAll('.found')) other.classList.remove('found');
  node.classList.add('found');
  node.setAttribute('tabindex', '-1');
  node.scrollIntoView({ block: 'center' });
  node.focus();
}
