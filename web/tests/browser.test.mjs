// Browser tests of the embedded web client and admin console: a real `conclave serve` on a free
// port with a fresh data dir, driven through Debian's Chromium by playwright-core.
//
//   CONCLAVE_BIN=path/to/conclave node --test --test-concurrency=1 browser.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import jsQR from 'jsqr';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const BIN = process.env.CONCLAVE_BIN ? resolve(process.env.CONCLAVE_BIN) : join(repo, 'target/debug/conclave');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(here, 'screenshots');
// A preset bootstrap token has at least 32 characters (CORE-3a).
const BOOTSTRAP = `boot-${randomBytes(16).toString('hex')}`;
const PASSWORD = 'correct horse battery staple';

let server;
let serverLog = '';
let dataDir;
let base;
let browser;
let admin; // { context, page }
let bob;
let conversationId;

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitFor(check, what, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${serverLog.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** REST from the test itself, with a bearer token. */
async function rest(method, path, token, body) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for a base32 secret, `offset` steps from now. */
function totp(secret, offset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac('sha1', key).update(counter).digest();
  const at = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

/** Decodes the QR code in a PNG screenshot: the browser turns it into pixels, jsQR reads them. */
async function decodeQr(context, png) {
  const scratch = await context.newPage();
  const { width, height, data } = await scratch.evaluate(async (b64) => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bitmap = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const img = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
    return { width: img.width, height: img.height, data: Array.from(img.data) };
  }, png.toString('base64'));
  await scratch.close();
  return jsQR(Uint8ClampedArray.from(data), width, height)?.data ?? null;
}

/** A fresh browser context and page that records dialogs, page errors and console errors. */
async function newUser() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const seen = { dialogs: [], errors: [] };
  page.on('dialog', (d) => {
    seen.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.errors.push(m.text());
  });
  return { context, page, seen };
}

async function signInAs(page, username, password = PASSWORD) {
  await page.goto(`${base}/`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

function log(page) {
  return page.getByRole('log');
}

/** Spawns `conclave serve` on `port` over `dir` (public URL `url`) with `extra` settings;
 * `onOutput` receives what it prints. */
function spawnServer(port, url, dir, extra, onOutput) {
  const child = spawn(BIN, ['serve'], {
    env: {
      // The server refuses unknown CONCLAVE_* variables (CONCLAVE_BIN is ours): pass none on.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONCLAVE_'))),
      CONCLAVE_LISTEN: `127.0.0.1:${port}`,
      CONCLAVE_PUBLIC_URL: url,
      CONCLAVE_DATA_DIR: dir,
      CONCLAVE_BOOTSTRAP_TOKEN: BOOTSTRAP,
      CONCLAVE_RATE_LIMITS: 'off',
      RUST_LOG: 'warn',
      ...extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  return child;
}

/** Starts `conclave serve` on `port` with the test's data dir and waits until it answers. */
async function startServer(port) {
  server = spawnServer(port, base, dataDir, {}, (d) => (serverLog += d));
  await waitFor(async () => (await fetch(`${base}/health`)).ok, 'the server to answer /health');
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'conclave-web-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer(port);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('pages and assets are served with their types, the CSP and cache headers', async () => {
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
});

test('the bootstrap link creates the first admin, signed in by cookie only', async () => {
  admin = await newUser();
  const { page } = admin;
  await page.goto(`${base}/#bootstrap=${BOOTSTRAP}`);
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
});

test('an admin creates users, an org with members and an API key in the console', async () => {
  const { page } = admin;
  await page.goto(`${base}/admin#/users`);
  for (const name of ['bob', 'carol']) {
    await page.getByLabel('Username').fill(name);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('cell', { name, exact: true }).waitFor();
  }
  await page.goto(`${base}/admin#/orgs`);
  await page.getByLabel('Organization name').fill('Acme');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByRole('heading', { name: 'Acme' }).waitFor();
  for (const name of ['bob', 'carol']) {
    await page.getByLabel('Username to add to Acme').fill(name);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('cell', { name, exact: true }).waitFor();
  }
  await page.goto(`${base}/admin#/api-keys`);
  await page.getByLabel('Key name').fill('ci bot');
  await page.getByLabel('messages:read').check();
  await page.getByRole('button', { name: 'Create API key' }).click();
  const secret = await page.getByLabel('New API key secret').inputValue();
  assert.match(secret, /^cnv_k_/);
  const row = page.locator('tr', { hasText: 'ci bot' });
  const masked = await row.locator('code').textContent();
  assert.ok(masked.includes('****') && !masked.includes(secret), `the list shows the key masked: ${masked}`);
  await page.screenshot({ path: join(SHOTS, 'admin-api-keys.png') });
  await row.getByRole('button', { name: 'Revoke API key ci bot' }).click();
  await row.waitFor({ state: 'detached' });
  await page.goto(`${base}/admin#/users`);
  await page.getByRole('button', { name: 'Disable carol' }).waitFor();
  // Requiring 2FA of carol: the console shows it, and the server enforces it on her session.
  await page.getByRole('button', { name: 'Require 2FA for carol' }).click();
  await page.getByRole('button', { name: 'Stop requiring 2FA for carol' }).waitFor();
  const carolRow = page.locator('tr', { hasText: 'carol' });
  assert.ok((await carolRow.textContent()).includes('required'));
  const carolLogin = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'carol', password: PASSWORD }),
  }).then((r) => r.json());
  const carolOrgs = await fetch(`${base}/api/v1/orgs`, { headers: { authorization: `Bearer ${carolLogin.token}` } });
  assert.equal(carolOrgs.status, 403);
  assert.equal((await carolOrgs.json()).error.code, 'mfa_setup_required');
  await page.screenshot({ path: join(SHOTS, 'admin-users.png') });
  // Lifted again for the tests below, and her session reaches everything once more.
  await page.getByRole('button', { name: 'Stop requiring 2FA for carol' }).click();
  await page.getByRole('button', { name: 'Require 2FA for carol' }).waitFor();
  const again = await fetch(`${base}/api/v1/orgs`, { headers: { authorization: `Bearer ${carolLogin.token}` } });
  assert.equal(again.status, 200);
  const out = await fetch(`${base}/api/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${carolLogin.token}` } });
  assert.equal(out.status, 204);
  await page.goto(`${base}/admin#/capabilities`);
  await page.getByRole('rowheader', { name: 'api_version' }).waitFor();
});

