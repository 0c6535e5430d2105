// What the browser tests of the embeddable support widget and the support inbox (WEB-4, WEB-3)
// share — widget.test.mjs and widget-security.test.mjs each import it, so each file gets its own
// server, browser and sites: host pages served from an allowed origin (http://127.0.0.1:<site>)
// and from another one (http://localhost:<site>, a different origin), each with a strict CSP (no
// inline script or style: the policy the README documents); the widget loaded from the server
// through a proxy a test can cut, so a dropped connection is a real one; AI answers from a fake
// OpenAI-compatible provider on 127.0.0.1 (as in agents.test.mjs).
//
// The widget renders in a CLOSED shadow root, which Playwright's locators (page scripts) cannot
// enter — that is the point. The tests look inside through the DevTools protocol instead
// (`Probe`: DOM with closed roots pierced, the accessibility tree for role + name), which no
// page script has, and click and type like a person (mouse at the element, keyboard).

import { after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import net from 'node:net';
import { completionStream, setup, waitFor } from './harness.mjs';

// ---- the fake model provider ----------------------------------------------------------------

const PIECES = ['Hello,', ' I am Sage.', ' Let me', ' look into', ' your order', ' right away.'];
export const ANSWER = PIECES.join('');
/** An answer full of things that must stay text: markup, a script, `javascript:` links. */
export const HOSTILE = [
  'Try <script>window.pwned = "agent-script"</script>',
  ' <img src=x onerror="window.pwned = \'agent-img\'">',
  ' <a href="javascript:window.pwned=\'agent-a\'">click</a>',
  ' javascript:window.pwned="agent-js"',
  ' [docs](javascript:window.pwned="agent-md")',
  ' <b>bold</b> and https://docs.example.test/help?x=1.',
];

const provider = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    const last = body.messages?.at(-1)?.content ?? '';
    completionStream(res).finish(/markup/.test(last) ? HOSTILE : PIECES, { prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 });
  });
});
await new Promise((ok) => provider.listen(0, '127.0.0.1', ok));
const providerPort = provider.address().port;
after(() => new Promise((ok) => provider.close(ok)));

export const h = setup({ env: { CONCLAVE_AGENT_ALLOW_CIDRS: '127.0.0.1/32', CONCLAVE_AGENT_ALLOW_PORTS: String(providerPort) } });

// ---- a proxy in front of the server that can drop every connection -------------------------

export const proxy = {
  down: false,
  sockets: new Set(),
  /** Drops every open connection and refuses new ones until `restore()`. */
  cut() {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  },
  restore() {
    this.down = false;
  },
};
const proxyServer = net.createServer((client) => {
  if (proxy.down) {
    client.destroy();
    return;
  }
  const upstream = net.connect(h.server.port, '127.0.0.1');
  for (const s of [client, upstream]) {
    proxy.sockets.add(s);
    s.on('close', () => proxy.sockets.delete(s));
    s.on('error', () => {
      client.destroy();
      upstream.destroy();
    });
  }
  client.pipe(upstream);
  upstream.pipe(client);
});
await new Promise((ok) => proxyServer.listen(0, '127.0.0.1', ok));
export const CHAT = `http://127.0.0.1:${proxyServer.address().port}`;
after(() => new Promise((ok) => proxyServer.close(ok)));

// ---- the host sites ---------------------------------------------------------------------------

/** What the host site served: `{url, origin}` each. */
const served = [];
const site = createServer((req, res) => {
  const url = new URL(req.url, 'http://site');
  served.push({ url: req.url });
  if (url.pathname === '/config.js') {
    // The host's configuration, set before the widget loads (an external script: the page's CSP
    // allows no inline one).
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(`window.ConclaveWidget = ${url.searchParams.get('c')};`);
    return;
  }
  if (url.pathname === '/hostile.css') {
    res.writeHead(200, { 'Content-Type': 'text/css' });
    res.end('conclave-widget { display: none !important; } button { background: rgb(255, 0, 0) !important; color: rgb(255, 0, 0) !important; font-size: 40px !important; } * { visibility: hidden !important; }');
    return;
  }
  if (url.pathname !== '/page') {
    res.writeHead(404);
    res.end();
    return;
  }
  const key = url.searchParams.get('key');
  const config = url.searchParams.get('config');
  const hostile = url.searchParams.has('hostile');
  // The host-page CSP the README documents: the Conclave origin in script-src and connect-src.
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': `default-src 'self'; script-src 'self' ${CHAT}; connect-src 'self' ${CHAT}; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'`,
  });
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme shop</title>
${hostile ? '<link rel="stylesheet" href="/hostile.css">' : ''}
</head><body>
<h1>Acme shop</h1><p>Our products.</p><button type="button">Host button</button>
${config ? `<script src="/config.js?c=${encodeURIComponent(config)}"></script>` : ''}
<script src="${CHAT}/widget.js" data-key="${key}" async></script>
</body></html>`);
});
await new Promise((ok) => site.listen(0, '127.0.0.1', ok));
const sitePort = site.address().port;
/** The origin the widget keys allow, and one they do not (another host name: another origin). */
export const ALLOWED = `http://127.0.0.1:${sitePort}`;
export const OTHER = `http://localhost:${sitePort}`;
after(() => new Promise((ok) => site.close(ok)));

