// The chat client at `/`: sign-in, orgs and conversations (group and direct), live messages
// over the gateway, unread counts kept with read markers, the sessions page, two-factor
// settings and the account page (security events, data export, erasure). Routes live in the
// fragment: `#/c/<id>`, `#/sessions`, `#/security`, `#/account`.

import DOMPurify from './vendor/dompurify/purify.es.mjs';
import { api, currentSession, download, saveBlob, setCsrfToken, signOut } from './api.js';
import { Gateway } from './gateway.js';
import { el, formValues, notice, show } from './dom.js';
import { bootstrapView, signInView } from './signin.js';

const root = document.getElementById('app');
const nav = document.getElementById('nav');

const state = {
  me: null,
  orgs: [],
  orgId: null,
  conversations: new Map(),
  available: [],
  openId: null,
  participants: new Map(),
  /** The open conversation's `permissions`, from the server. */
  permissions: new Set(),
  presence: new Map(),
  typing: new Map(),
  gateway: null,
  connection: 'offline',
  /** conversation id → `{lastSeq, readSeq}`: unread = lastSeq − readSeq (as the server counts). */
  reads: new Map(),
  /** message id → seq, for read markers that arrive as a message id. */
  seqOf: new Map(),
  /** direct conversation id → the other person's name. */
  directNames: new Map(),
  directPending: new Set(),
  /** org id → its members (for starting direct conversations). */
  members: new Map(),
};

const ui = {};

function displayName(user) {
  return user?.display_name || user?.username || 'unknown';
}

function conversationName(c) {
  if (c.kind === 'direct') return state.directNames.get(c.id) ?? 'Direct conversation';
  return c.name || 'Unnamed conversation';
}

/** Unread messages in `c`, or 0 while not known. */
function unreadCount(c) {
  const r = state.reads.get(c.id);
  return r ? Math.max(0, r.lastSeq - r.readSeq) : 0;
}

/** The read state of a conversation, made from its REST object when there is none yet. */
function readsOf(id) {
  let r = state.reads.get(id);
  if (!r) {
    const lastSeq = state.conversations.get(id)?.last_seq ?? 0;
    r = { lastSeq, readSeq: 0 };
    state.reads.set(id, r);
  }
  return r;
}