test('an owner invites a person by username, who sees the invitation and accepts it', async () => {
  const adminToken = (await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD })).body.token;
  assert.equal((await rest('POST', '/admin/users', adminToken, { username: 'fern', password: PASSWORD })).status, 201);
  const harbor = (await rest('POST', '/orgs', adminToken, { name: 'Harbor' })).body;
  const { page } = admin;
  await page.goto(`${base}/`);
  await page.locator('#org-select').selectOption({ label: 'Harbor' });
  await page.getByLabel('Username to invite to Harbor').fill('fern');
  await page.getByLabel('Role for the invited person').selectOption('admin');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.getByText('Invited fern: they join once they accept.').waitFor();
  // Nothing happens to fern until she accepts.
  const fernToken = (await rest('POST', '/auth/login', null, { username: 'fern', password: PASSWORD })).body.token;
  assert.equal((await rest('GET', `/orgs/${harbor.id}`, fernToken)).status, 404);
  const fern = await newUser();
  await signInAs(fern.page, 'fern');
  const accept = fern.page.getByRole('button', { name: 'Accept the invitation to Harbor' });
  await accept.waitFor();
  await fern.page.screenshot({ path: join(SHOTS, 'client-invitations.png') });
  await accept.click();
  await fern.page.getByRole('option', { name: 'Harbor' }).waitFor({ state: 'attached' });
  await fern.page.getByText('No invitations.').waitFor();
  assert.equal((await rest('GET', `/orgs/${harbor.id}`, fernToken)).body.role, 'admin');
  // The console lists the org's invites with a revoke button each.
  await page.goto(`${base}/admin#/orgs`);
  await page.getByRole('button', { name: 'Revoke the invite for fern' }).waitFor();
  assert.deepEqual(fern.seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  await fern.context.close();
  // The tests below expect the admin in one org.
  assert.equal((await rest('DELETE', `/orgs/${harbor.id}`, adminToken)).status, 204);
});

