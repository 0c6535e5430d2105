// Browser tests of single sign-on in the chat client. An account a host app's JWT made
// (AUTH-11) has no password: its account page deletes it after a recent sign-in instead
// (DATA-6), and offers to sign in again when the sign-in is too old. With the access-token gate
// on (AUTH-9), "Sign in with …" starts the OpenID sign-in (AUTH-10) with a request that
// carries the access code, goes through the real oidc-provider and comes back signed in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, setup, waitFor } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const SECRET = randomBytes(32).toString('hex');
const ISS = 'https://host.example';
const AUD = 'https://chat.example';
const dir = mkdtempSync(join(tmpdir(), 'conclave-sso-'));
const hostConfig = join(dir, 'host.toml');
writeFileSync(
  hostConfig,
  `[[host_jwt]]\nid = "host"\nissuer = "${ISS}"\naudience = "${AUD}"\nalgorithms = ["HS256"]\nsecret = "${SECRET}"\ncreate_users = true\n`,
);
const h = setup({ args: ['--config', hostConfig] });

/** An HS256 JWT of the host naming `sub` (signed with node's HMAC, as a host app would). */
function hostJwt(sub, username) {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signed = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: ISS, aud: AUD, sub, preferred_username: username, iat: now - 5, exp: now + 120 })}`;
  return `${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`;
}

/** Signs the page in with a host JWT for `sub` (a cookie session, as an embedding host does). */
async function signInWithJwt(page, sub, username) {
  await page.goto(`${h.base}/`);
  await page.getByLabel('Username').waitFor();
  const answer = await page.evaluate(async (token) => {
    const r = await fetch('/api/v1/auth/jwt', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token, cookie: true }) });
    return { status: r.status, body: await r.json() };
  }, hostJwt(sub, username));
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.user;
}

test('an account made by single sign-on deletes itself after a recent sign-in', async () => {
  const { page, seen } = await h.newUser();
  const username = h.name('sso');
  const sub = `sub-${username}`;
  const user = await signInWithJwt(page, sub, username);

  // A sign-in older than ten minutes (the session's creation time shown eleven minutes back):
  // no password to ask for, so the page says why it cannot go on and offers to sign in again.
  await page.route('**/api/v1/auth/session', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.session.created_at = new Date(Date.now() - 11 * 60 * 1000).toISOString();
    await route.fulfill({ response: res, json: body });
  });
  await page.goto(`${h.base}/#/account`);
  await page.reload();
  const danger = page.getByRole('form', { name: 'Delete my account' });
  await danger.getByText('has no password').waitFor();
  assert.equal(await danger.getByLabel('Current password').count(), 0, 'no password is asked for');
  await danger.getByRole('button', { name: 'Sign out and sign in again' }).waitFor();
  // The server's refusal of an old sign-in shows the same way out.
  await page.route('**/api/v1/users/@me', (route) =>
    route.request().method() === 'DELETE'
      ? route.fulfill({ status: 403, json: { error: { code: 'reauthentication_required', message: 'sign in again' } } })
      : route.fallback(),
  );
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Yes, delete my account forever' }).click();
  // (Below the form's own note, which said so already.)
  await danger.getByText('Your sign-in is more than ten minutes old.').nth(1).waitFor();
  await page.unrouteAll();

  // Signed in just now: the page says until when, and the account goes (the server decides:
  // the request carries no password).
  await page.reload();
  await danger.getByText(/you can delete the account until/).waitFor();
  const erased = page.waitForRequest((r) => r.method() === 'DELETE' && r.url().endsWith('/api/v1/users/@me'));
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Yes, delete my account forever' }).click();
  assert.deepEqual(JSON.parse((await erased).postData()), {});
  await page.getByText('Your account was deleted.').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status), 401, 'signed out');
  // The host vouching for the same subject again makes a new account, not the erased one.
  const again = await signInWithJwt(page, sub, username);
  assert.notEqual(again.id, user.id);
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

