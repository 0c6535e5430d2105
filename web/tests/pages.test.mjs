// Browser tests of what every page load meets: the served files and their headers, the CSP,
// the first page's weight and keyboard use at phone width, the one-time bootstrap link, and
// the access-token gate. The bootstrap and gate tests start servers of their own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BOOTSTRAP, PASSWORD, SHOTS, Server, log, setup, waitFor } from './harness.mjs';

const h = setup();

/** The module scripts a page names (`<script type="module">` and `modulepreload`). */
function namedScripts(html) {
  return [...html.matchAll(/<(?:script type="module" src|link rel="modulepreload" href)="([^"]+)"/g)].map((m) => m[1]);
}

test('pages and assets are served with their types, the CSP and cache headers', async () => {
  const base = h.base;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  const html = await page.text();
  assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>|style=|<style/);
  const js = await fetch(`${base}/assets/client.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const etag = js.headers.get('etag');
  assert.ok(etag);
  assert.equal((await fetch(`${base}/assets/client.js`, { headers: { 'If-None-Match': etag } })).status, 304);
  assert.match((await fetch(`${base}/assets/app.css`)).headers.get('content-type'), /^text\/css/);
  assert.equal((await fetch(`${base}/admin`)).status, 200);
  assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
  assert.equal((await fetch(`${base}/api/v1/capabilities`)).headers.get('cache-control'), 'no-store');

  // Both pages load their modules as the browser sees them: each one a JavaScript file (a
  // module served as anything else is refused), and nothing fails while they start.
  for (const path of ['/', '/admin']) {
    const { page: tab, seen } = await h.newUser();
    const scripts = new Map();
    tab.on('response', (res) => {
      const url = new URL(res.url());
      if (/\.m?js$/.test(url.pathname)) scripts.set(url.pathname, { status: res.status(), type: res.headers()['content-type'] });
    });
    await tab.goto(`${base}${path}`, { waitUntil: 'networkidle' });
    await tab.getByLabel('Username').waitFor();
    const named = namedScripts(await (await fetch(`${base}${path}`)).text());
    assert.ok(named.length >= 6, `${path} names its modules: ${named}`);
    for (const script of named) {
      const got = scripts.get(script);
      assert.ok(got, `${path}: the browser fetched ${script}`);
      assert.equal(got.status, 200, `${path}: ${script}`);
      assert.match(got.type, /^text\/javascript/, `${path}: ${script} is served as JavaScript`);
    }
    // Signed out, the session check answers 401: a failed load, and nothing else goes wrong.
    assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), [], `${path} starts without errors`);
  }
});

test('the bootstrap link creates the first admin, signed in by cookie only', async () => {
  const fresh = await Server.start({ bootstrap: false });
  try {
    const admin = await h.newUser();
    const { page } = admin;
    await page.goto(`${fresh.base}/#bootstrap=${BOOTSTRAP}`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create administrator' }).click();
    await page.getByText('Signed in as admin').waitFor();
    assert.equal(new URL(page.url()).hash, '');
    const cookies = await admin.context.cookies();
    const session = cookies.find((c) => c.name === 'conclave_session');
    assert.ok(session?.httpOnly, 'the session lives in an HttpOnly cookie');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.equal(stored, '{}{}', 'nothing is kept in web storage');
  } finally {
    await h.closeContexts();
    await fresh.destroy();
  }
});

test('the CSP blocks an injected inline script', async () => {
  const user = await h.createUser('csp');
  const { page } = await h.browse(user);
  const result = await page.evaluate(async () => {
    const violation = new Promise((ok) => {
      document.addEventListener('securitypolicyviolation', (e) => ok(e.effectiveDirective), { once: true });
      setTimeout(() => ok(null), 3000);
    });
    const s = document.createElement('script');
    s.textContent = 'window.__inline = true';
    document.body.append(s);
    return { directive: await violation, ran: window.__inline === true };
  });
  assert.equal(result.ran, false, 'the inline script did not run');
  assert.match(result.directive ?? '', /^script-src/);
});