/** READY's conversation states: the server's count of what is unread. */
function applyReady(d) {
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
function markRead(m) {
  if (!m || document.visibilityState !== 'visible') return;
  const r = readsOf(m.conversation_id);
  r.lastSeq = Math.max(r.lastSeq, m.seq);
  if (r.readSeq >= m.seq) return;
  r.readSeq = m.seq;
  renderSidebar();
  sendMarker(m.conversation_id, m.id);
}

/** The newest message on screen in the open conversation. */
function newestShown() {
  const li = ui.log?.lastElementChild;
  return li ? { id: li.dataset.messageId, seq: Number(li.dataset.seq), conversation_id: state.openId } : null;
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

function setDirectName(id, participants) {
  const others = participants.filter((p) => p.user.id !== state.me.id);
  state.directNames.set(id, others.length ? others.map((p) => displayName(p.user)).join(', ') : 'Just you');
}

/** Loads an org's members once; `refresh` fetches them again (the old list stays meanwhile). */
async function loadMembers(orgId, refresh = false) {
  if (!orgId || (state.members.has(orgId) && !refresh)) return;
  try {
    const m = await api('GET', `/orgs/${orgId}/members?limit=100`);
    state.members.set(orgId, m.items);
  } catch {
    if (!state.members.has(orgId)) state.members.set(orgId, []);
  }
  renderSidebar();
}

function route() {
  const m = location.hash.match(/^#\/c\/([0-9a-f-]{36})$/);
  if (m) return { view: 'conversation', id: m[1] };
  if (location.hash === '#/sessions') return { view: 'sessions' };
  if (location.hash === '#/security') return { view: 'security' };
  if (location.hash === '#/account') return { view: 'account' };
  return { view: 'home' };
}

async function start() {
  const boot = location.hash.match(/^#bootstrap=(.+)$/);
  if (boot) {
    bootstrapView(root, decodeURIComponent(boot[1]), signedIn);
    return;
  }
  const session = await currentSession();
  if (session) signedIn(session.user);
  else signedOut();
}

function signedOut(reason) {
  state.gateway?.stop();
  state.gateway = null;
  state.me = null;
  show(nav);
  signInView(root, signedIn).then(() => {
    if (reason) root.prepend(notice(reason));
  });
}

async function signedIn(user) {
  state.me = user;
  show(
    nav,
    el('span', { class: 'who', text: `Signed in as ${displayName(user)}` }),
    el('span', { id: 'connection', class: 'connection', role: 'status', text: '' }),
    el('a', { href: '#/sessions', text: 'Sessions' }),
    el('a', { href: '#/security', text: 'Two-factor' }),
    el('a', { href: '#/account', text: 'Account' }),
    user.server_admin ? el('a', { href: '/admin', text: 'Admin console' }) : null,
    el('button', { type: 'button', class: 'link', onclick: doSignOut, text: 'Sign out' }),
  );
  layout();
  state.gateway = new Gateway({
    onDispatch: dispatch,
    onReady: (d, fresh) => {
      if (!fresh) return;
      applyReady(d);
      reload();
    },
    onStatus: (s) => {
      state.connection = s;
      const node = document.getElementById('connection');
      if (!node) return;
      node.dataset.state = s;
      node.textContent = s === 'online' ? '' : s;
    },
    onSignedOut: () => signedOut('Your session has ended. Please sign in again.'),
  });
  state.gateway.connect();
  await reload();
}

async function doSignOut() {
  try {
    await signOut();
  } finally {
    signedOut();
  }
}

function layout() {
  ui.orgSelect = el('select', { id: 'org-select', 'aria-label': 'Organization', onchange: (e) => selectOrg(e.target.value) });
  ui.convList = el('ul', { class: 'conv-list', 'aria-label': 'My conversations' });
  ui.available = el('ul', { class: 'conv-list', 'aria-label': 'Available conversations' });
  ui.newConvStatus = el('div');
  const newConv = el(
    'form',
    { class: 'inline-form', 'aria-label': 'New group conversation' },
    el('input', { name: 'name', 'aria-label': 'New conversation name', placeholder: 'New group name', required: true, maxlength: 100 }),
    (ui.newConvButton = el('button', { type: 'submit', text: 'Create' })),
  );
  newConv.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const c = await api('POST', `/orgs/${state.orgId}/conversations`, {
        kind: 'group',
        name: formValues(newConv).name.trim(),
        visibility: 'org',
        participant_ids: [],
      });
      newConv.reset();
      state.conversations.set(c.id, c);
      location.hash = `#/c/${c.id}`;
      renderSidebar();
    } catch (e) {
      show(ui.newConvStatus, notice(e.message));
    }
  });
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
      state.conversations.set(c.id, c);
      ui.directStatus.replaceChildren();
      location.hash = `#/c/${c.id}`;
      renderSidebar();
    } catch (e) {
      show(ui.directStatus, notice(e.message));
    }
  });
  ui.newOrgStatus = el('div');
  const newOrg = el(
    'form',
    { class: 'inline-form', 'aria-label': 'New organization' },
    el('input', { name: 'name', 'aria-label': 'New organization name', placeholder: 'New organization', required: true }),
    el('button', { type: 'submit', text: 'Create organization' }),
  );
  newOrg.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const o = await api('POST', '/orgs', { name: formValues(newOrg).name.trim() });
      newOrg.reset();
      state.orgId = o.id;
      await reload();
    } catch (e) {
      show(ui.newOrgStatus, notice(e.message));
    }
  });
  ui.orgSection = el('section', { 'aria-labelledby': 'orgs-title' }, el('h2', { id: 'orgs-title', text: 'Organization' }), ui.orgSelect);
  ui.sidebar = el(
    'aside',
    { class: 'sidebar' },
    ui.orgSection,
    el('section', { 'aria-labelledby': 'convs-title' }, el('h2', { id: 'convs-title', text: 'Conversations' }), ui.convList, newConv, ui.newConvStatus),
    el('section', { 'aria-labelledby': 'direct-title' }, el('h2', { id: 'direct-title', text: 'Direct messages' }), ui.directList, newDirect, ui.directStatus),
    el('section', { 'aria-labelledby': 'avail-title' }, el('h2', { id: 'avail-title', text: 'Available to join' }), ui.available),
    el('section', { 'aria-labelledby': 'neworg-title' }, el('h2', { id: 'neworg-title', text: 'New organization' }), newOrg, ui.newOrgStatus),
  );
  ui.main = el('section', { class: 'content', 'aria-label': 'Conversation' });
  show(root, ui.sidebar, ui.main);
}