test('two users exchange, edit and delete messages live', async () => {
  const { page } = admin;
  await page.goto(`${base}/`);
  await page.getByLabel('New conversation name').fill('general');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.waitForURL(/#\/c\/[0-9a-f-]{36}$/);
  conversationId = new URL(page.url()).hash.slice('#/c/'.length);
  await log(page).waitFor();

  bob = await newUser();
  await signInAs(bob.page, 'bob');
  await bob.page.getByRole('button', { name: 'Join general' }).click();
  await bob.page.waitForURL(`${base}/#/c/${conversationId}`);
  await log(bob.page).waitFor();

  await page.getByLabel('Message', { exact: true }).fill('Hello Bob, welcome aboard!');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await log(bob.page).getByText('Hello Bob, welcome aboard!').waitFor();

  await bob.page.getByLabel('Message', { exact: true }).fill('Thanks! Glad to be here.');
  await bob.page.getByRole('button', { name: 'Send' }).click();
  await log(page).getByText('Thanks! Glad to be here.').waitFor();

  const mine = log(bob.page).locator('[data-message-id]', { hasText: 'Glad to be here' });
  assert.match(await mine.getAttribute('data-message-id'), /^[0-9a-f-]{36}$/);
  await mine.getByRole('button', { name: 'Edit message' }).click();
  await bob.page.getByLabel('Edit message text').fill('Thanks! Really glad to be here.');
  await bob.page.getByRole('button', { name: 'Save' }).click();
  await log(page).getByText('Thanks! Really glad to be here.').waitFor();

  await bob.page.getByLabel('Message', { exact: true }).fill('oops, wrong room');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await log(page).getByText('oops, wrong room').waitFor();
  await log(bob.page).locator('[data-message-id]', { hasText: 'oops, wrong room' }).getByRole('button', { name: 'Delete message' }).click();
  await log(page).getByText('oops, wrong room').waitFor({ state: 'detached' });
  assert.equal(await log(page).getByText('This message was deleted.').count(), 1);

  // Admin's messages carry no edit or delete controls for bob.
  const adminsMessage = log(bob.page).locator('[data-message-id]', { hasText: 'Hello Bob' });
  assert.equal(await adminsMessage.getByRole('button').count(), 0);

  // Typing reaches the other side.
  await bob.page.getByLabel('Message', { exact: true }).fill('typing…');
  await page.getByText('bob is typing…').waitFor();
  await bob.page.getByLabel('Message', { exact: true }).fill('');

  // A reload opens the same conversation from the address alone.
  await bob.page.reload();
  await log(bob.page).getByText('Hello Bob, welcome aboard!').waitFor();
  await page.screenshot({ path: join(SHOTS, 'client-conversation.png') });
});

test('older messages load on request', async () => {
  const { page } = admin;
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const orgs = await rest('GET', '/orgs', login.body.token);
  const conv = await rest('POST', `/orgs/${orgs.body.items[0].id}/conversations`, login.body.token, {
    kind: 'group',
    name: 'history',
    visibility: 'private',
    participant_ids: [],
  });
  assert.equal(conv.status, 201);
  for (let i = 1; i <= 60; i += 1) {
    const r = await rest('POST', `/conversations/${conv.body.id}/messages`, login.body.token, { content: `history #${i}.`, format: 'text' });
    assert.equal(r.status, 201);
  }
  await page.goto(`${base}/#/c/${conv.body.id}`);
  await page.reload();
  await log(page).getByText('history #60.').waitFor();
  assert.equal(await log(page).locator('[data-message-id]').count(), 50);
  await page.getByRole('button', { name: 'Load older messages' }).click();
  await log(page).getByText('history #1.', { exact: true }).waitFor();
  assert.equal(await log(page).locator('[data-message-id]').count(), 60);
  const first = await log(page).locator('[data-message-id]').first().textContent();
  assert.match(first, /history #1\./, 'older messages go above newer ones');
  await page.getByRole('button', { name: 'Load older messages' }).waitFor({ state: 'detached' });
});

test('sign-in with two-factor authentication', async () => {
  const login = await rest('POST', '/auth/login', null, { username: 'carol', password: PASSWORD });
  const token = login.body.token;
  const setup = await rest('POST', '/auth/totp/setup', token, {});
  assert.equal(setup.status, 200);
  const enabled = await rest('POST', '/auth/totp/enable', token, { code: totp(setup.body.secret) });
  assert.equal(enabled.status, 200, JSON.stringify(enabled.body));

  const carol = await newUser();
  await signInAs(carol.page, 'carol');
  await carol.page.getByRole('heading', { name: 'Two-factor authentication' }).waitFor();
  await carol.page.getByLabel('Authentication code').fill('000000');
  await carol.page.getByRole('button', { name: 'Verify' }).click();
  await carol.page.getByRole('alert').waitFor();
  // The enabling code is used; the next step's is within the ±1 window and still fresh.
  await carol.page.getByLabel('Authentication code').fill(totp(setup.body.secret, 1));
  await carol.page.getByRole('button', { name: 'Verify' }).click();
  await carol.page.getByText('Signed in as carol').waitFor();
  await carol.page.goto(`${base}/#/sessions`);
  await carol.page.getByText('This device').waitFor();
  // The session the test signed in with over REST is listed too; revoking it ends it.
  assert.equal((await rest('GET', '/users/@me', token)).status, 200);
  await carol.page.getByRole('button', { name: /^Revoke session on / }).click();
  await carol.page.getByRole('button', { name: /^Revoke session on / }).waitFor({ state: 'detached' });
  assert.equal((await rest('GET', '/users/@me', token)).status, 401);
  await carol.context.close();
});

test('a user turns on two-factor authentication in the client', async () => {
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const made = await rest('POST', '/admin/users', login.body.token, { username: 'dave', password: PASSWORD });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const dave = await newUser();
  const { page } = dave;
  await signInAs(page, 'dave');
  await page.getByRole('link', { name: 'Two-factor' }).click();
  const setupAnswer = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/totp/setup'));
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const setup = await (await setupAnswer).json();
  assert.match(setup.otpauth_uri, /^otpauth:\/\/totp\//);
  // The QR code on screen decodes to the very otpauth URI the API returned ...
  const qr = page.getByRole('img', { name: 'QR code for your authenticator app' });
  await qr.waitFor();
  assert.equal(await decodeQr(dave.context, await qr.screenshot()), setup.otpauth_uri);
  // ... and the secret is there as text for typing in by hand.
  const secret = await page.getByLabel('Secret key').inputValue();
  assert.equal(secret, setup.secret);
  await page.screenshot({ path: join(SHOTS, 'client-two-factor-setup.png') });
  await page.getByLabel('Code from your app').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
  await page.getByRole('list', { name: 'Recovery codes' }).waitFor();
  assert.equal(await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').count(), 10);
  await page.screenshot({ path: join(SHOTS, 'client-two-factor.png') });
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  await page.getByText('Two-factor authentication is already on.').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Username').fill('dave');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('Authentication code').fill(totp(secret, 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('Signed in as dave').waitFor();
  await dave.context.close();
});

test('a removed participant stops seeing the conversation', async () => {
  const { page } = admin;
  await page.goto(`${base}/#/c/${conversationId}`);
  await page.getByRole('button', { name: 'Remove bob' }).click();
  await bob.page.getByText('You were removed from this conversation.').waitFor();
  await page.getByLabel('Message', { exact: true }).fill('Only for those still here');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await log(page).getByText('Only for those still here').waitFor();
  await bob.page.goto(`${base}/#/c/${conversationId}`);
  await bob.page.reload();
  await bob.page.getByText('does not exist or you are not a participant').waitFor();
  assert.equal(await bob.page.getByText('Only for those still here').count(), 0);
  const status = await bob.page.evaluate(async (id) => (await fetch(`/api/v1/conversations/${id}/messages`)).status, conversationId);
  assert.ok([403, 404].includes(status), `bob can no longer read it over REST (${status})`);
});

test('hostile message content executes nothing', async () => {
  const { page, seen } = admin;
  seen.errors.length = 0;
  await page.goto(`${base}/#/c/${conversationId}`);
  await log(page).waitFor();
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const token = login.body.token;
  const payloads = [
    ['text', '<script>window.__xss = 1; alert("text-script")</script>'],
    ['html', '<p>hi<script>window.__xss = 2; alert("html-script")</script></p>'],
    ['html', '<img src="/nothing.png" onerror="window.__xss = 3; alert(\'onerror\')"> image payload'],
    ['html', '<a href="javascript:window.__xss=4;alert(\'js-link\')">click me</a>'],
    ['html', '<svg onload="window.__xss=5;alert(\'svg\')"><script>alert("svg-script")</script></svg> svg payload'],
    ['html', '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe><strong>bold</strong> and <a href="https://example.com/">a real link</a>'],
    ['text', '<img src=x onerror=alert("text-img")>'],
  ];
  for (const [format, content] of payloads) {
    const r = await rest('POST', `/conversations/${conversationId}/messages`, token, { content, format });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await log(page).getByText('<img src=x onerror=alert("text-img")>').waitFor();
  await log(page).getByText('click me').click();
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(seen.dialogs, []);
  const bodies = log(page).locator('.body');
  for (const selector of ['script', 'iframe', 'svg', '[onerror]', '[onload]', 'a[href^="javascript"]']) {
    assert.equal(await bodies.locator(selector).count(), 0, `no ${selector} in rendered messages`);
  }
  assert.equal(await log(page).locator('strong', { hasText: 'bold' }).count(), 1, 'harmless markup stays');
  assert.equal(await log(page).locator('a[href="https://example.com/"]').count(), 1, 'safe links stay');
  assert.ok(await log(page).getByText('<script>window.__xss = 1;', { exact: false }).count(), 'text stays text');
  const unexpected = seen.errors.filter((e) => !/Failed to load resource/.test(e));
  assert.deepEqual(unexpected, []);
});

test('the CSP blocks an injected inline script', async () => {
  const { page } = admin;
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
  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await context.newPage();
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
  await page.keyboard.type('admin');
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Sign in');
  await page.keyboard.press('Enter');
  await page.getByText('Signed in as admin').waitFor();
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
  // page leaves the conversation first, or it would read the message at once.)
  await admin.page.goto(`${base}/#/sessions`);
  await admin.page.getByText('This device').waitFor();
  const other = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const sent = await rest('POST', `/conversations/${conversationId}/messages`, other.body.token, { content: 'while tabbing', format: 'text' });
  assert.equal(sent.status, 201);
  await waitFor(async () => (await page.locator(`[data-conversation-id="${conversationId}"] .unread`).count()) === 1, 'the unread count');
  assert.equal(await page.evaluate(() => document.activeElement?.querySelector('.conv-name')?.textContent), 'general');
  await admin.page.goto(`${base}/#/c/${conversationId}`);
  await log(admin.page).getByText('while tabbing').waitFor();
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
  await context.close();
});

test('the client reconnects after a server restart and gets live messages again', async () => {
  const { page } = admin;
  const stopped = new Promise((ok) => server.once('exit', ok));
  server.kill('SIGTERM');
  await stopped;
  await page.locator('#connection[data-state="reconnecting"]').waitFor();
  await startServer(new URL(base).port);
  await page.locator('#connection[data-state="online"]').waitFor({ state: 'attached', timeout: 15_000 });
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const sent = await rest('POST', `/conversations/${conversationId}/messages`, login.body.token, { content: 'after the restart', format: 'text' });
  assert.equal(sent.status, 201);
  await log(page).getByText('after the restart').waitFor();
});

test('direct conversations, with unread counts kept by read markers across sessions', async () => {
  const { page } = admin;
  const unread = (p, id) => p.locator(`[data-conversation-id="${id}"] .unread`);
  await page.goto(`${base}/`);
  await page.reload();
  await page.getByLabel('Start a direct conversation with').selectOption({ label: 'bob' });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/c\/[0-9a-f-]{36}$/);
  const directId = new URL(page.url()).hash.slice('#/c/'.length);
  assert.notEqual(directId, conversationId);
  await page.getByRole('heading', { name: 'bob', exact: true }).waitFor();
  await page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: 'bob' }).waitFor();

  // Bob is told live, and the conversation carries admin's name on his side.
  await bob.page.goto(`${base}/`);
  await bob.page.reload();
  const bobsLink = bob.page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: /^admin/ });
  await bobsLink.waitFor();
  assert.equal(await bobsLink.getAttribute('href'), `#/c/${directId}`);

  for (const text of ['Hi Bob, a word in private?', 'It is about the launch.']) {
    await page.getByLabel('Message', { exact: true }).fill(text);
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await log(page).getByText(text).waitFor();
  }
  await waitFor(async () => (await unread(bob.page, directId).getAttribute('data-count')) === '2', "bob's unread count of 2");
  assert.equal(await bobsLink.textContent(), 'admin2 unread');
  // The sender has read what they sent.
  assert.equal(await unread(page, directId).count(), 0);

  // READY carries the count: a reload and a second session of bob show it too.
  await bob.page.reload();
  await waitFor(async () => (await unread(bob.page, directId).getAttribute('data-count')) === '2', 'the count after a reload');
  const bob2 = await newUser();
  await signInAs(bob2.page, 'bob');
  await waitFor(async () => (await unread(bob2.page, directId).getAttribute('data-count')) === '2', "the count in bob's second session");
  await bob.page.screenshot({ path: join(SHOTS, 'client-direct-unread.png') });

  // Bob opens it: read here, and his other session is told by READ_MARKER_UPDATE.
  await bobsLink.click();
  await log(bob.page).getByText('It is about the launch.').waitFor();
  await unread(bob.page, directId).waitFor({ state: 'detached' });
  await unread(bob2.page, directId).waitFor({ state: 'detached' });

  // A message arriving while the conversation is on screen is read at once.
  await page.getByLabel('Message', { exact: true }).fill('Thanks for reading.');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await log(bob.page).getByText('Thanks for reading.').waitFor();
  await bob.page.getByLabel('Message', { exact: true }).fill('Sure, tell me.');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await log(page).getByText('Sure, tell me.').waitFor();
  await waitFor(async () => (await unread(bob2.page, directId).count()) === 0, 'no unread left in the second session');
  await bob2.page.waitForTimeout(500);
  await bob2.page.reload();
  await bob2.page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: 'admin' }).waitFor();
  assert.equal(await unread(bob2.page, directId).count(), 0, 'the server keeps the marker: READY counts nothing unread');
  // The admin, on another page, gets a count for bob's reply and loses it on opening.
  await page.goto(`${base}/#/sessions`);
  await bob.page.getByLabel('Message', { exact: true }).fill('Ping.');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await waitFor(async () => (await unread(page, directId).getAttribute('data-count')) === '1', "admin's unread count");
  await page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: /^bob/ }).click();
  await log(page).getByText('Ping.').waitFor();
  await unread(page, directId).waitFor({ state: 'detached' });

  // Starting again with the same person opens the same conversation.
  await page.goto(`${base}/`);
  await page.getByLabel('Start a direct conversation with').selectOption({ label: 'bob' });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(`${base}/#/c/${directId}`);
  assert.equal(await page.getByRole('list', { name: 'Direct conversations' }).getByRole('listitem').count(), 1);
  await bob2.context.close();
});