// ---- looking inside the closed shadow root (DevTools protocol) -------------------------------

class Probe {
  constructor(page, cdp) {
    this.page = page;
    this.cdp = cdp;
  }

  static async of(page) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('DOM.enable');
    await cdp.send('Accessibility.enable');
    const probe = new Probe(page, cdp);
    await waitFor(async () => (await probe.host())?.shadowRoots?.length, 'the widget to mount');
    return probe;
  }

  /** The `<conclave-widget>` node, closed shadow root included. */
  async host() {
    const { root } = await this.cdp.send('DOM.getDocument', { depth: -1, pierce: true });
    const find = (n) => (n.nodeName === 'CONCLAVE-WIDGET' ? n : (n.children ?? []).map(find).find(Boolean) ?? null);
    return find(root);
  }

  /** `fn(shadowRoot, ...args)` run in the page on the widget's root; its value comes back. */
  async inRoot(fn, ...args) {
    const host = await this.host();
    assert.equal(host.shadowRoots[0].shadowRootType, 'closed');
    const { object } = await this.cdp.send('DOM.resolveNode', { backendNodeId: host.shadowRoots[0].backendNodeId });
    const r = await this.cdp.send('Runtime.callFunctionOn', {
      objectId: object.objectId,
      functionDeclaration: `function (...args) { return (${fn.toString()})(this, ...args); }`,
      arguments: args.map((value) => ({ value })),
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
    return r.result.value;
  }

  /** The widget's elements with accessibility `role` and name `name` (exact), shown ones only. */
  async find(role, name) {
    const host = await this.host();
    const { nodes } = await this.cdp.send('Accessibility.queryAXTree', { backendNodeId: host.backendNodeId, role, accessibleName: name });
    return nodes.filter((n) => !n.ignored).map((n) => n.backendDOMNodeId);
  }

  async waitRole(role, name, timeoutMs) {
    let id = null;
    await waitFor(async () => ([id] = await this.find(role, name)) && id, `${role} "${name}" in the widget`, timeoutMs);
    return id;
  }

  /** Clicks, with the mouse, the middle of the `role` named `name`. */
  async click(role, name) {
    const id = await this.waitRole(role, name);
    await this.cdp.send('DOM.scrollIntoViewIfNeeded', { backendNodeId: id }).catch(() => {});
    const { model } = await this.cdp.send('DOM.getBoxModel', { backendNodeId: id });
    const q = model.border;
    await this.page.mouse.click((q[0] + q[2] + q[4] + q[6]) / 4, (q[1] + q[3] + q[5] + q[7]) / 4);
  }

  /** Types `text` into the text box named `name` and presses Enter. */
  async say(text, name = 'Message') {
    await this.click('textbox', name);
    await this.page.keyboard.insertText(text);
    await this.page.keyboard.press('Enter');
  }

  /** The accessible name (or text) of what has the keyboard focus inside the widget. */
  focused() {
    return this.inRoot((r) => {
      const a = r.activeElement;
      return a ? a.getAttribute('aria-label') || a.labels?.[0]?.textContent.trim() || a.textContent.trim() : null;
    });
  }

  messages() {
    return this.inRoot((r) =>
      [...r.querySelectorAll('[role="log"] li')].map((li) => ({
        id: li.dataset.messageId,
        role: li.className,
        status: li.dataset.status,
        author: li.querySelector('.author')?.firstChild?.textContent ?? null,
        text: li.querySelector('.body').textContent,
      })),
    );
  }

  async waitMessage(check, what, timeoutMs = 20_000) {
    let found = null;
    await waitFor(async () => (found = (await this.messages()).find(check)), what, timeoutMs, () => '');
    return found;
  }

  text(selector) {
    return this.inRoot((r, s) => r.querySelector(s)?.textContent ?? null, selector);
  }

  /** Records, inside the root (where no page script sees it), each text a streaming answer shows. */
  watchAnswers() {
    return this.inRoot((r) => {
      const seen = [];
      const nodes = new WeakMap();
      let made = 0;
      const logNode = r.querySelector('[role="log"]');
      new MutationObserver(() => {
        for (const li of logNode.querySelectorAll('[data-status="streaming"]')) {
          const body = li.querySelector('.body');
          if (!nodes.has(body)) nodes.set(body, (made += 1));
          seen.push({ id: li.dataset.messageId, text: body.textContent, node: nodes.get(body), busy: li.getAttribute('aria-busy') });
        }
      }).observe(logNode, { childList: true, subtree: true, characterData: true });
      r.__answers = seen;
    });
  }

  answers() {
    return this.inRoot((r) => r.__answers);
  }
}

// ---- the org side ---------------------------------------------------------------------------

/**
 * An org with a support team (`staff` in it), an AI agent (unless `agent: false`) and a widget
 * key for the allowed site, all made over REST: `{owner, staff, org, team, agent, key}`.
 */
export async function supportDesk({ agent = true, identity = 'optional', prechat = false } = {}) {
  const owner = await h.createUser('owner');
  const staff = await h.createUser('dana');
  const org = await h.createOrg(owner, h.name('Acme'), [staff]);
  const team = await h.rest('POST', `/orgs/${org.id}/teams`, owner.token, { name: 'Support' });
  assert.equal(team.status, 201, JSON.stringify(team.body));
  const joined = await h.rest('POST', `/orgs/${org.id}/teams/${team.body.id}/members/${staff.id}`, owner.token);
  assert.ok([200, 201, 204].includes(joined.status), JSON.stringify(joined.body));
  let made = null;
  if (agent) {
    const a = await h.rest('POST', `/orgs/${org.id}/agents`, owner.token, { name: 'Sage', endpoint: `http://127.0.0.1:${providerPort}/v1`, model: 'fake-model' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    made = a.body;
  }
  const key = await h.rest('POST', `/orgs/${org.id}/widget-keys`, owner.token, {
    name: 'Acme help',
    allowed_origins: [ALLOWED],
    team_id: team.body.id,
    agent_id: made?.id ?? null,
    identity,
    prechat_form: prechat,
  });
  assert.equal(key.status, 201, JSON.stringify(key.body));
  assert.match(key.body.key, /^cnv_w_/);
  return { owner, staff, org, team: team.body, agent: made, key: key.body };
}

/**
 * A visitor's browser on the host page (`origin`: the allowed one unless told), with what the
 * page sent to the widget API recorded: the visitor secrets in `X-Widget-Visitor`, and each
 * stream request's `Last-Event-ID`.
 */
export async function visit(key, { origin = ALLOWED, hostile = false, config = null } = {}) {
  const opened = await h.newUser();
  const sent = { secrets: new Set(), streams: [], bodies: [] };
  opened.page.on('request', (r) => {
    if (!r.url().includes('/api/v1/widget/')) return;
    const headers = r.headers();
    if (headers['x-widget-visitor']) sent.secrets.add(headers['x-widget-visitor']);
    if (r.url().includes('/widget/chat/stream')) sent.streams.push({ lastEventId: headers['last-event-id'] ?? null });
  });
  opened.page.on('response', async (r) => {
    if (!r.url().includes('/api/v1/widget/sessions') || r.request().method() !== 'POST') return;
    const body = await r.json().catch(() => null);
    if (body?.visitor_secret) sent.secrets.add(body.visitor_secret);
    sent.bodies.push({ status: r.status(), body });
  });
  const query = new URLSearchParams({ key });
  if (hostile) query.set('hostile', '1');
  if (config) query.set('config', JSON.stringify(config));
  await opened.page.goto(`${origin}/page?${query}`);
  const probe = await Probe.of(opened.page);
  return { ...opened, probe, sent };
}

/** Opens the widget (its launcher, by name) and waits for its message box. */
export async function openChat(probe, launcher = 'Chat with us') {
  await probe.click('button', launcher);
  await probe.waitRole('textbox', 'Message');
}

/** `user` of the support team takes widget conversation `id` over REST: status `open`, and joins it. */
export async function take(user, id) {
  const taken = await h.rest('PATCH', `/conversations/${id}`, user.token, { status: 'open' });
  assert.equal(taken.status, 200, JSON.stringify(taken.body));
  const joined = await h.rest('POST', `/conversations/${id}/join`, user.token);
  assert.ok([200, 201, 204].includes(joined.status), JSON.stringify(joined.body));
}

/** Console and page errors, minus failed loads (a dropped stream reports one). */
export function errorsOf(seen) {
  return seen.errors.filter((e) => !/Failed to load resource|net::ERR_/.test(e));
}