async function reload() {
  if (!state.me) return;
  const [orgs, convs, available] = await Promise.all([
    api('GET', '/orgs'),
    api('GET', '/conversations?limit=100'),
    api('GET', '/conversations/available?limit=100'),
  ]);
  state.orgs = orgs.items;
  if (!state.orgs.some((o) => o.id === state.orgId)) state.orgId = state.orgs[0]?.id ?? null;
  state.conversations = new Map(convs.items.map((c) => [c.id, c]));
  state.available = available.items.filter((c) => !state.conversations.has(c.id));
  for (const c of state.conversations.values()) {
    const r = state.reads.get(c.id);
    if (r) r.lastSeq = Math.max(r.lastSeq, c.last_seq);
  }
  loadMembers(state.orgId, true);
  renderSidebar();
  const r = route();
  if (r.view === 'conversation' && ui.log && ui.renderedId === r.id && state.conversations.has(r.id)) {
    // Already on screen: fetch what may have been missed while the gateway was away.
    const messages = await api('GET', `/conversations/${r.id}/messages?limit=50`);
    for (const m of messages.items.reverse()) upsertMessage(m);
    markRead(messages.items.at(-1));
  } else {
    await renderRoute();
  }
}

function renderSidebar() {
  if (!ui.orgSelect) return;
  show(ui.orgSelect, state.orgs.map((o) => el('option', { value: o.id, text: o.name, selected: o.id === state.orgId })));
  ui.orgSelect.disabled = state.orgs.length === 0;
  ui.newConvButton.disabled = !state.orgId;
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
  const people = (state.members.get(state.orgId) ?? []).filter((m) => m.user.id !== state.me.id && m.user.kind !== 'bot');
  const chosen = ui.directChosen;
  show(
    ui.directSelect,
    el('option', { value: '', text: people.length ? 'Choose a person…' : 'No one else here yet' }),
    people.map((m) => el('option', { value: m.user.id, text: displayName(m.user), selected: m.user.id === chosen })),
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
  // The home view's invite form belongs to the chosen org.
  if (route().view === 'home') welcomeView();
}

async function join(c) {
  try {
    await api('POST', `/conversations/${c.id}/join`);
    state.available = state.available.filter((a) => a.id !== c.id);
    state.conversations.set(c.id, c);
    location.hash = `#/c/${c.id}`;
    renderSidebar();
  } catch (e) {
    show(ui.newConvStatus, notice(e.message));
  }
}

window.addEventListener('hashchange', () => {
  if (state.me) renderRoute();
});

async function renderRoute() {
  const r = route();
  ui.renderedId = null;
  state.openId = r.view === 'conversation' ? r.id : null;
  renderSidebar();
  if (r.view === 'sessions') return sessionsView();
  if (r.view === 'security') return securityView();
  if (r.view === 'account') return accountView();
  if (r.view === 'conversation') return conversationView(r.id);
  return welcomeView();
}

const ROLES = ['member', 'viewer', 'admin', 'owner'];

/** The home view: pending invitations to accept, and (for owners and admins) an invite form. */
async function welcomeView() {
  const org = state.orgs.find((o) => o.id === state.orgId);
  // A reload (e.g. the gateway's READY) while this view of the same org is up refreshes the
  // invitations only: rebuilding would drop what the user is typing into the invite form.
  const key = `${org?.id ?? ''}:${org?.role ?? ''}`;
  if (ui.welcome && ui.welcome.key === key && ui.main.contains(ui.welcome.invites)) {
    return fillInvitations(ui.welcome.invites, ui.welcome.status);
  }
  const invites = el('ul', { class: 'plain-list', 'aria-label': 'Pending invitations' });
  const inviteStatus = el('div');
  ui.welcome = { key, invites, status: inviteStatus };
  show(
    ui.main,
    el('div', { class: 'welcome' }, el('h2', { text: 'Welcome' }), el('p', { text: 'Pick a conversation on the left, or create one.' })),
    el(
      'section',
      { class: 'card', 'aria-labelledby': 'invites-title' },
      el('h3', { id: 'invites-title', text: 'Invitations' }),
      el('p', { class: 'muted', text: 'Organizations that invited you. You join only when you accept.' }),
      inviteStatus,
      invites,
    ),
    org?.permissions?.includes('create_invite') ? inviteForm(org) : null,
  );
  return fillInvitations(invites, inviteStatus);
}

/** The caller's pending invitations, each with its Accept button, into `invites`. */
async function fillInvitations(invites, inviteStatus) {
  try {
    const pending = await api('GET', '/users/@me/invites');
    show(
      invites,
      pending.items.length === 0
        ? el('li', { class: 'empty', text: 'No invitations.' })
        : pending.items.map((i) =>
            el(
              'li',
              { 'data-invite-id': i.id },
              el('span', { text: `${i.org_name} (as ${i.role})` }),
              el('button', {
                type: 'button',
                class: 'small',
                'aria-label': `Accept the invitation to ${i.org_name}`,
                text: 'Accept',
                onclick: async () => {
                  try {
                    const joined = await api('POST', `/orgs/invites/${i.id}/accept`);
                    state.orgId = joined.id;
                    await reload();
                  } catch (e) {
                    show(inviteStatus, notice(e.message));
                  }
                },
              }),
            ),
          ),
    );
  } catch (e) {
    show(inviteStatus, notice(e.message));
  }
}

/** Invite a person by username (they accept it themselves; AZ-7). */
function inviteForm(org) {
  const status = el('div');
  const form = el(
    'form',
    { class: 'inline-form', 'aria-label': `Invite someone to ${org.name}` },
    el('input', { name: 'username', 'aria-label': `Username to invite to ${org.name}`, placeholder: 'username', required: true, autocomplete: 'off' }),
    el(
      'select',
      { name: 'role', 'aria-label': 'Role for the invited person' },
      ROLES.filter((r) => r !== 'owner' || org.permissions.includes('manage_owners')).map((r) => el('option', { value: r, text: r })),
    ),
    el('button', { type: 'submit', text: 'Invite' }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const username = v.username.trim();
    try {
      await api('POST', `/orgs/${org.id}/invites`, { username, role: v.role });
      form.reset();
      show(status, notice(`Invited ${username}: they join once they accept.`, 'info'));
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  return el(
    'section',
    { class: 'card', 'aria-labelledby': 'invite-title' },
    el('h3', { id: 'invite-title', text: `Invite to ${org.name}` }),
    form,
    status,
  );
}

// ---- conversation -------------------------------------------------------------------------

async function conversationView(id) {
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

function renderPeople() {
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
  );
  if (mine) {
    li.append(
      el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', class: 'small', 'aria-label': 'Edit message', text: 'Edit', onclick: () => editMessage(li, m) }),
        el('button', { type: 'button', class: 'small', 'aria-label': 'Delete message', text: 'Delete', onclick: () => deleteMessage(m) }),
      ),
    );
  }
  return li;
}

function upsertMessage(m, { scroll = true } = {}) {
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

function renderTyping() {
  if (!ui.typing) return;
  const now = Date.now();
  const names = [...state.typing.entries()]
    .filter(([, t]) => t.conversation === state.openId && t.until > now)
    .map(([userId]) => displayName(state.participants.get(userId)?.user));
  ui.typing.textContent = names.length === 0 ? '' : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

// ---- live events --------------------------------------------------------------------------

function dispatch(t, d) {
  switch (t) {
    case 'MESSAGE_CREATE': {
      state.typing.delete(d.author?.id);
      upsertMessage(d);
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
      readsOf(d.id).lastSeq = Math.max(readsOf(d.id).lastSeq, d.last_seq);
      state.available = state.available.filter((a) => a.id !== d.id);
      renderSidebar();
      break;
    case 'CONVERSATION_DELETE':
      state.conversations.delete(d.id);
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
      reload().catch(() => {});
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

// ---- sessions -----------------------------------------------------------------------------

async function sessionsView() {
  const list = el('ul', { class: 'sessions', 'aria-label': 'Signed-in sessions' });
  const status = el('div');
  show(
    ui.main,
    el('h2', { text: 'Sessions' }),
    el('p', { text: 'Devices signed in to your account. Revoking one signs it out at once.' }),
    list,
    el('button', {
      type: 'button',
      text: 'Sign out all other sessions',
      onclick: async () => {
        try {
          await api('POST', '/auth/sessions/revoke-others');
          await sessionsView();
        } catch (e) {
          show(status, notice(e.message));
        }
      },
    }),
    status,
  );
  const sessions = await api('GET', '/auth/sessions');
  show(
    list,
    sessions.items.map((s) =>
      el(
        'li',
        { 'data-session-id': s.id },
        el('strong', { text: s.device || 'Unknown device' }),
        s.impersonator ? el('span', { class: 'flag', text: `Impersonated by an administrator (${s.impersonator})` }) : null,
        el('span', { class: 'muted', text: ` ${s.ip ?? ''} · signed in ${new Date(s.created_at).toLocaleString()} · last seen ${new Date(s.last_seen_at).toLocaleString()}` }),
        s.current
          ? el('span', { class: 'badge', text: 'This device' })
          : el('button', {
              type: 'button',
              class: 'small',
              'aria-label': `Revoke session on ${s.device || 'unknown device'}`,
              text: 'Revoke',
              onclick: async () => {
                try {
                  await api('DELETE', `/auth/sessions/${s.id}`);
                  await sessionsView();
                } catch (e) {
                  show(status, notice(e.message));
                }
              },
            }),
      ),
    ),
  );
}

// ---- account: security events, export, erasure -------------------------------------------

const EVENT_LABELS = {
  'auth.login': 'Sign-in',
  'auth.logout': 'Sign-out',
  'auth.second_factor': 'Second factor',
  'password.changed': 'Password changed',
  'password.reset': 'Password reset',
  'session.revoked': 'Session revoked',
  'sessions.revoked_others': 'Other sessions signed out',
  'totp.setup_started': 'Two-factor setup started',
  'totp.enabled': 'Two-factor turned on',
  'totp.disabled': 'Two-factor turned off',
  'recovery_codes.regenerated': 'Recovery codes replaced',
  'recovery_code.used': 'Recovery code used',
  'impersonation.started': 'Impersonation by an administrator',
  'admin.user_updated': 'Account changed by an administrator',
  'user.exported': 'Data downloaded',
};

function securityEvent(e) {
  const impersonation = e.event === 'impersonation.started' || e.actor.impersonator;
  const failed = e.outcome === 'failure';
  const reason = e.detail?.reason ? ` (${e.detail.reason.replaceAll('_', ' ')})` : '';
  const until = e.event === 'impersonation.started' && e.detail?.expires_at ? ` · until ${new Date(e.detail.expires_at).toLocaleString()}` : '';
  return el(
    'li',
    { 'data-event': e.event, 'data-outcome': e.outcome, class: [failed ? 'failed' : '', impersonation ? 'impersonation' : ''].join(' ').trim() || null },
    el('strong', { text: EVENT_LABELS[e.event] ?? e.event }),
    failed ? el('span', { class: 'outcome-failure', text: `failed${reason}` }) : el('span', { class: 'muted', text: 'succeeded' }),
    impersonation ? el('span', { class: 'flag', text: e.actor.impersonator ? `Done by administrator ${e.actor.impersonator} as you` : `Administrator ${e.actor.id ?? ''} signed in as you` }) : null,
    el('span', { class: 'muted' }, el('time', { datetime: e.at, text: new Date(e.at).toLocaleString() }), ` · ${e.ip ?? 'unknown address'}${until}`),
    e.user_agent ? el('span', { class: 'muted ua', text: e.user_agent }) : null,
  );
}

async function accountView() {
  const list = el('ul', { class: 'events', 'aria-label': 'Security events' });
  const listStatus = el('div');
  const more = el('div');
  const loadEvents = async (before) => {
    try {
      const page = await api('GET', `/users/@me/security-events?limit=20${before ? `&before=${encodeURIComponent(before)}` : ''}`);
      if (!before) list.replaceChildren();
      list.append(...page.items.map(securityEvent));
      if (!list.children.length) list.append(el('li', { class: 'empty', text: 'No events yet.' }));
      show(more, page.next ? el('button', { type: 'button', class: 'small', text: 'Older events', onclick: () => loadEvents(page.next) }) : null);
    } catch (e) {
      show(listStatus, notice(e.message));
    }
  };

  const exportStatus = el('div');
  const exportButton = el('button', {
    type: 'button',
    text: 'Download my data',
    onclick: async () => {
      exportButton.disabled = true;
      try {
        const { blob, filename } = await download('/users/@me/export');
        saveBlob(blob, filename);
        show(exportStatus, notice(`Saved ${filename}.`, 'info'));
        loadEvents();
      } catch (e) {
        show(exportStatus, notice(e.message));
      } finally {
        exportButton.disabled = false;
      }
    },
  });

  show(
    ui.main,
    el('h2', { text: 'Account' }),
    el(
      'section',
      { class: 'card', 'aria-labelledby': 'events-title' },
      el('h3', { id: 'events-title', text: 'Security events' }),
      el('p', { class: 'muted', text: 'Sign-ins (also failed ones), sessions, two-factor changes and administrator impersonations of your account, newest first. Something you do not recognise? Change your password and sign out other sessions.' }),
      listStatus,
      list,
      more,
    ),
    el(
      'section',
      { class: 'card', 'aria-labelledby': 'export-title' },
      el('h3', { id: 'export-title', text: 'Your data' }),
      el('p', { text: 'One JSON file with your profile, memberships, conversations, messages you wrote, sessions, API keys (masked) and the audit events about you.' }),
      exportButton,
      exportStatus,
    ),
    deleteAccountForm(),
  );
  await loadEvents();
}

/** Erasure: password (and a code when two-factor is on), then an explicit confirmation. */
function deleteAccountForm() {
  const status = el('div');
  const confirmArea = el('div');
  const codeField = el(
    'label',
    { class: 'field', hidden: true },
    el('span', { text: 'Two-factor code or recovery code' }),
    el('input', { name: 'code', autocomplete: 'one-time-code', spellcheck: 'false' }),
  );
  const form = el(
    'form',
    { class: 'card danger-zone', 'aria-labelledby': 'delete-title' },
    el('h3', { id: 'delete-title', text: 'Delete my account' }),
    el('p', { text: 'This erases your account for good: your memberships, sessions, keys and personal data go; your messages are removed or kept under an anonymous name, as each organization decides. Download your data first if you want a copy.' }),
    el('label', { class: 'field' }, el('span', { text: 'Current password' }), el('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    codeField,
    el('button', { type: 'submit', class: 'danger', text: 'Delete my account…' }),
    confirmArea,
    status,
  );
  const markInvalid = (field) => {
    for (const i of form.querySelectorAll('input')) i.removeAttribute('aria-invalid');
    const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
    input?.setAttribute('aria-invalid', 'true');
    input?.focus();
  };
  const erase = async () => {
    const v = formValues(form);
    const body = { password: v.password };
    if (v.code?.trim()) body.code = v.code.trim();
    try {
      await api('DELETE', '/users/@me', body);
    } catch (e) {
      confirmArea.replaceChildren();
      const field = e.field?.replace(/^\//, '') ?? null;
      if (field === 'code') codeField.hidden = false;
      const what =
        e.code === 'last_owner'
          ? `${e.message}. Make someone else an owner of that organization first.`
          : field === 'code' && e.code === 'required'
            ? 'Two-factor authentication is on: enter a code from your app (or a recovery code) too.'
            : e.message;
      show(status, notice(field ? `${field === 'code' ? 'Code' : 'Password'}: ${what}` : what));
      markInvalid(field);
      return;
    }
    setCsrfToken(null);
    signedOut('Your account was deleted.');
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    const yes = el('button', { type: 'button', class: 'danger', text: 'Yes, delete my account forever', onclick: erase });
    show(
      confirmArea,
      el(
        'div',
        { class: 'notice error', role: 'alertdialog', 'aria-label': 'Confirm account deletion' },
        el('p', { text: `Delete the account ${state.me.username}? This cannot be undone.` }),
        yes,
        ' ',
        el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => confirmArea.replaceChildren() }),
      ),
    );
    yes.focus();
  });
  return form;
}

// ---- two-factor settings ------------------------------------------------------------------

function securityView() {
  const setupArea = el('div');
  const setupStatus = el('div');
  const setupButton = el('button', {
    type: 'button',
    text: 'Set up two-factor authentication',
    onclick: async () => {
      try {
        const s = await api('POST', '/auth/totp/setup', {});
        show(setupArea, enableForm(s));
        setupStatus.replaceChildren();
      } catch (e) {
        show(setupStatus, notice(e.code === 'mfa_already_enabled' ? 'Two-factor authentication is already on.' : e.message, e.code === 'mfa_already_enabled' ? 'info' : 'error'));
      }
    },
  });
  const disableStatus = el('div');
  const disable = el(
    'form',
    { class: 'card', 'aria-labelledby': 'disable-2fa-title' },
    el('h3', { id: 'disable-2fa-title', text: 'Turn off two-factor authentication' }),
    el('label', { class: 'field' }, el('span', { text: 'Current code or recovery code' }), el('input', { name: 'code', autocomplete: 'one-time-code', required: true })),
    el('button', { type: 'submit', text: 'Turn off' }),
    disableStatus,
  );
  disable.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/auth/totp/disable', { code: formValues(disable).code.trim() });
      disable.reset();
      show(disableStatus, notice('Two-factor authentication is off.', 'info'));
    } catch (e) {
      show(disableStatus, notice(e.message));
    }
  });
  show(
    ui.main,
    el('h2', { text: 'Two-factor authentication' }),
    el('p', { text: 'With two-factor authentication on, signing in also asks for a code from an authenticator app (TOTP).' }),
    el('div', { class: 'card' }, el('h3', { text: 'Turn on' }), setupButton, setupStatus, setupArea),
    disable,
  );
}

function enableForm(setup) {
  const status = el('div');
  const qrFigure = el('figure', { class: 'qr-figure' }, el('figcaption', { class: 'muted', text: 'Authenticator QR code' }));
  // The encoder is loaded only here, to keep the first page small.
  import('./qr.js')
    .then(({ qrSvg }) => qrFigure.prepend(qrSvg(setup.otpauth_uri, 'QR code for your authenticator app')))
    .catch((e) => qrFigure.append(notice(`Could not draw the QR code: ${e.message}`)));
  const form = el(
    'form',
    { 'aria-label': 'Confirm two-factor authentication' },
    el('p', { text: 'Scan this QR code with your authenticator app (or type in the key below, or open the link on a phone), then enter the code it shows.' }),
    qrFigure,
    el('label', { class: 'field' }, el('span', { text: 'Secret key' }), el('input', { readonly: true, value: setup.secret, class: 'secret', spellcheck: 'false' })),
    el('p', {}, el('a', { href: setup.otpauth_uri, text: 'Open in authenticator app' })),
    el('label', { class: 'field' }, el('span', { text: 'Code from your app' }), el('input', { name: 'code', autocomplete: 'one-time-code', inputmode: 'numeric', required: true })),
    el('button', { type: 'submit', text: 'Turn on two-factor authentication' }),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await api('POST', '/auth/totp/enable', { code: formValues(form).code.trim() });
      show(
        form,
        el(
          'div',
          { class: 'secret-box card', role: 'status' },
          el('h3', { text: 'Two-factor authentication is on' }),
          el('p', { text: 'Save these recovery codes somewhere safe. Each works once if you lose your authenticator; they are shown only now.' }),
          el('ul', { class: 'recovery-codes', 'aria-label': 'Recovery codes' }, r.recovery_codes.map((c) => el('li', {}, el('code', { text: c })))),
        ),
      );
    } catch (e) {
      show(status, notice(e.message));
    }
  });
  return form;
}

start().catch((e) => show(root, notice(`Could not start: ${e.message}`)));