/** A TCP port nobody listens on now. */
async function freePort() {
  const srv = createServer();
  await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address();
  await new Promise((ok) => srv.close(ok));
  return port;
}

/** The real provider (web/tests/oidc-provider.mjs) for `redirectUri`: `{issuer, stop}`. */
async function oidcProvider(redirectUri, accounts) {
  const config = { client_id: 'conclave-web', client_secret: 'conclave web test secret', redirect_uri: redirectUri, accounts };
  const child = spawn(process.execPath, [join(here, 'oidc-provider.mjs'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await waitFor(() => out.includes('\n') || child.exitCode !== null, 'the OpenID provider to start');
  const { issuer } = JSON.parse(out.split('\n')[0]);
  return { issuer, config, stop: () => child.kill('SIGTERM') };
}

test('with the access-token gate, "Sign in with …" signs in through the OpenID provider', async () => {
  const ACCESS = `access-${randomBytes(12).toString('hex')}`;
  const port = await freePort();
  const op = await oidcProvider(`http://127.0.0.1:${port}/api/v1/auth/oidc/corp/callback`, {
    'web-olive': { email: 'olive@op.example', email_verified: true, preferred_username: 'olive', name: 'Olive' },
  });
  const opPort = new URL(op.issuer).port;
  const config = join(dir, 'gated.toml');
  writeFileSync(
    config,
    [
      'webhook_allow_cidrs = ["127.0.0.1/32"]',
      `webhook_allow_ports = [${opPort}]`,
      '[[oidc.providers]]',
      'id = "corp"',
      'name = "Corp"',
      `issuer = "${op.issuer}"`,
      `client_id = "${op.config.client_id}"`,
      `client_secret = "${op.config.client_secret}"`,
      'create_users = true',
      'allow_insecure_http = true',
      '',
    ].join('\n'),
  );
  const gated = new Server({ CONCLAVE_ACCESS_TOKEN: ACCESS }, ['--config', config]);
  gated.port = port;
  const { page, seen } = await h.newUser();
  try {
    await gated.listen();
    // A navigation to the start cannot carry the access code: refused, no state cookie.
    const direct = await fetch(`${gated.base}/api/v1/auth/oidc/corp/start`, { redirect: 'manual' });
    assert.equal(direct.status, 401);
    assert.equal(direct.headers.get('set-cookie'), null);

    const requests = [];
    page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), code: r.headers()['x-api-access-token'] }));
    await page.goto(`${gated.base}/`);
    const provider = page.getByRole('button', { name: 'Sign in with Corp' });
    // Without the access code typed first, the page asks for it and starts nothing.
    await provider.click();
    await page.getByText('Enter the access code of this server first.').waitFor();
    assert.ok(!requests.some((r) => r.url.includes('/auth/oidc/')), 'nothing started');
    await page.getByLabel('Access code').fill(ACCESS);
    await provider.click();
    // oidc-provider's own login and consent pages.
    await page.waitForURL((u) => u.origin === new URL(op.issuer).origin);
    await page.locator('input[name="login"]').fill('web-olive');
    await page.locator('input[name="password"]').fill('any');
    await page.locator('button[type="submit"]').click();
    await page.locator('button[type="submit"]').click();
    await page.getByText('Signed in as olive').waitFor();
    const start = requests.find((r) => r.url.endsWith('/api/v1/auth/oidc/corp/start'));
    assert.equal(start.method, 'POST');
    assert.equal(start.code, ACCESS, 'the start carried the access code');
    const callback = requests.find((r) => r.url.includes('/api/v1/auth/oidc/corp/callback'));
    assert.ok(callback, 'the provider sent the browser back');
    const after = requests.slice(requests.indexOf(callback) + 1).filter((r) => new URL(r.url).pathname.startsWith('/api/v1/'));
    assert.ok(after.length > 0);
    for (const r of after) assert.equal(r.code, ACCESS, `${r.url} carries the access code`);
    assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await h.closeContexts();
    await gated.destroy();
    op.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
