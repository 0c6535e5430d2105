// Browser tests of the embeddable support widget and the support inbox (WEB-4, WEB-3):
// host pages served by this file from an allowed origin (http://127.0.0.1:<site>) and from
// another one (http://localhost:<site>, a different origin), each with a strict CSP (no inline
// script or style: the policy the README documents); the widget loaded from the server through
// a proxy this file can cut, so a dropped connection is a real one; AI answers from a fake
// OpenAI-compatible provider on 127.0.0.1 (as in agents.test.mjs).
//
// The widget renders in a CLOSED shadow root, which Playwright's locators (page scripts) cannot
// enter — that is the point. The tests look inside through the DevTools protocol instead
// (`Probe`: DOM with closed roots pierced, the accessibility tree for role + name), which no
// page script has, and click and type like a person (mouse at the element, keyboard).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { SHOTS, completionStream, log, setup, waitFor } from './harness.mjs';

// ---- the fake model provider ----------------------------------------------------------------

const PIECES = ['Hello,', ' I am Sage.', ' Let me', ' look into', ' your order', ' right away.'];
const ANSWER = PIECES.join('');
/** An answer full of things that must stay text: markup, a script, `javascript:` links. */
const HOSTILE = [
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

const h = setup({ env: { CONCLAVE_AGENT_ALLOW_CIDRS: '127.0.0.1/32', CONCLAVE_AGENT_ALLOW_PORTS: String(providerPort) } });

// ---- a proxy in front of the server that can drop every connection -------------------------

const proxy = {
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
const CHAT = `http://127.0.0.1:${proxyServer.address().port}`;
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
const ALLOWED = `http://127.0.0.1:${sitePort}`;
const OTHER = `http://localhost:${sitePort}`;
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
async function supportDesk({ agent = true, identity = 'optional', prechat = false } = {}) {
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
async function visit(key, { origin = ALLOWED, hostile = false, config = null } = {}) {
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
async function openChat(probe, launcher = 'Chat with us') {
  await probe.click('button', launcher);
  await probe.waitRole('textbox', 'Message');
}

/** `user` of the support team takes widget conversation `id` over REST: status `open`, and joins it. */
async function take(user, id) {
  const taken = await h.rest('PATCH', `/conversations/${id}`, user.token, { status: 'open' });
  assert.equal(taken.status, 200, JSON.stringify(taken.body));
  const joined = await h.rest('POST', `/conversations/${id}/join`, user.token);
  assert.ok([200, 201, 204].includes(joined.status), JSON.stringify(joined.body));
}

/** Console and page errors, minus failed loads (a dropped stream reports one). */
function errorsOf(seen) {
  return seen.errors.filter((e) => !/Failed to load resource|net::ERR_/.test(e));
}

// ---- the tests --------------------------------------------------------------------------------

test('widget.js is one cacheable script any site may load', async () => {
  const res = await fetch(`${h.base}/widget.js`, { headers: { Origin: OTHER } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
  assert.equal(res.headers.get('cross-origin-resource-policy'), 'cross-origin');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const etag = res.headers.get('etag');
  const body = await res.text();
  assert.match(body, /attachShadow\(\{ mode: 'closed' \}\)/);
  assert.doesNotMatch(body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  const again = await fetch(`${h.base}/widget.js`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
});

test('an allowed site chats end to end: a streamed AI answer, a handoff, a person answering from the inbox', async () => {
  const desk = await supportDesk();
  const visitor = await visit(desk.key.key);
  const { probe } = visitor;
  await openChat(probe);
  await waitFor(async () => (await probe.find('button', 'Acme help')).length === 1, 'the launcher to take the title');
  await probe.watchAnswers();
  await probe.say('Hello, my order is late');
  const mine = await probe.waitMessage((m) => m.role === 'visitor', 'my message');
  assert.equal(mine.text, 'Hello, my order is late');
  assert.equal(mine.author, 'You');
  const answer = await probe.waitMessage((m) => m.role === 'agent' && m.status === 'complete', 'the agent’s answer to end complete');
  assert.equal(answer.text, ANSWER);
  assert.equal(answer.author, 'Sage');
  // It grew delta by delta in one element, each text continuing the one before.
  const texts = (await probe.answers()).filter((t) => t.id === answer.id);
  const lengths = [...new Set(texts.map((t) => t.text.length))].filter((n) => n > 0 && n < ANSWER.length);
  assert.ok(lengths.length >= 2, `at least two intermediate lengths: ${JSON.stringify(lengths)}`);
  for (let i = 1; i < texts.length; i += 1) assert.ok(texts[i].text.startsWith(texts[i - 1].text), `${texts[i].text} continues ${texts[i - 1].text}`);
  assert.equal(new Set(texts.map((t) => t.node)).size, 1, 'the answer grew in one element');
  assert.ok(texts.every((t) => t.busy === 'true'), 'a growing answer is aria-busy');
  assert.match(await probe.text('[role="status"]'), /Sage \(an AI assistant\)/);

  // The visitor asks for a person; the support person finds it in the inbox and takes it.
  await probe.click('button', 'Talk to a person');
  await waitFor(async () => /A person from our team/.test(await probe.text('[role="status"]')), 'the widget to say a person answers');
  assert.equal((await probe.find('button', 'Talk to a person')).length, 0, 'no handoff button once handed off');
  const staff = await h.browse(desk.staff);
  await staff.page.goto(`${h.base}/#/inbox`);
  await staff.page.getByRole('heading', { name: `Support inbox of ${desk.org.name}` }).waitFor();
  await staff.page.getByRole('button', { name: 'Open', exact: true }).click();
  const row = staff.page.locator('.inbox-list li[data-status="open"]');
  await row.waitFor();
  await staff.page.screenshot({ path: join(SHOTS, 'inbox.png') });
  await row.getByRole('button', { name: /^Take the conversation with / }).click();
  await log(staff.page).waitFor();
  await log(staff.page).getByText('Hello, my order is late').waitFor();
  await log(staff.page).getByText(ANSWER).waitFor();

  // The person answers from the ordinary conversation view; the visitor sees it live.
  await staff.page.getByLabel('Message', { exact: true }).fill('Hi, Dana here. It ships today.');
  await staff.page.getByLabel('Message', { exact: true }).press('Enter');
  const reply = await probe.waitMessage((m) => m.role === 'staff', 'the person’s reply');
  assert.equal(reply.text, 'Hi, Dana here. It ships today.');
  assert.equal(reply.author, desk.staff.username);
  await probe.say('Great, thanks!');
  await log(staff.page).getByText('Great, thanks!').waitFor();
  await visitor.page.screenshot({ path: join(SHOTS, 'widget.png') });

  // Resolved by the person: the visitor is told.
  await staff.page.getByRole('group', { name: 'Support conversation' }).getByRole('button', { name: /^Resolve the conversation with / }).click();
  await waitFor(async () => /resolved/.test(await probe.text('[role="status"]')), 'the widget to say it is resolved');
  // Every message shown once.
  const ids = (await probe.messages()).map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `no message twice: ${ids}`);
  assert.deepEqual(errorsOf(visitor.seen), []);
  assert.deepEqual(errorsOf(staff.seen), []);
});

// The server tells everyone who works the inbox with `INBOX_UPDATE` (the team's members and the
// org's admins, who are not participants until they take a conversation).
test('the support inbox is live: a new conversation and a handoff appear without a reload', async () => {
  const desk = await supportDesk();
  const staff = await h.browse(desk.staff);
  await staff.page.goto(`${h.base}/#/inbox`);
  await staff.page.getByRole('button', { name: 'With the AI agent' }).click();
  await staff.page.getByText('No conversation is with the AI agent.').waitFor();
  const visitor = await visit(desk.key.key);
  await openChat(visitor.probe);
  await visitor.probe.say('Is my parcel lost?');
  await staff.page.locator('.inbox-list li[data-status="bot"]').waitFor({ timeout: 15_000 });
  await staff.page.getByRole('button', { name: 'Open', exact: true }).click();
  await staff.page.getByText('No open conversations.').waitFor();
  await visitor.probe.click('button', 'Talk to a person');
  await staff.page.locator('.inbox-list li[data-status="open"]').waitFor({ timeout: 15_000 });
  // Resolved from the inbox: the visitor is told, live too.
  await staff.page.getByRole('button', { name: /^Resolve the conversation with / }).click();
  await waitFor(async () => /resolved/.test(await visitor.probe.text('[role="status"]')), 'the widget to say it is resolved');
});

test('a page on an origin the key does not allow is refused and reads nothing', async () => {
  const desk = await supportDesk({ agent: false });
  const visitor = await visit(desk.key.key, { origin: OTHER });
  await visitor.probe.click('button', 'Chat with us');
  await waitFor(async () => (await visitor.probe.text('[role="alert"]'))?.length > 0, 'the widget to show an error');
  assert.match(await visitor.probe.text('[role="alert"]'), /not available|cannot be reached/);
  assert.equal(visitor.sent.secrets.size, 0, 'no visitor secret reached this page');
  assert.ok(visitor.sent.bodies.every((b) => b.status >= 400 || !b.body?.visitor_secret));
  // The page's own scripts cannot read a widget answer either (no CORS for this origin).
  const read = await visitor.page.evaluate(async ([base, key]) => {
    try {
      const r = await fetch(`${base}/api/v1/widget/sessions`, { method: 'POST', headers: { 'X-Widget-Key': key, 'Content-Type': 'application/json' }, body: '{}' });
      return `read ${r.status}`;
    } catch (e) {
      return `refused: ${e.name}`;
    }
  }, [CHAT, desk.key.key]);
  assert.equal(read, 'refused: TypeError');
  assert.equal((await visitor.probe.messages()).length, 0);
});

test('a hostile host page cannot restyle the widget, reach its DOM or find the visitor secret', async () => {
  const desk = await supportDesk({ agent: false });
  const visitor = await visit(desk.key.key, { hostile: true });
  const { probe, page } = visitor;
  // The host's stylesheet hides and recolours everything it can reach: not the widget.
  await openChat(probe);
  const look = await probe.inRoot((r) => {
    const b = r.querySelector('button[type="submit"]');
    const s = getComputedStyle(b);
    const box = b.getBoundingClientRect();
    return { bg: s.backgroundColor, color: s.color, size: s.fontSize, visible: s.visibility, width: box.width };
  });
  assert.notEqual(look.bg, 'rgb(255, 0, 0)');
  assert.notEqual(look.color, 'rgb(255, 0, 0)');
  assert.notEqual(look.size, '40px');
  assert.equal(look.visible, 'visible');
  assert.ok(look.width > 0, 'the Send button is laid out');
  await probe.say('My secret order number is 4242');
  await probe.waitMessage((m) => m.text === 'My secret order number is 4242', 'my message');
  assert.equal(visitor.sent.secrets.size, 1, 'one visitor secret in use');
  const [secret] = visitor.sent.secrets;

  // A script of the host page, after the widget started: every place it could look.
  const found = await page.evaluate((secret) => {
    const host = document.querySelector('conclave-widget');
    const strings = [];
    const visit = (v, depth) => {
      if (depth > 3 || v === null || v === undefined) return;
      if (typeof v === 'string') strings.push(v);
      else if (typeof v === 'object' && !(v instanceof Node) && v !== window) {
        for (const k of Object.keys(v).slice(0, 200)) {
          try {
            visit(v[k], depth + 1);
          } catch {
            // a getter that throws
          }
        }
      }
    };
    for (const name of Object.getOwnPropertyNames(window)) {
      try {
        visit(window[name], 0);
      } catch {
        // a getter that throws
      }
    }
    const storage = [localStorage, sessionStorage].flatMap((s) => Object.keys(s).map((k) => `${k}=${s.getItem(k)}`));
    const attributes = [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.value));
    return {
      shadowRoot: host.shadowRoot,
      shadowViaAPI: typeof host.openOrClosedShadowRoot,
      children: host.children.length,
      inDocument: document.querySelectorAll('[role="log"], textarea, form, li').length,
      text: document.body.innerText.includes('4242') || document.documentElement.outerHTML.includes('4242'),
      secretInGlobals: strings.some((s) => s.includes(secret)),
      secretInStorage: storage.some((s) => s.includes(secret)) || document.cookie.includes(secret),
      secretInAttributes: attributes.some((s) => s.includes(secret)),
      secretInHtml: document.documentElement.outerHTML.includes(secret),
      storageKeys: storage.length,
    };
  }, secret);
  assert.deepEqual(found, {
    shadowRoot: null,
    shadowViaAPI: 'undefined',
    children: 0,
    inDocument: 0,
    text: false,
    secretInGlobals: false,
    secretInStorage: false,
    secretInAttributes: false,
    secretInHtml: false,
    storageKeys: 0,
  });

  // A host script that wraps fetch after the widget loaded sees none of its calls.
  await page.evaluate(() => {
    const real = window.fetch;
    window.seenByHost = [];
    window.fetch = (...args) => {
      window.seenByHost.push(String(args[0]));
      return real(...args);
    };
  });
  await probe.say('Another one');
  await probe.waitMessage((m) => m.text === 'Another one', 'the second message');
  assert.deepEqual(await page.evaluate(() => window.seenByHost), []);
  assert.deepEqual(errorsOf(visitor.seen), []);
});

test('script, javascript: links and HTML in agent and human replies execute nothing; links are inert until clicked', async () => {
  const desk = await supportDesk();
  const visitor = await visit(desk.key.key);
  const { probe, page } = visitor;
  const fetched = [];
  page.on('request', (r) => {
    if (r.url().includes('example.test')) fetched.push(r.url());
  });
  await openChat(probe);
  await probe.say('Show me some markup please');
  const answer = await probe.waitMessage((m) => m.role === 'agent' && m.status === 'complete', 'the agent’s answer');
  assert.equal(answer.text, HOSTILE.join(''));

  // A person answers with the same kinds of payload (text, as the client sends it).
  const convs = await h.rest('GET', `/orgs/${desk.org.id}/inbox?status=bot`, desk.staff.token);
  assert.equal(convs.status, 200, JSON.stringify(convs.body));
  const conv = { id: convs.body.items[0].conversation_id };
  await take(desk.staff, conv.id);
  const human = '<script>window.pwned="human-script"</script><img src=x onerror="window.pwned=\'human-img\'"> javascript:window.pwned="human-js" <iframe src="javascript:window.pwned=1"></iframe> mailto:help@example.test';
  await h.send(desk.staff, conv.id, human);
  const shown = await probe.waitMessage((m) => m.role === 'staff', 'the person’s reply');
  assert.equal(shown.text, human);

  assert.equal(await page.evaluate(() => window.pwned), undefined);
  const inside = await probe.inRoot((r) => ({
    elements: r.querySelectorAll('[role="log"] script, [role="log"] img, [role="log"] iframe, [role="log"] b, [role="log"] a').length,
    links: [...r.querySelectorAll('[role="log"] button')].map((b) => [b.textContent, b.getAttribute('aria-label')]),
  }));
  assert.equal(inside.elements, 0, 'no element made from the text; no link before a click');
  // Only the http(s) and mailto addresses became (inert) link buttons; `javascript:` stayed text.
  assert.deepEqual(inside.links, [
    ['https://docs.example.test/help?x=1', 'Link to https://docs.example.test/help?x=1 (confirm before opening)'],
    ['mailto:help@example.test', 'Link to mailto:help@example.test (confirm before opening)'],
  ]);
  // Clicked: the real link appears (new tab, no opener, no referrer), nothing was fetched.
  await probe.click('button', 'Link to https://docs.example.test/help?x=1 (confirm before opening)');
  const link = await probe.inRoot((r) => {
    const a = r.querySelector('[role="log"] a');
    return { href: a.getAttribute('href'), target: a.target, rel: a.rel, text: a.textContent, focused: r.activeElement === a };
  });
  assert.deepEqual(link, { href: 'https://docs.example.test/help?x=1', target: '_blank', rel: 'noopener noreferrer', text: 'Open https://docs.example.test/help?x=1', focused: true });
  await probe.click('button', 'Do not open https://docs.example.test/help?x=1');
  assert.equal(await probe.inRoot((r) => r.querySelectorAll('[role="log"] a').length), 0);
  assert.deepEqual(fetched, [], 'nothing fetched the links');
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.deepEqual(visitor.seen.dialogs, []);
});

test('a dropped stream reconnects with Last-Event-ID and shows what was sent meanwhile exactly once', async () => {
  const desk = await supportDesk({ agent: false });
  const visitor = await visit(desk.key.key);
  const { probe } = visitor;
  await openChat(probe);
  await probe.say('Is anyone there?');
  await probe.waitMessage((m) => m.role === 'visitor', 'my message');
  const convs = await h.rest('GET', `/orgs/${desk.org.id}/inbox?status=open`, desk.staff.token);
  assert.equal(convs.status, 200, JSON.stringify(convs.body));
  const conv = { id: convs.body.items[0].conversation_id };
  await take(desk.staff, conv.id);
  await h.send(desk.staff, conv.id, 'Yes, I am here.');
  await probe.waitMessage((m) => m.text === 'Yes, I am here.', 'the first reply, live');
  const streamsBefore = visitor.sent.streams.length;

  // The network drops every connection and stays down a while; a reply is sent meanwhile.
  proxy.cut();
  await new Promise((r) => setTimeout(r, 600));
  const missed = await h.send(desk.staff, conv.id, 'Sent while you were offline.');
  await new Promise((r) => setTimeout(r, 600));
  proxy.restore();
  const shown = await probe.waitMessage((m) => m.text === 'Sent while you were offline.', 'the missed reply after the reconnect', 40_000);
  assert.equal(shown.id, missed.id);
  const reconnects = visitor.sent.streams.slice(streamsBefore);
  assert.ok(reconnects.length >= 1, 'the widget reconnected');
  assert.ok(reconnects.at(-1).lastEventId, `the reconnect sent Last-Event-ID: ${JSON.stringify(reconnects)}`);
  // Give a duplicate the time to show up, then count.
  await h.send(desk.staff, conv.id, 'And one more.');
  await probe.waitMessage((m) => m.text === 'And one more.', 'the next reply');
  const texts = (await probe.messages()).map((m) => m.text);
  assert.deepEqual(texts, ['Is anyone there?', 'Yes, I am here.', 'Sent while you were offline.', 'And one more.']);
});

test('the widget works from the keyboard: launcher, focus kept inside, Escape', async () => {
  const desk = await supportDesk();
  const visitor = await visit(desk.key.key);
  const { probe, page } = visitor;
  // Tab from the page's own button reaches the launcher.
  await page.getByRole('button', { name: 'Host button' }).focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.localName), 'conclave-widget');
  assert.equal(await probe.focused(), 'Chat with us');
  await page.keyboard.press('Enter');
  await probe.waitRole('dialog', 'Acme help');
  await waitFor(async () => (await probe.focused()) === 'Message', 'the message box to take the focus');
  assert.equal(await probe.inRoot((r) => r.querySelector('button[aria-controls]').getAttribute('aria-expanded')), 'true');
  await page.keyboard.insertText('Typed from the keyboard');
  await page.keyboard.press('Enter');
  await probe.waitMessage((m) => m.text === 'Typed from the keyboard', 'the message sent with Enter');
  await probe.waitMessage((m) => m.role === 'agent' && m.status === 'complete', 'the answer');
  // Tab and Shift+Tab cycle inside the dialog: the page behind never gets the focus.
  const seen = new Set();
  for (let i = 0; i < 8; i += 1) {
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.localName), 'conclave-widget');
    seen.add(await probe.focused());
  }
  for (const name of ['Close chat', 'Talk to a person', 'Message', 'Send']) assert.ok(seen.has(name), `${name} reached with Tab: ${[...seen]}`);
  await probe.click('textbox', 'Message');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.localName), 'conclave-widget');
  // Escape closes it and gives the focus back to the launcher.
  await page.keyboard.press('Escape');
  await waitFor(async () => (await probe.find('dialog', 'Acme help')).length === 0, 'the dialog to close');
  assert.equal(await probe.focused(), 'Acme help');
  assert.equal(await probe.inRoot((r) => r.querySelector('button[aria-controls]').getAttribute('aria-expanded')), 'false');
  assert.deepEqual(errorsOf(visitor.seen), []);
});

