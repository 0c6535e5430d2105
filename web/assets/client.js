// The chat client at `/`: sign-in, orgs and conversations, live messages over the gateway,
// and the sessions page. Routes live in the fragment: `#/c/<id>`, `#/sessions`.

import DOMPurify from './vendor/dompurify/purify.es.mjs';
import { api, currentSession, signOut } from './api.js';
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
  presence: new Map(),
  typing: new Map(),
  gateway: null,
  connection: 'offline',
};

const ui = {};

function displayName(user) {
  return user?.display_name || user?.username || 'unknown';
}

function conversationName(c) {
  return c.name || (c.kind === 'direct' ? 'Direct conversation' : 'Unnamed conversation');
}

function route() {
  const m = location.hash.match(/^#\/c\/([0-9a-f-]{36})$/);
  if (m) return { view: 'conversation', id: m[1] };
  if (location.hash === '#/sessions') return { view: 'sessions' };
  if (location.hash === '#/security') return { view: 'security' };
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
  signInView(root, signedIn);
  if (reason) root.prepend(notice(reason));
}

async function signedIn(user) {
  state.me = user;
  show(
    nav,
    el('span', { class: 'who', text: `Signed in as ${displayName(user)}` }),
    el('span', { id: 'connection', class: 'connection', role: 'status', text: '' }),
    el('a', { href: '#/sessions', text: 'Sessions' }),
    el('a', { href: '#/security', text: 'Two-factor' }),
    user.server_admin ? el('a', { href: '/admin', text: 'Admin console' }) : null,
    el('button', { type: 'button', class: 'link', onclick: doSignOut, text: 'Sign out' }),
  );
  layout();
  state.gateway = new Gateway({
    onDispatch: dispatch,
    onReady: (_d, fresh) => {
      if (fresh) reload();
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
  renderSidebar();
  const r = route();
  if (r.view === 'conversation' && ui.log && ui.renderedId === r.id && state.conversations.has(r.id)) {
    // Already on screen: fetch what may have been missed while the gateway was away.
    const messages = await api('GET', `/conversations/${r.id}/messages?limit=50`);
    for (const m of messages.items.reverse()) upsertMessage(m);
  } else {
    await renderRoute();
  }
}

function renderSidebar() {
  if (!ui.orgSelect) return;
  show(ui.orgSelect, state.orgs.map((o) => el('option', { value: o.id, text: o.name, selected: o.id === state.orgId })));
  ui.orgSelect.disabled = state.orgs.length === 0;
  ui.newConvButton.disabled = !state.orgId;
  const inOrg = (c) => c.org_id === state.orgId;
  const mine = [...state.conversations.values()].filter(inOrg);
  show(
    ui.convList,
    mine.length === 0
      ? el('li', { class: 'empty', text: state.orgId ? 'No conversations yet.' : 'Create or join an organization first.' })
      : mine.map((c) =>
          el('li', {}, el('a', { href: `#/c/${c.id}`, 'aria-current': c.id === state.openId ? 'page' : null, text: conversationName(c) })),
        ),
  );
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
  if (r.view === 'conversation') return conversationView(r.id);
  show(ui.main, el('div', { class: 'welcome' }, el('h2', { text: 'Welcome' }), el('p', { text: 'Pick a conversation on the left, or create one.' })));
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
      ui.sendStatus.replaceChildren();
    } catch (e) {
      show(ui.sendStatus, notice(e.message));
    }
  });
  show(
    ui.main,
    el('div', { class: 'conv-head' }, el('h2', { text: conversationName(c) }), el('span', { class: 'muted', text: c.kind === 'group' ? 'Group' : 'Direct' })),
    (ui.older = el('div', { class: 'older' })),
    el('div', { class: 'conv-body' }, ui.log, el('aside', { class: 'people-panel', 'aria-labelledby': 'people-title' }, el('h3', { id: 'people-title', text: 'People' }), ui.people)),
    ui.typing,
    composer,
    ui.sendStatus,
  );
  const [messages, participants] = await Promise.all([
    api('GET', `/conversations/${id}/messages?limit=50`),
    api('GET', `/conversations/${id}/participants?limit=100`),
  ]);
  if (state.openId !== id) return;
  for (const m of messages.items.reverse()) upsertMessage(m);
  olderButton(id, messages.next);
  state.participants = new Map(participants.items.map((p) => [p.user.id, p]));
  renderPeople();
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
  const mine = state.participants.get(state.me.id);
  const canRemove = mine && ['owner', 'admin'].includes(mine.role);
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
        canRemove && p.user.id !== state.me.id
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
    case 'MESSAGE_CREATE':
    case 'MESSAGE_UPDATE':
    case 'MESSAGE_DELETE':
      state.typing.delete(d.author?.id);
      upsertMessage(d);
      renderTyping();
      break;
    case 'CONVERSATION_CREATE':
    case 'CONVERSATION_UPDATE':
      state.conversations.set(d.id, d);
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
    default:
      break;
  }
}

document.addEventListener('visibilitychange', () => {
  state.gateway?.setPresence(document.hidden ? 'idle' : 'online');
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
