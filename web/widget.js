// Conclave's embeddable support widget (WEB-4), served by the binary at `/widget.js`:
//
//   <script src="https://chat.example/widget.js" data-key="cnv_w_…" async></script>
//
// The server is the origin of this script's own `src`; the key is its `data-key`. The host page
// may set `window.ConclaveWidget = {identity: {user_id, name?, email?, hash} | {token}}` before
// the tag (a signed visitor: README, "Embedding the support widget"); it is read once, copied,
// and never written back.
//
// What the host page can reach, and what it cannot:
// - The UI lives in a CLOSED shadow root of one `<conclave-widget>` element: `element.shadowRoot`
//   is null and `document.querySelector` finds nothing inside it. Its styles are a constructed
//   stylesheet adopted by that root (no `<style>`, no inline style attribute, nothing global);
//   `:host { all: initial }` stops inherited host styles and the element's own placement is set
//   with `!important` through the CSSOM, which no host stylesheet outranks.
// - The visitor secret the server issues lives in this closure only: no global, no attribute,
//   no web storage (any script of the host origin could read localStorage or sessionStorage).
//   The price: an anonymous visitor who reloads the page starts a new session; a signed
//   (identity-verified) visitor gets their conversations back from the server.
// - `fetch` is taken when this script runs, so a host script that loads later cannot wrap
//   that one. It is no isolation: a host script, earlier or later, can still replace other
//   built-ins the widget calls (`Response.prototype.json`, `JSON.parse`, a setter on
//   `Object.prototype`…) and so read what the widget reads, the visitor secret included. The
//   host page is trusted with its visitors' chat, as with what they type into it; only a
//   Conclave-origin iframe would take that trust away, and the widget is not one.
// - Message text is only ever set with textContent. Links (http, https, mailto only) are
//   buttons first: clicking one shows the real address as a link (new tab, `noopener
//   noreferrer`) next to a Cancel button; nothing is fetched or previewed before that.
// - No eval, no inline script, no HTML parsing of server data.
//
// Live updates: `GET /widget/chat/stream` is Server-Sent Events read with fetch() (an
// EventSource cannot send the widget headers). On a dropped stream it reconnects with back-off
// (1 s doubling to 30 s, sooner when the browser says it is back online) and sends
// `Last-Event-ID`, so the server replays what was missed; messages are kept by id, so a replay
// never shows one twice. Agent answers grow delta by delta; a gap in the deltas makes the widget
// fetch the history again.
(() => {
  'use strict';

  const script = document.currentScript;
  if (!script || !script.src || document.querySelector('conclave-widget')) return;
  const KEY = script.getAttribute('data-key') || '';
  const API = `${new URL(script.src).origin}/api/v1/widget`;
  const netFetch = window.fetch.bind(window);
  const config = readConfig(window.ConclaveWidget);

  /** A plain copy of what the host configured: identity and a pre-filled profile. */
  function readConfig(raw) {
    const pick = (o, keys) => {
      if (!o || typeof o !== 'object') return null;
      const out = {};
      for (const k of keys) if (typeof o[k] === 'string' && o[k] !== '') out[k] = o[k];
      return Object.keys(out).length ? out : null;
    };
    let identity = null;
    try {
      const id = raw && raw.identity;
      identity = id && typeof id.token === 'string' ? { token: id.token } : pick(id, ['user_id', 'name', 'email', 'hash']);
    } catch {
      identity = null;
    }
    return { identity };
  }

  const STYLE = `
:host { all: initial; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
.root { font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
button, input, textarea { font: inherit; color: inherit; }
button { cursor: pointer; border: 0; border-radius: 8px; padding: .45rem .8rem; background: #3b5bdb; color: #fff; }
button:hover { filter: brightness(1.08); }
button:disabled { opacity: .55; cursor: not-allowed; }
button.secondary { background: #e7ebf3; color: #1d2330; }
button.link { background: none; color: #3b5bdb; padding: 0; border-radius: 2px; text-decoration: underline; text-align: left; word-break: break-all; }
:focus-visible { outline: 3px solid #f59f00; outline-offset: 2px; }
.launcher { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%; padding: 0; box-shadow: 0 4px 14px rgba(0,0,0,.25); display: flex; align-items: center; justify-content: center; }
.launcher svg { width: 26px; height: 26px; fill: #fff; }
.launcher .dot { position: absolute; top: 4px; right: 4px; width: 12px; height: 12px; border-radius: 50%; background: #e03131; border: 2px solid #fff; }
.panel { position: fixed; right: 20px; bottom: 88px; width: min(370px, calc(100vw - 24px)); height: min(560px, calc(100vh - 110px)); display: flex; flex-direction: column; background: #fff; border: 1px solid #dde1e8; border-radius: 14px; box-shadow: 0 10px 30px rgba(0,0,0,.22); overflow: hidden; }
.panel[hidden] { display: none; }
header { display: flex; align-items: center; gap: .5rem; padding: .7rem .9rem; background: #3b5bdb; color: #fff; }
header h2 { flex: 1; margin: 0; font-size: 1rem; }
header button { background: rgba(255,255,255,.18); padding: .25rem .55rem; }
.state { padding: .35rem .9rem; font-size: .82rem; color: #5b6475; background: #f6f7f9; border-bottom: 1px solid #dde1e8; }
.state:empty { display: none; }
ol { list-style: none; margin: 0; padding: .7rem; flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: .45rem; }
li { max-width: 85%; padding: .45rem .65rem; border-radius: 12px; background: #f1f3f7; align-self: flex-start; }
li.visitor { align-self: flex-end; background: #3b5bdb; color: #fff; }
li.visitor button.link, li.visitor a { color: #fff; }
li.system { align-self: center; background: none; color: #5b6475; font-size: .82rem; font-style: italic; text-align: center; }
.author { display: block; font-size: .75rem; font-weight: 600; margin-bottom: .1rem; opacity: .8; }
.badge { font-weight: 400; margin-left: .3rem; padding: 0 .3rem; border-radius: 4px; background: #edf2ff; color: #3b5bdb; }
.body { white-space: pre-wrap; overflow-wrap: anywhere; }
.note { display: block; font-size: .75rem; margin-top: .2rem; opacity: .8; font-style: italic; }
.confirm { display: inline-flex; flex-wrap: wrap; gap: .3rem; align-items: baseline; }
.confirm a { color: #3b5bdb; word-break: break-all; }
.actions { padding: .3rem .7rem 0; display: flex; justify-content: flex-end; }
form.compose { display: flex; gap: .4rem; padding: .6rem .7rem .7rem; align-items: flex-end; }
textarea { flex: 1; resize: none; border: 1px solid #c5cad3; border-radius: 8px; padding: .4rem .55rem; min-height: 2.4rem; max-height: 7rem; }
form.prechat { padding: .9rem; display: flex; flex-direction: column; gap: .6rem; }
label { display: flex; flex-direction: column; gap: .2rem; font-size: .88rem; }
input { border: 1px solid #c5cad3; border-radius: 8px; padding: .4rem .55rem; }
.error { margin: .6rem .9rem; padding: .5rem .7rem; border-radius: 8px; background: #fff5f5; color: #c92a2a; border: 1px solid #ffc9c9; font-size: .88rem; }
.error:empty { display: none; }
`;

  // ---- DOM, inside the closed root only ----------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  const host = document.createElement('conclave-widget');
  // Its placement, outranking any host stylesheet (inline `!important`, set through the CSSOM,
  // which a CSP without 'unsafe-inline' allows).
  for (const [k, v] of [
    ['all', 'initial'],
    ['display', 'block'],
    ['position', 'fixed'],
    ['z-index', '2147483647'],
    ['right', '0'],
    ['bottom', '0'],
    ['width', '0'],
    ['height', '0'],
    ['visibility', 'visible'],
    ['opacity', '1'],
    ['transform', 'none'],
    ['filter', 'none'],
  ]) host.style.setProperty(k, v, 'important');
  const root = host.attachShadow({ mode: 'closed' });
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [sheet];
  } catch {
    root.append(el('style', { text: STYLE }));
  }

  const ICON = 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z';
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICON);
  svg.append(path);

  const ui = {};
  ui.launcher = el('button', { type: 'button', class: 'launcher', 'aria-label': 'Chat with us', 'aria-expanded': 'false', 'aria-controls': 'conclave-panel', onclick: () => toggle() }, svg);
  ui.title = el('h2', { id: 'conclave-title', text: 'Chat with us' });
  ui.close = el('button', { type: 'button', 'aria-label': 'Close chat', text: '\u2715', onclick: () => toggle(false) });
  ui.state = el('p', { class: 'state', role: 'status' });
  ui.error = el('p', { class: 'error', role: 'alert' });
  ui.log = el('ol', { role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
  ui.handoff = el('button', { type: 'button', class: 'secondary', text: 'Talk to a person', onclick: () => handoff() });
  ui.actions = el('div', { class: 'actions', hidden: true }, ui.handoff);
  ui.input = el('textarea', { name: 'message', rows: '1', maxlength: '4000', 'aria-label': 'Message', placeholder: 'Write a message\u2026', required: true });
  ui.send = el('button', { type: 'submit', text: 'Send' });
  ui.compose = el('form', { class: 'compose', 'aria-label': 'Send a message', hidden: true }, ui.input, ui.send);
  ui.prechat = el('form', { class: 'prechat', 'aria-label': 'Before we start', hidden: true });
  ui.body = el('div', { class: 'root' }, ui.launcher);
  ui.panel = el(
    'section',
    { id: 'conclave-panel', class: 'panel', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'conclave-title', hidden: true },
    el('header', {}, ui.title, ui.close),
    ui.state,
    ui.error,
    ui.prechat,
    ui.log,
    ui.actions,
    ui.compose,
  );
  ui.body.append(ui.panel);
  root.append(ui.body);

  // ---- state --------------------------------------------------------------------------------

  /** `{id, secret}` once the server made the session. */
  let session = null;
  let settings = null;
  let status = null;
  let conversationId = null;
  /** message id → `{m, li, text, next}` (`next`: the delta index that continues a streaming answer, or null when unknown). */
  const shown = new Map();
  let starting = null;
  let lastEventId = null;
  let stream = null;
  let retryMs = 0;
  let retryTimer = null;
  let refetching = null;
  let fatal = false;

  class WidgetError extends Error {
    constructor(status, body) {
      super((body && body.error && body.error.message) || `request failed (${status})`);
      this.status = status;
      this.code = (body && body.error && body.error.code) || null;
    }
  }

  function headers(extra, anonymous = false) {
    const h = { 'X-Widget-Key': KEY, Accept: 'application/json' };
    if (session && !anonymous) h['X-Widget-Visitor'] = session.secret;
    return Object.assign(h, extra);
  }

  /** A widget API call; `anonymous`: without the visitor secret (a new session). */
  async function call(method, pathAndQuery, body, anonymous = false) {
    const res = await netFetch(`${API}${pathAndQuery}`, {
      method,
      headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }, anonymous),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      mode: 'cors',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new WidgetError(res.status, data);
    return data;
  }

  function showError(e) {
    let text;
    if (!(e instanceof WidgetError)) text = 'The chat cannot be reached from this page.';
    else if (e.status === 429) text = 'Too many messages at once. Please wait a moment.';
    else if (e.status === 401 || e.status === 403) text = e.code && /identity/.test(e.code) ? 'Please sign in on this site to chat with us.' : 'The chat is not available on this page.';
    else text = e.message;
    ui.error.textContent = text;
  }

  // ---- session ------------------------------------------------------------------------------

  function start() {
    if (!starting) {
      starting = createSession().catch((e) => {
        starting = null;
        showError(e);
      });
    }
    return starting;
  }

  /**
   * Makes the visitor session (the server makes its id and secret). With `profile` (the
   * pre-chat form, filled before any message) it is a new session carrying the name and email:
   * the one made to learn the settings had no conversation yet, so nothing is lost.
   */
  async function createSession(profile) {
    const body = {};
    if (config.identity) body.identity = config.identity;
    if (profile) body.profile = profile;
    const s = await call('POST', '/sessions', body, true);
    if (session && s.session_id !== session.id && stream) {
      stream.abort();
      stream = null;
      lastEventId = null;
    }
    // A resumed session is answered without its secret: the one kept here stays.
    session = { id: s.session_id, secret: s.visitor_secret || (session && session.secret) };
    settings = s.settings || {};
    conversationId = s.conversation_id || null;
    status = s.status || null;
    ui.error.textContent = '';
    if (settings.title) ui.title.textContent = settings.title;
    labelLauncher(Boolean(ui.launcher.querySelector('.dot')));
    if (!profile && settings.prechat_form && !config.identity) {
      showPrechat();
    } else {
      ui.prechat.hidden = true;
      ui.compose.hidden = false;
    }
    if (conversationId) await loadHistory();
    renderStatus();
    if (!stream) listen();
    return s;
  }

  function showPrechat() {
    const name = el('input', { name: 'name', autocomplete: 'name', maxlength: '64', required: true });
    const email = el('input', { name: 'email', type: 'email', autocomplete: 'email', maxlength: '254', required: true });
    ui.prechat.replaceChildren(
      el('p', { text: 'Tell us who you are, and we will get back to you here.' }),
      el('label', {}, el('span', { text: 'Your name' }), name),
      el('label', {}, el('span', { text: 'Your email' }), email),
      el('button', { type: 'submit', text: 'Start chat' }),
    );
    ui.prechat.hidden = false;
    ui.compose.hidden = true;
    ui.prechat.onsubmit = async (ev) => {
      ev.preventDefault();
      try {
        await createSession({ name: name.value.trim(), email: email.value.trim() });
        ui.input.focus();
      } catch (e) {
        showError(e);
      }
    };
    if (!ui.panel.hidden) name.focus();
  }

  async function loadHistory() {
    const h = await call('GET', `/chat?session_id=${encodeURIComponent(session.id)}`);
    conversationId = h.conversation_id || conversationId;
    if (h.status) status = h.status;
    for (const m of h.messages || []) upsert(m, { fromHistory: true });
  }

  /** Fetches the history again (a gap in an answer's deltas); one request at a time. */
  function refetch() {
    if (refetching) {
      refetching.again = true;
      return;
    }
    refetching = { again: false };
    (async () => {
      do {
        refetching.again = false;
        await loadHistory().catch(() => {});
      } while (refetching.again);
      refetching = null;
      renderStatus();
    })();
  }

  // ---- messages -----------------------------------------------------------------------------

  const LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"'`]+/gi;

  /** `text` into `node`: text nodes, and each http/https/mailto address as an inert link. */
  function renderText(node, text) {
    node.replaceChildren();
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      const raw = match[0].replace(/[.,;:!?)\]}'"]+$/, '');
      node.append(document.createTextNode(text.slice(last, match.index)));
      node.append(inertLink(raw));
      last = match.index + raw.length;
    }
    node.append(document.createTextNode(text.slice(last)));
  }

  function inertLink(raw) {
    let url;
    try {
      url = new URL(raw);
    } catch {
      return document.createTextNode(raw);
    }
    if (!['http:', 'https:', 'mailto:'].includes(url.protocol)) return document.createTextNode(raw);
    const button = el('button', { type: 'button', class: 'link', 'aria-label': `Link to ${raw} (confirm before opening)`, text: raw });
    button.addEventListener('click', () => {
      const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel', 'aria-label': `Do not open ${raw}` });
      const a = el('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', referrerpolicy: 'no-referrer', text: `Open ${url.href}` });
      const confirm = el('span', { class: 'confirm' }, a, cancel);
      cancel.addEventListener('click', () => {
        confirm.replaceWith(button);
        button.focus();
      });
      a.addEventListener('click', () => setTimeout(() => confirm.isConnected && confirm.replaceWith(button), 0));
      button.replaceWith(confirm);
      a.focus();
    });
    return button;
  }

  const ROLE_NAMES = { visitor: 'You', agent: 'Assistant', staff: 'Support', system: '' };

  function messageNode(m, text) {
    const role = ['visitor', 'agent', 'staff', 'system'].includes(m.role) ? m.role : 'system';
    const li = el('li', { class: role, 'data-message-id': m.id, 'data-status': m.status || 'complete', 'aria-busy': m.status === 'streaming' ? 'true' : null });
    if (role !== 'system') {
      const who = el('span', { class: 'author', text: role === 'visitor' ? 'You' : m.author_name || ROLE_NAMES[role] });
      if (role === 'agent') who.append(el('span', { class: 'badge', text: 'AI' }));
      li.append(who);
    }
    const body = el('span', { class: 'body' });
    if (m.status === 'streaming') body.textContent = text;
    else renderText(body, text);
    li.append(body);
    if (m.status === 'failed') li.append(el('span', { class: 'note', text: 'This answer could not be completed.' }));
    if (m.status === 'stopped') li.append(el('span', { class: 'note', text: 'This answer was stopped.' }));
    return li;
  }

  /** Shows `m`, replacing the message with its id (the same id again: a newer copy). */
  function upsert(m, { fromHistory = false } = {}) {
    if (!m || typeof m.id !== 'string') return;
    const known = shown.get(m.id);
    const content = typeof m.content === 'string' ? m.content : '';
    let text = content;
    let next = null;
    if (m.status === 'streaming') {
      if (known && known.m.status !== 'streaming') return; // an ended answer never streams again
      if (known && known.text.startsWith(content)) {
        text = known.text; // what is shown is ahead of the stored text: it stays
        next = known.next;
      } else {
        next = !fromHistory && content === '' ? 0 : null;
      }
    }
    const li = messageNode(m, text);
    if (known) known.li.replaceWith(li);
    else insertInOrder(li, m);
    shown.set(m.id, { m, li, text, next });
    li.scrollIntoView({ block: 'nearest' });
    if (ui.panel.hidden && !fromHistory && m.role !== 'visitor' && !ui.launcher.querySelector('.dot')) {
      ui.launcher.append(el('span', { class: 'dot', 'aria-hidden': 'true' }));
      labelLauncher(true);
    }
  }

  function insertInOrder(li, m) {
    const at = Date.parse(m.created_at) || Infinity;
    const later = [...shown.values()].filter((s) => (Date.parse(s.m.created_at) || Infinity) > at).sort((a, b) => Date.parse(a.m.created_at) - Date.parse(b.m.created_at))[0];
    ui.log.insertBefore(li, later ? later.li : null);
  }

  function delta(d) {
    const known = d && shown.get(d.message_id);
    if (!known || known.m.status !== 'streaming') {
      if (d && !known) refetch();
      return;
    }
    if (known.next === null || d.index > known.next) {
      known.next = null;
      refetch();
      return;
    }
    if (d.index < known.next) return; // seen already (a replay)
    known.text += String(d.delta || '');
    known.next += 1;
    known.li.querySelector('.body').textContent = known.text;
  }

  /** Takes a deleted message out of the log (the visitor's history no longer has it). */
  function remove(d) {
    const known = d && shown.get(d.message_id);
    if (!known) return;
    known.li.remove();
    shown.delete(d.message_id);
  }

  function renderStatus() {
    const agent = settings && settings.agent_name;
    let text = '';
    if (status === 'bot' && agent) text = `${agent} (an AI assistant) answers first. A person can take over at any time.`;
    else if (status === 'open') text = 'A person from our team will answer here.';
    else if (status === 'resolved') text = 'This conversation is resolved. Write again if you need anything else.';
    else if (!status && agent) text = `${agent} (an AI assistant) answers first.`;
    ui.state.textContent = text;
    // A handoff needs a conversation with the agent: shown from the first message on.
    ui.actions.hidden = !(session && status === 'bot');
    ui.panel.dataset.status = status || 'none';
  }

  // ---- actions ------------------------------------------------------------------------------

  ui.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ui.compose.requestSubmit();
    }
  });

  ui.compose.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const message = ui.input.value.trim();
    if (!message || ui.send.disabled) return;
    ui.send.disabled = true;
    try {
      if (!session) await start();
      if (!session) return;
      const m = await call('POST', '/chat', { session_id: session.id, message });
      ui.input.value = '';
      ui.error.textContent = '';
      upsert(m);
    } catch (e) {
      showError(e);
    } finally {
      ui.send.disabled = false;
    }
  });

  async function handoff() {
    if (!session) return;
    ui.handoff.disabled = true;
    try {
      const r = await call('POST', '/handoff', { session_id: session.id });
      if (r && r.status) status = r.status;
      else status = 'open';
      if (r && r.conversation_id) conversationId = r.conversation_id;
      ui.error.textContent = '';
      renderStatus();
      ui.input.focus();
    } catch (e) {
      showError(e);
    } finally {
      ui.handoff.disabled = false;
    }
  }

  /** The launcher's name: the chat's title, and whether answers came while it was closed. */
  function labelLauncher(unread) {
    const title = (settings && settings.title) || 'Chat with us';
    ui.launcher.setAttribute('aria-label', `${title}${unread ? ' (new messages)' : ''}`);
  }

  /** The first control to type into: the pre-chat form's, the composer, or the close button. */
  function firstField() {
    if (!ui.prechat.hidden) return ui.prechat.querySelector('input');
    if (!ui.compose.hidden) return ui.input;
    return ui.close;
  }

  function toggle(open = ui.panel.hidden) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      ui.launcher.querySelector('.dot')?.remove();
      labelLauncher(false);
      firstField().focus();
      start().then(() => {
        if (!ui.panel.hidden && (root.activeElement === ui.close || !root.activeElement)) firstField().focus();
      });
    } else {
      ui.launcher.focus();
    }
  }

  // Keyboard: Escape closes the panel; Tab and Shift+Tab stay inside it while it is open.
  ui.panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      ev.preventDefault();
      toggle(false);
      return;
    }
    if (ev.key !== 'Tab') return;
    const focusable = [...ui.panel.querySelectorAll('button, a[href], input, textarea')].filter((n) => !n.disabled && !n.closest('[hidden]') && n.getClientRects().length > 0);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    const active = root.activeElement;
    if (ev.shiftKey && (active === first || !ui.panel.contains(active))) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && (active === last || !ui.panel.contains(active))) {
      ev.preventDefault();
      first.focus();
    }
  });

  // ---- the event stream ---------------------------------------------------------------------

  function listen() {
    if (fatal || !session) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    const abort = new AbortController();
    stream = abort;
    read(abort).then(
      () => reconnect(abort),
      () => reconnect(abort),
    );
  }

  function reconnect(abort) {
    if (stream !== abort || fatal) return;
    retryMs = retryMs ? Math.min(30_000, retryMs * 2) : 1000;
    retryTimer = setTimeout(listen, retryMs * (0.75 + Math.random() / 4));
  }

  // Back online: try at once instead of waiting out the back-off.
  window.addEventListener('online', () => {
    if (retryTimer) listen();
  });

  async function read(abort) {
    const extra = lastEventId === null ? {} : { 'Last-Event-ID': lastEventId };
    const res = await netFetch(`${API}/chat/stream?session_id=${encodeURIComponent(session.id)}`, {
      headers: headers(Object.assign({ Accept: 'text/event-stream' }, extra)),
      credentials: 'omit',
      mode: 'cors',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
      signal: abort.signal,
    });
    if (!res.ok || !res.body) {
      if ([401, 403, 404].includes(res.status)) {
        fatal = true;
        showError(new WidgetError(res.status, await res.json().catch(() => null)));
      }
      throw new Error('stream refused');
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = { type: '', data: [], id: null };
    let opened = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (!opened) {
        opened = true;
        retryMs = 0;
      }
      buffer += value;
      for (;;) {
        const at = buffer.search(/[\r\n]/);
        if (at < 0 || (buffer[at] === '\r' && at === buffer.length - 1)) break;
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + (buffer[at] === '\r' && buffer[at + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (event.id !== null) lastEventId = event.id;
          if (event.data.length) dispatch(event.type || 'message', event.data.join('\n'));
          event = { type: '', data: [], id: null };
          continue;
        }
        if (line[0] === ':') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (field === 'event') event.type = v;
        else if (field === 'data') event.data.push(v);
        else if (field === 'id' && !v.includes('\0')) event.id = v;
        else if (field === 'retry' && /^\d+$/.test(v)) retryMs = Math.max(500, Number(v) / 2);
      }
    }
  }

  function dispatch(type, data) {
    let d;
    try {
      d = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'message') upsert(d);
    else if (type === 'delta') delta(d);
    else if (type === 'delete') remove(d);
    else if (type === 'status') {
      if (d.conversation_id) conversationId = d.conversation_id;
      status = d.status || status;
      renderStatus();
    }
  }

  function mount() {
    document.body.append(host);
  }
  if (document.body) mount();
  else document.addEventListener('DOMContentLoaded', mount, { once: true });
})();