test('an admin manages the teams and bots of an org in the console', async () => {
  const { page } = admin;
  await page.goto(`${base}/admin#/orgs`);
  const acme = page.getByRole('region', { name: 'Acme', exact: true });
  const teams = acme.getByRole('region', { name: 'Teams of Acme' });
  await teams.getByLabel('New team name in Acme').fill('Support');
  await teams.getByRole('button', { name: 'Create team' }).click();
  const row = teams.getByRole('row', { name: /^Support/ });
  await row.waitFor();
  for (const name of ['bob', 'carol']) {
    await row.getByLabel('Add to team Support').selectOption({ label: name });
    await row.getByRole('button', { name: 'Add to team' }).click();
    await row.getByRole('list', { name: 'Members of team Support' }).getByText(name, { exact: true }).waitFor();
  }
  await row.getByRole('button', { name: 'Remove bob from team Support' }).click();
  await row.getByRole('button', { name: 'Remove bob from team Support' }).waitFor({ state: 'detached' });
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const token = login.body.token;
  const orgId = await acme.getAttribute('data-org-id');
  const listed = await rest('GET', `/orgs/${orgId}/teams`, token);
  const support = listed.body.items.find((t) => t.name === 'Support');
  const users = await rest('GET', `/orgs/${orgId}/members?limit=100`, token);
  const idOf = (name) => users.body.items.find((m) => m.user.username === name).user.id;
  assert.deepEqual(support.member_ids, [idOf('carol')], 'the server has carol, and no longer bob, in the team');

  const bots = acme.getByRole('region', { name: 'Bots of Acme' });
  await bots.getByLabel('New bot name in Acme').fill('deploy-bot');
  await bots.getByRole('button', { name: 'Create bot' }).click();
  const first = await bots.getByLabel('New token of bot deploy-bot').inputValue();
  assert.match(first, /^cnv_b_/);
  const botRow = bots.getByRole('row', { name: /^deploy-bot/ });
  const masked = await botRow.locator('code').textContent();
  assert.ok(masked.includes('****') && !masked.includes(first), `the list shows the token masked: ${masked}`);
  const asBot = async (t) => (await fetch(`${base}/api/v1/users/@me`, { headers: { Authorization: `Bot ${t}` } })).status;
  assert.equal(await asBot(first), 200);
  await page.screenshot({ path: join(SHOTS, 'admin-teams-bots.png'), fullPage: true });
  await botRow.getByRole('button', { name: 'Rotate token of bot deploy-bot' }).click();
  await waitFor(async () => (await bots.getByLabel('New token of bot deploy-bot').inputValue()) !== first, 'the rotated token');
  const second = await bots.getByLabel('New token of bot deploy-bot').inputValue();
  assert.match(second, /^cnv_b_/);
  assert.equal(await asBot(second), 200);
  assert.equal(await asBot(first), 401, 'the old token stops working (no grace period)');
  // Shown once: a reload lists the bot with its token masked only.
  await page.reload();
  await bots.getByRole('row', { name: /^deploy-bot/ }).waitFor();
  assert.equal(await bots.getByLabel('New token of bot deploy-bot').count(), 0);
  assert.equal(await page.getByText(second).count(), 0);
});

