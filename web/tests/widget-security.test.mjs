// Browser tests of what the support widget refuses (WEB-4): a page on an origin its key does
// not allow, a hostile host page (its styles, its scripts looking for the DOM or the visitor
// secret), markup and `javascript:` links in replies, and visitors not signed as the key
// requires. The sites, the proxy and `Probe` are in widget-site.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { waitFor } from './harness.mjs';
import { CHAT, HOSTILE, OTHER, errorsOf, h, openChat, supportDesk, take, visit } from './widget-site.mjs';

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
  // The number has letters around it: a bare number could turn up in the page by chance (the
  // widget's script URL carries the Conclave server's port, which can contain 4242).
  const ORDER = 'order-QX4242Z';
  await probe.say(`My secret order number is ${ORDER}`);
  await probe.waitMessage((m) => m.text === `My secret order number is ${ORDER}`, 'my message');
  assert.equal(visitor.sent.secrets.size, 1, 'one visitor secret in use');
  const [secret] = visitor.sent.secrets;

  // A script of the host page, after the widget started: every place it could look.
  const found = await page.evaluate(([secret, ORDER]) => {
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
      text: document.body.innerText.includes(ORDER) || document.documentElement.outerHTML.includes(ORDER),
      secretInGlobals: strings.some((s) => s.includes(secret)),
      secretInStorage: storage.some((s) => s.includes(secret)) || document.cookie.includes(secret),
      secretInAttributes: attributes.some((s) => s.includes(secret)),
      secretInHtml: document.documentElement.outerHTML.includes(secret),
      storageKeys: storage.length,
    };
  }, [secret, ORDER]);
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