test('the pre-chat form asks an anonymous visitor for a name and email first', async () => {
  const desk = await supportDesk({ agent: false, prechat: true });
  const visitor = await visit(desk.key.key);
  const { probe } = visitor;
  await probe.click('button', 'Chat with us');
  await probe.waitRole('form', 'Before we start');
  assert.equal((await probe.find('textbox', 'Message')).length, 0, 'no message box before the form');
  await waitFor(async () => (await probe.focused()) === 'Your name', 'the name field to take the focus');
  await probe.click('textbox', 'Your name');
  await visitor.page.keyboard.insertText('Vera Visitor');
  await probe.click('textbox', 'Your email');
  await visitor.page.keyboard.insertText('vera@example.test');
  await probe.click('button', 'Start chat');
  await probe.say('Hello from Vera');
  await probe.waitMessage((m) => m.text === 'Hello from Vera', 'my message');
  const listed = await h.rest('GET', `/orgs/${desk.org.id}/inbox?status=open`, desk.staff.token);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  assert.match(JSON.stringify(listed.body.items[0]), /Vera Visitor/);
});

test('with identity required, an unsigned visitor cannot chat and a signed one can (hash or token)', async () => {
  const desk = await supportDesk({ agent: false, identity: 'required' });
  const unsigned = await visit(desk.key.key);
  await unsigned.probe.click('button', 'Chat with us');
  await waitFor(async () => /sign in/i.test((await unsigned.probe.text('[role="alert"]')) ?? ''), 'the widget to ask for a signed-in visitor');
  assert.equal((await unsigned.probe.messages()).length, 0);

  const userId = 'customer-77';
  const hash = createHmac('sha256', desk.key.identity_secret).update(userId).digest('hex');
  const signed = await visit(desk.key.key, { config: { identity: { user_id: userId, name: 'Carla Customer', hash } } });
  await openChat(signed.probe);
  await signed.probe.say('Signed hello');
  await signed.probe.waitMessage((m) => m.text === 'Signed hello', 'my message');
  // The configuration object stays the host's: the widget adds nothing to it.
  assert.deepEqual(await signed.page.evaluate(() => Object.keys(window.ConclaveWidget)), ['identity']);

  // Another browser, signed with a short-lived JWT (HS256 with the identity secret) instead of
  // a hash: the same visitor, with their history.
  const jwt = (claims, secret) => {
    const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
    return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
  };
  const now = Math.floor(Date.now() / 1000);
  const token = jwt({ sub: userId, name: 'Carla Customer', iat: now, exp: now + 600 }, desk.key.identity_secret);
  const tokened = await visit(desk.key.key, { config: { identity: { token } } });
  await openChat(tokened.probe);
  await tokened.probe.waitMessage((m) => m.text === 'Signed hello', 'the history, found with the token');
  const badToken = jwt({ sub: userId, iat: now, exp: now + 600 }, '0'.repeat(64));
  const wrongToken = await visit(desk.key.key, { config: { identity: { token: badToken } } });
  await wrongToken.probe.click('button', 'Chat with us');
  await waitFor(async () => /sign in/i.test((await wrongToken.probe.text('[role="alert"]')) ?? ''), 'the wrongly signed token to be refused');
  assert.equal((await wrongToken.probe.messages()).length, 0, 'a wrongly signed token sees no history');

  const forged = await visit(desk.key.key, { config: { identity: { user_id: userId, name: 'Carla Customer', hash: '0'.repeat(64) } } });
  await forged.probe.click('button', 'Chat with us');
  await waitFor(async () => ((await forged.probe.text('[role="alert"]')) ?? '').length > 0, 'the forged visitor to be refused');
  assert.equal((await forged.probe.messages()).length, 0, 'a forged signature sees no history');
});