/** The page's horizontal overflow in pixels (≤ 0: nothing wider than the viewport). */
function overflowOf(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

test('an admin filters and pages the audit log and verifies its chain', async () => {
  const { page } = admin;
  const failed = await rest('POST', '/auth/login', null, { username: 'bob', password: 'not the password' });
  assert.equal(failed.status, 401);
  await page.goto(`${base}/admin#/audit`);
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  const events = page.getByRole('table', { name: 'Audit events' });
  await events.locator('tr[data-event-id]').first().waitFor();

  // A bad filter: the server's 422 names the field, shown and marked on the form.
  await page.getByLabel('Actor id').fill('not-an-id');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('alert').filter({ hasText: 'actor:' }).waitFor();
  assert.equal(await page.getByLabel('Actor id').getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Actor id').fill('');

  await page.getByLabel('Event', { exact: true }).fill('auth.login');
  await page.getByLabel('Rows per page').selectOption('10');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('alert').waitFor({ state: 'detached' });
  const rows = events.locator('tr[data-event-id]');
  await waitFor(async () => (await rows.count()) === 10, 'ten auth.login rows');
  const names = async () => rows.locator('td:nth-child(2)').allTextContents();
  assert.ok((await names()).every((n) => n === 'auth.login'), `only auth.login: ${await names()}`);
  // The failed sign-in made above is the newest, with bob as its resource and the reason.
  const newest = rows.first();
  assert.match(await newest.textContent(), /failure \(invalid_credentials\)/);
  assert.match(await newest.locator('td:nth-child(4)').textContent(), /^user bob/);
  assert.match(await newest.locator('td:nth-child(3)').textContent(), /anonymous/);
  const firstIds = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.eventId));

  await page.getByRole('button', { name: 'Older events' }).click();
  await waitFor(async () => (await rows.count()) > 10, 'an older page');
  const allIds = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.eventId));
  assert.deepEqual(allIds.slice(0, 10), firstIds, 'the older page goes below the first');
  assert.equal(new Set(allIds).size, allIds.length, 'no row twice');
  assert.ok((await names()).every((n) => n === 'auth.login'), 'the filter holds across pages');
  const times = await rows.locator('time').evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute('datetime'))));
  assert.ok(times.every((t, i) => i === 0 || times[i - 1] >= t), 'newest first');

  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.getByText(/^Chain intact: \d+ rows checked/).waitFor();
  await page.screenshot({ path: join(SHOTS, 'admin-audit.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 740 });
  assert.ok((await overflowOf(page)) <= 0, 'the audit log fits a phone screen');
  await page.setViewportSize({ width: 1280, height: 800 });
});

test('a user sees their security events, downloads their data and deletes their account', async () => {
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const made = await rest('POST', '/admin/users', login.body.token, { username: 'erin', password: PASSWORD });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal((await rest('POST', '/auth/login', null, { username: 'erin', password: 'wrong guess' })).status, 401);

  const erin = await newUser();
  const { page } = erin;
  await signInAs(page, 'erin');
  await page.getByText('Signed in as erin').waitFor();
  await page.getByRole('link', { name: 'Account' }).click();
  const events = page.getByRole('list', { name: 'Security events' });
  const failedSignIn = events.locator('li[data-event="auth.login"][data-outcome="failure"]');
  await failedSignIn.waitFor();
  // Whoever typed a wrong password may be someone else: their address is not shown (DATA-6);
  // the user's own sign-in shows theirs.
  const failedText = await failedSignIn.textContent();
  assert.match(failedText, /Sign-in.*failed \(invalid credentials\)/);
  assert.doesNotMatch(failedText, /127\.0\.0\.1/);
  const ownSignIn = events.locator('li[data-event="auth.login"][data-outcome="success"]').first();
  await ownSignIn.waitFor();
  assert.match(await ownSignIn.textContent(), /127\.0\.0\.1/);

  // The export arrives as a file download, made from a Blob (no navigation, no inline script).
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download my data' }).click()]);
  assert.equal(download.suggestedFilename(), 'conclave-export.json');
  const archive = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(archive.format, 'conclave-export-v1');
  assert.equal(archive.user.username, 'erin');
  assert.equal(archive.two_factor_enabled, false);
  assert.ok(archive.audit_events.some((e) => e.event === 'auth.login' && e.outcome === 'failure'), 'the archive holds the failed sign-in');
  assert.ok(!JSON.stringify(archive).includes('password_hash'), 'no secrets in the archive');
  await page.getByText('Saved conclave-export.json.').waitFor();
  await page.screenshot({ path: join(SHOTS, 'client-account.png'), fullPage: true });

  // A wrong password: the server's error, with its field, and nothing deleted.
  const danger = page.getByRole('form', { name: 'Delete my account' });
  await danger.getByLabel('Current password').fill('not my password');
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Cancel' }).click();
  await danger.getByRole('alertdialog').waitFor({ state: 'detached' });
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Yes, delete my account forever' }).click();
  await danger.getByRole('alert').filter({ hasText: /^Password: / }).waitFor();
  assert.equal(await danger.getByLabel('Current password').getAttribute('aria-invalid'), 'true');
  assert.equal((await rest('POST', '/auth/login', null, { username: 'erin', password: PASSWORD })).status, 200);

  await danger.getByLabel('Current password').fill(PASSWORD);
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Yes, delete my account forever' }).click();
  await page.getByText('Your account was deleted.').waitFor();
  await page.getByLabel('Username').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status), 401, 'signed out');
  await page.getByLabel('Username').fill('erin');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /invalid|incorrect/i }).waitFor();
  assert.equal((await rest('POST', '/auth/login', null, { username: 'erin', password: PASSWORD })).status, 401);
  await erin.context.close();
});