test('the first page is small, fetched in one round, and usable by keyboard at phone width', async () => {
  const admin = await h.createUser('admin', { serverAdmin: true });
  const acme = await h.createOrg(admin, 'Acme');
  const general = await h.createConversation(admin, acme.id, 'general');
  const conversationId = general.id;
  const { page } = await h.newUser({ width: 375, height: 740 });
  const base = h.base;
  const fetched = [];
  page.on('requestfinished', async (req) => {
    const res = await req.response();
    fetched.push({ url: new URL(req.url()), bytes: res ? (await res.body().catch(() => Buffer.alloc(0))).length : 0 });
  });
  await page.goto(`${base}/`, { waitUntil: 'networkidle' });
  await page.getByLabel('Username').waitFor();
  const total = fetched.reduce((n, f) => n + f.bytes, 0);
  assert.ok(total < 200 * 1024, `the first page weighs ${total} bytes, under 200 KiB`);
  // One round: every script the page runs is named by the HTML itself (script or
  // modulepreload), so none waits for another to be parsed first.
  const html = await (await fetch(`${base}/`)).text();
  const scripts = fetched.filter((f) => /\.m?js$/.test(f.url.pathname)).map((f) => f.url.pathname);
  assert.ok(scripts.length >= 6, `scripts: ${scripts}`);
  for (const path of scripts) assert.ok(html.includes(`"${path}"`), `${path} is named in index.html`);
  assert.ok(!scripts.some((p) => /qr/.test(p)), 'the QR encoder is loaded only when needed');

  // By keyboard alone: the form starts focused; Tab moves through it; Enter on the button.
  await waitFor(() => page.evaluate(() => document.activeElement?.name === 'username'), 'focus in Username');
  await page.keyboard.type(admin.username);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Sign in');
  await page.keyboard.press('Enter');
  await page.getByText(`Signed in as ${admin.username}`).waitFor();
  await page.getByRole('link', { name: 'general' }).waitFor();
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok((await overflow()) <= 0, 'nothing is wider than a phone screen');
  let reached = false;
  for (let i = 0; i < 30 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.querySelector('.conv-name')?.textContent === 'general');
  }
  assert.ok(reached, 'Tab reaches the conversation link');
  // A live event re-renders the list; the focus stays on the same link. (The admin's other
  // page stays off the conversation, or it would read the message at once.)
  const other = await h.browse(admin);
  await other.page.goto(`${base}/#/sessions`);
  await other.page.getByText('This device').waitFor();
  const sent = await h.rest('POST', `/conversations/${conversationId}/messages`, await h.login(admin.username), { content: 'while tabbing', format: 'text' });
  assert.equal(sent.status, 201);
  await waitFor(async () => (await page.locator(`[data-conversation-id="${conversationId}"] .unread`).count()) === 1, 'the unread count');
  assert.equal(await page.evaluate(() => document.activeElement?.querySelector('.conv-name')?.textContent), 'general');
  await other.page.goto(`${base}/#/c/${conversationId}`);
  await log(other.page).getByText('while tabbing').waitFor();
  await page.keyboard.press('Enter');
  await log(page).waitFor();
  await page.waitForURL(`${base}/#/c/${conversationId}`);
  await page.getByLabel('Message', { exact: true }).waitFor();
  await waitFor(() => page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Message'), 'focus in the message box');
  assert.ok((await overflow()) <= 0, 'the conversation fits a phone screen');
  await page.screenshot({ path: join(SHOTS, 'client-phone.png') });
  await page.goto(`${base}/admin#/orgs`);
  await page.getByRole('heading', { name: 'Acme' }).waitFor();
  assert.ok((await overflow()) <= 0, 'the admin console fits a phone screen');
  await page.screenshot({ path: join(SHOTS, 'admin-phone.png'), fullPage: true });
});

test('with the access-token gate the sign-in page asks for the access code and every request carries it', async () => {
  const ACCESS = `access-${randomBytes(12).toString('hex')}`;
  const gated = await Server.start({ env: { CONCLAVE_ACCESS_TOKEN: ACCESS }, bootstrap: false });
  const gatedBase = gated.base;
  const user = await h.newUser();
  try {
    const caps = await (await fetch(`${gatedBase}/api/v1/capabilities`)).json();
    assert.equal(caps.auth.access_token_gate, true);
    // Without the code, even sign-in is refused.
    const body = JSON.stringify({ bootstrap_token: BOOTSTRAP, username: 'gatekeeper', password: PASSWORD });
    const headers = { 'Content-Type': 'application/json' };
    const refused = await fetch(`${gatedBase}/api/v1/auth/bootstrap`, { method: 'POST', headers, body });
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).error.code, 'access_token_required');
    const made = await fetch(`${gatedBase}/api/v1/auth/bootstrap`, {
      method: 'POST',
      headers: { ...headers, 'X-API-Access-Token': ACCESS },
      body,
    });
    assert.equal(made.status, 201);

    const { context, page } = user;
    const requests = [];
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname.startsWith('/api/v1/')) requests.push({ path: url.pathname, code: r.headers()['x-api-access-token'] });
    });
    const sent = [];
    page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));
    await page.goto(`${gatedBase}/`);
    await page.getByLabel('Access code').fill('not-the-code');
    await page.getByLabel('Username').fill('gatekeeper');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText(/X-API-Access-Token/).waitFor();
    await page.getByLabel('Access code').fill(ACCESS);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as gatekeeper').waitFor();
    const signedInAt = requests.findIndex((r) => r.path === '/api/v1/auth/login' && r.code === ACCESS);
    assert.ok(signedInAt >= 0, 'the login carried the access code');
    const after = requests.slice(signedInAt);
    assert.ok(after.length > 1, 'the client made requests after signing in');
    for (const r of after) assert.equal(r.code, ACCESS, `${r.path} carries the access code`);
    // The gateway's IDENTIFY carries it as `access_token`.
    await waitFor(
      () => sent.some((f) => JSON.parse(f).op === 2 && JSON.parse(f).d.access_token === ACCESS),
      'IDENTIFY with the access code',
    );
    // Kept for this tab only: not in localStorage, and a new tab asks again.
    const stored = await page.evaluate(() => ({ local: { ...localStorage }, session: { ...sessionStorage } }));
    assert.deepEqual(stored.local, {});
    assert.deepEqual(Object.values(stored.session), [ACCESS]);
    const tab = await context.newPage();
    await tab.goto(`${gatedBase}/`);
    await tab.getByLabel('Access code').waitFor();
    await tab.close();
    // Refused requests show as failed loads; nothing else may go wrong on the page.
    assert.deepEqual(user.seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await h.closeContexts();
    await gated.destroy();
  }
});
