// The admin console at `/admin`: users (with impersonation and file usage), orgs with their
// members, teams and bots, webhooks and their deliveries, AI agents (with usage and token
// budgets), website widget keys, content guards and their review queue, API keys, the audit log, statistics
// (content guards), capabilities.
// Sections are addressable as `/admin#/<section>`.
//
// This module signs in, draws the section tabs and routes to the sections under `admin/`
// (each says what it owns).

import { currentSession, signOut } from './api.js';
import { el, notice, show } from './dom.js';
import { signInView } from './signin.js';
import { agentsView } from './admin/agents.js';
import { auditView } from './admin/audit.js';
import { capabilitiesView } from './admin/capabilities.js';
import { current } from './admin/console.js';
import { guardsView } from './admin/guards.js';
import { keysView } from './admin/keys.js';
import { orgsView } from './admin/orgs.js';
import { ssoView } from './admin/sso.js';
import { statsView } from './admin/stats.js';
import { usersView } from './admin/users.js';
import { webhooksView } from './admin/webhooks.js';
import { widgetsView } from './admin/widgets.js';

const root = document.getElementById('app');
const nav = document.getElementById('nav');
const SECTIONS = [
  ['users', 'Users'],
  ['orgs', 'Organizations'],
  ['webhooks', 'Webhooks'],
  ['agents', 'Agents'],
  ['widgets', 'Widget keys'],
  ['guards', 'Guards'],
  ['api-keys', 'API keys'],
  ['sso', 'Single sign-on'],
  ['audit', 'Audit log'],
  ['stats', 'Statistics'],
  ['capabilities', 'Capabilities'],
];

async function start() {
  const session = await currentSession();
  if (session) signedIn(session.user);
  else signInView(root, signedIn);
}

function signedIn(user) {
  current.me = user;
  show(
    nav,
    el('span', { class: 'who', text: `Signed in as ${user.display_name || user.username}` }),
    el('a', { href: '/', text: 'Chat' }),
    el('button', {
      type: 'button',
      class: 'link',
      text: 'Sign out',
      onclick: async () => {
        await signOut().catch(() => {});
        location.reload();
      },
    }),
  );
  const tabs = el('nav', { class: 'tabs', 'aria-label': 'Admin sections' }, SECTIONS.map(([id, label]) => el('a', { href: `#/${id}`, 'data-section': id, text: label })));
  current.content = el('section', { class: 'content admin-content', 'aria-live': 'polite' });
  show(root, tabs, current.content);
  render();
}

window.addEventListener('hashchange', () => {
  if (current.me) render();
});

function render() {
  const id = location.hash.replace(/^#\//, '') || 'users';
  for (const a of document.querySelectorAll('.tabs a')) {
    if (a.dataset.section === id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = { users: usersView, orgs: orgsView, webhooks: webhooksView, agents: agentsView, widgets: widgetsView, guards: guardsView, 'api-keys': keysView, audit: auditView, sso: ssoView, stats: statsView, capabilities: capabilitiesView }[id];
  if (!view) {
    show(current.content, notice('No such section.'));
    return;
  }
  view().catch((e) => show(current.content, notice(e.status === 403 ? 'This section needs a server administrator.' : e.message)));
}

start().catch((e) => show(root, notice(`Could not start: ${e.message}`)));