test('an admin impersonates a user: the token is shown once and the user is told', async () => {
  const login = await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD });
  const made = await rest('POST', '/admin/users', login.body.token, { username: 'frank', password: PASSWORD });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const { page } = admin;
  await page.goto(`${base}/admin#/users`);
  await page.getByRole('button', { name: 'Impersonate frank' }).waitFor();
  const adminRow = page.getByRole('row', { name: /^admin/ });
  assert.equal(await adminRow.getByRole('button', { name: /^Impersonate/ }).count(), 0, 'not yourself');
  await page.getByRole('button', { name: 'Impersonate frank' }).click();
  const box = page.getByRole('status').filter({ hasText: 'Impersonation token for frank' });
  await box.waitFor();
  assert.match(await box.textContent(), /Anyone holding this token acts as frank/);
  assert.match(await box.textContent(), /shown only once/);
  const token = await page.getByLabel('Token to act as frank').inputValue();
  assert.ok(token.length > 20);
  const asFrank = await fetch(`${base}/api/v1/users/@me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(asFrank.status, 200);
  assert.equal((await asFrank.json()).username, 'frank');
  await page.screenshot({ path: join(SHOTS, 'admin-impersonate.png') });
  // The admin's browser keeps its own session and stores nothing.
  const mine = await page.evaluate(async () => ({
    who: (await (await fetch('/api/v1/auth/session')).json()).user.username,
    stored: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
  }));
  assert.deepEqual(mine, { who: 'admin', stored: '{}{}' });
  assert.ok(!(await admin.context.cookies()).some((c) => c.value === token), 'the token is no cookie');
  await page.reload();
  await page.getByRole('button', { name: 'Impersonate frank' }).waitFor();
  assert.equal(await page.getByLabel('Token to act as frank').count(), 0, 'shown once');

  const frank = await newUser();
  await signInAs(frank.page, 'frank');
  await frank.page.getByText('Signed in as frank').waitFor();
  await frank.page.goto(`${base}/#/account`);
  const flagged = frank.page.getByRole('list', { name: 'Security events' }).locator('li[data-event="impersonation.started"]');
  await flagged.waitFor();
  assert.match(await flagged.textContent(), /Impersonation by an administrator.*signed in as you/);
  await frank.page.screenshot({ path: join(SHOTS, 'client-account-impersonated.png'), fullPage: true });
  await frank.page.setViewportSize({ width: 375, height: 740 });
  assert.ok((await overflowOf(frank.page)) <= 0, 'the account page fits a phone screen');
  await frank.page.goto(`${base}/#/sessions`);
  const session = frank.page.getByRole('list', { name: 'Signed-in sessions' }).getByRole('listitem').filter({ hasText: 'Impersonated by an administrator' });
  await session.waitFor();
  assert.equal(await session.count(), 1);
  // Frank may end it like any other session.
  await session.getByRole('button', { name: /^Revoke session/ }).click();
  await session.waitFor({ state: 'detached' });
  assert.equal((await fetch(`${base}/api/v1/users/@me`, { headers: { Authorization: `Bearer ${token}` } })).status, 401);
  await frank.context.close();
});

