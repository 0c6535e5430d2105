// The chat client at `/`: sign-in, orgs and conversations (group and direct), live messages
// over the gateway, unread counts kept with read markers, the sessions page, two-factor
// settings and the account page (security events, data export, erasure). Routes live in the
// fragment: `#/c/<id>`, `#/sessions`, `#/security`, `#/account`, `#/inbox` (the support inbox of
// the website widget's conversations), and the OAuth consent page `#/oauth/consent?request=<id>`
// (MCP-2).
//
// This module starts the app: sign-in and sign-out, the gateway, loading orgs and
// conversations, and routing to the views under `client/` (each says what it owns).

import { api, currentSession, signOut } from './api.js';
import { Gateway } from './gateway.js';
import { el, notice, show } from './dom.js';
import { bootstrapView, resetPasswordView, signInView } from './signin.js';
import { conversationView } from './client/conversation.js';
import { welcomeView } from './client/home.js';
import { inboxView } from './client/inbox.js';
import { dispatch } from './client/live.js';
import { upsertMessage } from './client/messages.js';
import { applyReady, markRead } from './client/reads.js';
import { sessionsView } from './client/sessions.js';
import { layout, loadMembers, renderSidebar } from './client/sidebar.js';
import { app, displayName, route, state, ui } from './client/state.js';
import { securityView } from './client/two-factor.js';

const root = document.getElementById('app');
const nav = document.getElementById('nav');

async function start() {
  const boot = location.hash.match(/^#bootstrap=(.+)$/);
  if (boot) {
    bootstrapView(root, decodeURIComponent(boot[1]), signedIn);
    return;
  }
  const reset = location.hash.match(/^#reset-password=(.+)$/);
  if (reset) {
    resetPasswordView(root, decodeURIComponent(reset[1]), signedOut);
    return;
  }
  const session = await currentSession();
  if (session) signedIn(session.user);
  else signedOut();
}

/** Shows sign-in; `reason` above it (an error unless `kind` says `info`). */
function signedOut(reason, kind = 'error') {
  state.gateway?.stop();
  state.gateway = null;
  state.me = null;
  show(nav);
  signInView(root, signedIn).then(() => {
    if (reason) root.prepend(notice(reason, kind));
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
  layout(root);
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
  await reload({ first: true });
}

async function doSignOut() {
  try {
    await signOut();
  } finally {
    signedOut();
  }
}

/**
 * Loads my orgs and conversations again, then refreshes the screen on show — unless it is one of
 * my own pages (account, sessions, security), which show none of that: a late READY must not
 * wipe what is typed or shown there. `first`: the screen is not drawn yet.
 */
async function reload({ first = false } = {}) {
  if (!state.me) return;
  let orgs, convs, available;
  // Lists fetched while this client created, joined or left a conversation (or the gateway told
  // it of one) would undo that change: fetch them again, a few times at most.
  for (let attempt = 0; ; attempt += 1) {
    const version = state.listVersion;
    [orgs, convs, available] = await Promise.all([
      api('GET', '/orgs'),
      api('GET', '/conversations?limit=100'),
      api('GET', '/conversations/available?limit=100'),
    ]);
    if (state.listVersion === version || attempt === 3) break;
  }
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
  } else if (first || !OWN_PAGES.has(r.view)) {
    await renderRoute();
  }
}

/** Views of the account itself, which do not show orgs or conversations. */
const OWN_PAGES = new Set(['sessions', 'security', 'account', 'consent']);

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
  // Loaded when opened (as the consent page and the QR encoder), off the first page's budget.
  if (r.view === 'account') return import('./client/account.js').then((m) => m.accountView());
  // The OAuth consent page is rare: loaded only when needed, off the first page's weight.
  if (r.view === 'consent') return import('./client/consent.js').then((m) => m.consentView(r.id));
  if (r.view === 'conversation') return conversationView(r.id);
  if (r.view === 'inbox') return inboxView();
  return welcomeView();
}

app.reload = reload;
app.signedOut = signedOut;
app.showRoute = renderRoute;

start().catch((e) => show(root, notice(`Could not start: ${e.message}`)));