test('the console manages widget keys: create (secret shown once), edit, revoke', async () => {
  const owner = await h.createUser('keys', { serverAdmin: true });
  const org = await h.createOrg(owner, h.name('Shop'));
  assert.equal((await h.rest('POST', `/orgs/${org.id}/teams`, owner.token, { name: 'Helpdesk' })).status, 201);
  const { page, seen } = await h.browse(owner);
  await page.goto(`${h.base}/admin#/widgets`);
  const card = page.getByRole('region', { name: `Widget keys of ${org.name}` });
  const form = card.getByRole('form', { name: `Create a widget key in ${org.name}` });
  await form.getByLabel('Name (the chat’s title on the site)').fill('Storefront');
  await form.getByLabel(/Allowed site origins/).fill(`${ALLOWED}\nhttps://shop.example.test`);
  await form.getByLabel('Support team').selectOption({ label: 'Helpdesk' });
  await form.getByLabel('Visitor identity').selectOption('required');
  await form.getByRole('button', { name: 'Create widget key' }).click();
  const secret = page.getByLabel('Identity secret of the new widget key');
  await secret.waitFor();
  const shownSecret = await secret.inputValue();
  assert.ok(shownSecret.length >= 32, 'the identity secret is shown');
  assert.match(await page.getByLabel('Widget snippet').inputValue(), new RegExp(`^<script src="${h.base}/widget\\.js" data-key="cnv_w_[^"]+" async></script>$`));
  const listed = await h.rest('GET', `/orgs/${org.id}/widget-keys`, owner.token);
  assert.equal(listed.body.items.length, 1);
  assert.ok(!JSON.stringify(listed.body).includes(shownSecret), 'the secret is never listed');
  const keyRow = card.locator(`[data-widget-key-id="${listed.body.items[0].id}"]`);
  assert.match(await keyRow.textContent(), /Storefront.*cnv_w_.*127\.0\.0\.1.*shop\.example\.test.*Helpdesk.*required/s);

  // Edit: the identity mode changes.
  await keyRow.getByRole('button', { name: 'Edit widget key Storefront' }).click();
  const edit = card.getByRole('form', { name: 'Edit widget key Storefront' });
  await edit.getByLabel('Visitor identity').selectOption('optional');
  await edit.getByRole('button', { name: 'Save widget key' }).click();
  await waitFor(async () => /optional/.test(await card.locator(`[data-widget-key-id="${listed.body.items[0].id}"]`).textContent()), 'the row to show the change');
  assert.ok(!(await page.content()).includes(shownSecret), 'the secret is gone once the card is drawn again');

  // Revoke: the key stops working for the widget.
  await card.getByRole('button', { name: 'Revoke widget key Storefront' }).click();
  await waitFor(async () => (await card.getByRole('button', { name: 'Revoke widget key Storefront' }).count()) === 0, 'the key to be revoked');
  const refused = await fetch(`${h.base}/api/v1/widget/sessions`, { method: 'POST', headers: { 'X-Widget-Key': listed.body.items[0].key, Origin: ALLOWED, 'Content-Type': 'application/json' }, body: '{}' });
  assert.ok([401, 403].includes(refused.status), `a revoked key is refused: ${refused.status}`);
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});