test('the admin console screens', async () => {
  const { page } = admin;
  await page.goto(`${base}/admin#/orgs`);
  await page.getByRole('heading', { name: 'Acme' }).waitFor();
  await page.getByText('Permissions by role').click();
  const deleteOrg = page.getByRole('row', { name: /^delete org/ });
  assert.deepEqual(await deleteOrg.getByRole('cell').allTextContents(), ['yes', 'no', 'no', 'no']);
  await page.screenshot({ path: join(SHOTS, 'admin-orgs.png') });
  await bob.context.close();
  await admin.context.close();
});

test('with the access-token gate the sign-in page asks for the access code and every request carries it', async () => {
  const ACCESS = `access-${randomBytes(12).toString('hex')}`;
  const gatedDir = mkdtempSync(join(tmpdir(), 'conclave-web-gated-'));
  const port = await freePort();
  const gatedBase = `http://127.0.0.1:${port}`;
  let gatedLog = '';
  const gated = spawnServer(port, gatedBase, gatedDir, { CONCLAVE_ACCESS_TOKEN: ACCESS }, (d) => (gatedLog += d));
  const user = await newUser();
  try {
    await waitFor(async () => (await fetch(`${gatedBase}/health`)).ok, `the gated server to answer\n${gatedLog}`);
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
    await user.context.close();
    gated.kill('SIGTERM');
    rmSync(gatedDir, { recursive: true, force: true });
  }
});

