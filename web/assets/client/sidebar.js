// The sidebar of the chat client: the organization picker with a search box over the
// conversations I take part in there, my group and direct conversations
// with their unread counts, the ones available to join, and the forms that create a group
// conversation, start a direct one (with a person or an AI agent) and create an organization. Also loads what the lists
// need: an org's members and the names of the other people in direct conversations.

import { api } from '../api.js';
import { el, inlineForm, notice, show } from '../dom.js';
import { welcomeView } from './home.js';
import { searchBox } from './search.js';
import { app, conversationName, displayName, isAgent, listsChanged, route, state, ui, unreadCount } from './state.js';

/** Builds the page: the sidebar and the empty main area (`ui.main`) the views fill. */
export function layout(root) {
  ui.orgSelect = el('select', { id: 'org-select', 'aria-label': 'Organization', onchange: (e) => selectOrg(e.target.value) });
  ui.convList = el('ul', { class: 'conv-list', 'aria-label': 'My conversations' });
  ui.available = el('ul', { class: 'conv-list', 'aria-label': 'Available conversations' });
  ui.newConvStatus = el('div');
  const newConv = inlineForm(
    'New group conversation',
    { name: 'name', 'aria-label': 'New conversation name', placeholder: 'New group name', required: true, maxlength: 100 },
    'Create',
    async (values, form) => {
      try {
        const c = await api('POST', `/orgs/${state.orgId}/conversations`, {
          kind: 'group',
          name: values.name.trim(),
          visibility: 'org',
          participant_ids: [],
        });
        form.reset();
        openAsMine(c);
      } catch (e) {
        show(ui.newConvStatus, notice(e.message));
      }
    },
  );
  ui.newConvButton = newConv.querySelector('button');
  ui.directList = el('ul', { class: 'conv-list', 'aria-label': 'Direct conversations' });
  ui.directStatus = el('div');
  ui.directSelect = el('select', {
    name: 'user',
    'aria-label': 'Start a direct conversation with',
    required: true,
    onchange: () => (ui.directChosen = ui.directSelect.value),
  });
  const newDirect = el(
    'form',
    { class: 'inline-form', 'aria-label': 'New direct conversation' },
    ui.directSelect,
    (ui.directButton = el('button', { type: 'submit', text: 'Start' })),
  );
  newDirect.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const userId = ui.directSelect.value;
    if (!userId) return;
    try {
      const c = await api('POST', `/orgs/${state.orgId}/conversations`, {
        kind: 'direct',
        visibility: 'private',
        participant_ids: [userId],
      });
      const other = state.members.get(state.orgId)?.find((m) => m.user.id === userId);
      if (other) state.directNames.set(c.id, displayName(other.user));
      ui.directStatus.replaceChildren();
      openAsMine(c);
    } catch (e) {
      show(ui.directStatus, notice(e.message));
    }
  });
  ui.newOrgStatus = el('div');
  const newOrg = inlineForm(
    'New organization',
    { name: 'name', 'aria-label': 'New organization name', placeholder: 'New organization', required: true },
    'Create organization',
    async (values, form) => {
      try {
        const o = await api('POST', '/orgs', { name: values.name.trim() });
        form.reset();
        state.orgId = o.id;
        await app.reload();
      } catch (e) {
        show(ui.newOrgStatus, notice(e.message));
      }
    },
  );
  const part = (id, title, ...children) => el('section', { 'aria-labelledby': id }, el('h2', { id, text: title }), ...children);
  const orgSearch = searchBox({ path: () => `/orgs/${state.orgId}/search`, label: 'Search this organization', showConversation: true });
  ui.inboxLink = el('a', { href: '#/inbox', class: 'inbox-link', text: 'Support inbox' });
  ui.orgSection = part('orgs-title', 'Organization', ui.orgSelect, orgSearch, ui.inboxLink);
  ui.sidebar = el(
    'aside',
    { class: 'sidebar' },
    ui.orgSection,
    part('convs-title', 'Conversations', ui.convList, newConv, ui.newConvStatus),
    part('direct-title', 'Direct messages', ui.directList, newDirect, ui.directStatus),
    part('avail-title', 'Available to join', ui.available),
    part('neworg-title', 'New organization', newOrg, ui.newOrgStatus),
  );
  ui.main = el('section', { class: 'content', 'aria-label': 'Conversation' });
  show(root, ui.sidebar, ui.main);
}