test('a conversation moderator removes a member, and a plain member sees no Remove button', async () => {
  // Self-contained: its own users, org and conversation, made through the API.
  const adminToken = (await rest('POST', '/auth/login', null, { username: 'admin', password: PASSWORD })).body.token;
  const tag = randomBytes(3).toString('hex');
  const [moderator, member, target] = ['mod', 'mem', 'tgt'].map((n) => `${n}${tag}`);
  const ids = {};
  for (const name of [moderator, member, target]) {
    const made = await rest('POST', '/admin/users', adminToken, { username: name, password: PASSWORD });
    assert.equal(made.status, 201);
    ids[name] = made.body.id;
  }
  const org = (await rest('POST', '/orgs', adminToken, { name: `Moderated ${tag}` })).body;
  for (const name of [moderator, member, target]) {
    assert.equal((await rest('POST', `/orgs/${org.id}/members`, adminToken, { user_id: ids[name], role: 'member' })).status, 201);
  }
  const conv = (await rest('POST', `/orgs/${org.id}/conversations`, adminToken, { kind: 'group', name: `mods ${tag}`, participant_ids: [ids[member], ids[target]] })).body;
  assert.equal((await rest('POST', `/conversations/${conv.id}/participants`, adminToken, { user_id: ids[moderator], role: 'moderator' })).status, 201);

  const mod = await newUser();
  await signInAs(mod.page, moderator);
  await mod.page.getByText(`Signed in as ${moderator}`).waitFor();
  await mod.page.goto(`${base}/#/c/${conv.id}`);
  const remove = mod.page.getByRole('button', { name: `Remove ${target}` });
  await remove.waitFor({ timeout: 10_000 });
  await remove.click();
  await remove.waitFor({ state: 'detached' });
  const left = await rest('GET', `/conversations/${conv.id}/participants`, adminToken);
  assert.equal(left.status, 200);
  assert.ok(!left.body.items.some((p) => p.user.id === ids[target]), 'the server removed the member');
  assert.ok(left.body.items.some((p) => p.user.id === ids[member]), 'the others stay');

  const plain = await newUser();
  await signInAs(plain.page, member);
  await plain.page.getByText(`Signed in as ${member}`).waitFor();
  await plain.page.goto(`${base}/#/c/${conv.id}`);
  await plain.page.locator(`.people li[data-user-id="${ids[moderator]}"]`).waitFor();
  assert.equal(await plain.page.getByRole('button', { name: /^Remove / }).count(), 0, 'a plain member is offered no Remove');
  await mod.context.close();
  await plain.context.close();
  assert.equal((await rest('DELETE', `/orgs/${org.id}`, adminToken)).status, 204);
});