export function renderSidebar() {
  if (!ui.orgSelect) return;
  show(ui.orgSelect, state.orgs.map((o) => el('option', { value: o.id, text: o.name, selected: o.id === state.orgId })));
  ui.orgSelect.disabled = state.orgs.length === 0;
  ui.newConvButton.disabled = !state.orgId;
  if (route().view === 'inbox') ui.inboxLink.setAttribute('aria-current', 'page');
  else ui.inboxLink.removeAttribute('aria-current');
  // Lists are rebuilt on live events: keep the keyboard focus on the same conversation.
  const focusedId = document.activeElement?.closest?.('[data-conversation-id]')?.dataset.conversationId;
  const inOrg = (c) => c.org_id === state.orgId;
  const all = [...state.conversations.values()].filter(inOrg);
  const groups = all.filter((c) => c.kind !== 'direct');
  const directs = all.filter((c) => c.kind === 'direct');
  resolveDirectNames(directs);
  const item = (c) => {
    const n = unreadCount(c);
    return el(
      'li',
      { 'data-conversation-id': c.id },
      el(
        'a',
        { href: `#/c/${c.id}`, 'aria-current': c.id === state.openId ? 'page' : null },
        el('span', { class: 'conv-name', text: conversationName(c) }),
        n > 0 ? el('span', { class: 'unread', 'data-count': n }, String(n), el('span', { class: 'visually-hidden', text: ' unread' })) : null,
      ),
    );
  };
  show(
    ui.convList,
    groups.length === 0
      ? el('li', { class: 'empty', text: state.orgId ? 'No conversations yet.' : 'Create or join an organization first.' })
      : groups.map(item),
  );
  show(ui.directList, directs.length === 0 ? el('li', { class: 'empty', text: 'No direct conversations yet.' }) : directs.map(item));
  if (focusedId) ui.sidebar.querySelector(`[data-conversation-id="${CSS.escape(focusedId)}"] a`)?.focus();
  // People and the org's AI agents (a direct conversation with an agent is answered by it).
  const people = (state.members.get(state.orgId) ?? []).filter((m) => m.user.id !== state.me.id && (m.user.kind !== 'bot' || isAgent(m.user)));
  const chosen = ui.directChosen;
  show(
    ui.directSelect,
    el('option', { value: '', text: people.length ? 'Choose a person…' : 'No one else here yet' }),
    people.map((m) => el('option', { value: m.user.id, text: isAgent(m.user) ? `${displayName(m.user)} (AI agent)` : displayName(m.user), selected: m.user.id === chosen })),
  );
  ui.directSelect.disabled = people.length === 0;
  ui.directButton.disabled = people.length === 0;
  const avail = state.available.filter(inOrg);
  show(
    ui.available,
    avail.length === 0
      ? el('li', { class: 'empty', text: 'Nothing to join.' })
      : avail.map((c) =>
          el(
            'li',
            {},
            el('span', { text: conversationName(c) }),
            el('button', { type: 'button', 'aria-label': `Join ${conversationName(c)}`, text: 'Join', onclick: () => join(c) }),
          ),
        ),
  );
}

function selectOrg(id) {
  state.orgId = id;
  renderSidebar();
  loadMembers(id);
  // The home view's invite form and the inbox belong to the chosen org.
  if (route().view === 'home') welcomeView();
  if (route().view === 'inbox') app.showRoute();
}

/** Adds a conversation I just created or joined to my list and opens it. */
function openAsMine(c) {
  state.conversations.set(c.id, c);
  listsChanged();
  location.hash = `#/c/${c.id}`;
  renderSidebar();
}

async function join(c) {
  try {
    await api('POST', `/conversations/${c.id}/join`);
    state.available = state.available.filter((a) => a.id !== c.id);
    openAsMine(c);
  } catch (e) {
    show(ui.newConvStatus, notice(e.message));
  }
}

/** Loads an org's members once; `refresh` fetches them again (the old list stays meanwhile). */
export async function loadMembers(orgId, refresh = false) {
  if (!orgId || (state.members.has(orgId) && !refresh)) return;
  try {
    const m = await api('GET', `/orgs/${orgId}/members?limit=100`);
    state.members.set(orgId, m.items);
  } catch {
    if (!state.members.has(orgId)) state.members.set(orgId, []);
  }
  renderSidebar();
}

/** Learns the other person's name of direct conversations (one small request each, once). */
function resolveDirectNames(convs) {
  for (const c of convs) {
    if (c.kind !== 'direct' || state.directNames.has(c.id) || state.directPending.has(c.id)) continue;
    state.directPending.add(c.id);
    api('GET', `/conversations/${c.id}/participants?limit=3`)
      .then((p) => {
        setDirectName(c.id, p.items);
        renderSidebar();
      })
      .catch(() => {})
      .finally(() => state.directPending.delete(c.id));
  }
}

export function setDirectName(id, participants) {
  const others = participants.filter((p) => p.user.id !== state.me.id);
  state.directNames.set(id, others.length ? others.map((p) => displayName(p.user)).join(', ') : 'Just you');
}
