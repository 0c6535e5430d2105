// Browser tests of a person's own account in the chat client: signing in with two-factor
// authentication, turning it on (QR code, recovery codes), the sessions page, security events,
// the data download and the erasure of the account.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSWORD, SHOTS, decodeQr, setup, totp } from './harness.mjs';

const h = setup();

test('sign-in with two-factor authentication', async () => {
  const carolUser = await h.createUser('carol');
  const token = carolUser.token;
  const setupAnswer = await h.rest('POST', '/auth/totp/setup', token, {});
  assert.equal(setupAnswer.status, 200);
  const enabled = await h.rest('POST', '/auth/totp/enable', token, { code: totp(setupAnswer.body.secret) });
  assert.equal(enabled.status, 200, JSON.stringify(enabled.body));

  const carol = await h.newUser();
  await h.signInAs(carol.page, carolUser.username);
  await carol.page.getByRole('heading', { name: 'Two-factor authentication' }).waitFor();
  await carol.page.getByLabel('Authentication code').fill('000000');
  await carol.page.getByRole('button', { name: 'Verify' }).click();
  await carol.page.getByRole('alert').waitFor();
  // The enabling code is used; the next step's is within the ±1 window and still fresh.
  await carol.page.getByLabel('Authentication code').fill(totp(setupAnswer.body.secret, 1));
  await carol.page.getByRole('button', { name: 'Verify' }).click();
  await carol.page.getByText(`Signed in as ${carolUser.username}`).waitFor();
  await carol.page.goto(`${h.base}/#/sessions`);
  await carol.page.getByText('This device').waitFor();
  // The session the test signed in with over REST is listed too; revoking it ends it.
  assert.equal((await h.rest('GET', '/users/@me', token)).status, 200);
  // (The revocation is awaited: a gateway READY may draw the list again meanwhile.)
  const revoked = carol.page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/v1/auth/sessions/'));
  await carol.page.getByRole('button', { name: /^Revoke session on / }).click();
  assert.equal((await revoked).status(), 204);
  await carol.page.getByRole('button', { name: /^Revoke session on / }).waitFor({ state: 'detached' });
  assert.equal((await h.rest('GET', '/users/@me', token)).status, 401);
});

test('a user turns on two-factor authentication in the client', async () => {
  const daveUser = await h.createUser('dave', { login: false });
  const dave = await h.newUser();
  const { page } = dave;
  await h.signInAs(page, daveUser.username);
  await page.getByRole('link', { name: 'Two-factor' }).click();
  const setupAnswer = page.waitForResponse((r) => r.url().endsWith('/api/v1/auth/totp/setup'));
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const setupBody = await (await setupAnswer).json();
  assert.match(setupBody.otpauth_uri, /^otpauth:\/\/totp\//);
  // The QR code on screen decodes to the very otpauth URI the API returned ...
  const qr = page.getByRole('img', { name: 'QR code for your authenticator app' });
  await qr.waitFor();
  assert.equal(await decodeQr(dave.context, await qr.screenshot()), setupBody.otpauth_uri);
  // ... and the secret is there as text for typing in by hand.
  const secret = await page.getByLabel('Secret key').inputValue();
  assert.equal(secret, setupBody.secret);
  await page.screenshot({ path: join(SHOTS, 'client-two-factor-setup.png') });
  await page.getByLabel('Code from your app').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
  await page.getByRole('list', { name: 'Recovery codes' }).waitFor();
  assert.equal(await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').count(), 10);
  await page.screenshot({ path: join(SHOTS, 'client-two-factor.png') });
  await page.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  await page.getByText('Two-factor authentication is already on.').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Username').fill(daveUser.username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('Authentication code').fill(totp(secret, 1));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText(`Signed in as ${daveUser.username}`).waitFor();
});

test('loading the lists again (a late READY, an org lockout) keeps the account page and what is typed there', async () => {
  const owner = await h.createUser('olga');
  const setup = await h.rest('POST', '/auth/totp/setup', owner.token, {});
  assert.equal((await h.rest('POST', '/auth/totp/enable', owner.token, { code: totp(setup.body.secret) })).status, 200);
  const fredUser = await h.createUser('fred', { login: false });
  const org = await h.createOrg(owner, 'Keepers', [fredUser]);
  const { page } = await h.newUser();
  await h.signInAs(page, fredUser.username);
  await page.getByText(`Signed in as ${fredUser.username}`).waitFor();
  await page.getByRole('link', { name: 'Account' }).click();
  const danger = page.getByRole('form', { name: 'Delete my account' });
  await danger.getByLabel('Current password').fill('half typed');
  // The org now requires two-factor authentication Fred lacks: ORG_ACCESS_LOST has the client
  // load its orgs and conversations again, as a late READY does.
  const reloaded = page.waitForResponse((r) => r.url().includes('/api/v1/conversations/available'));
  const required = await h.rest('PATCH', `/orgs/${org.id}`, owner.token, { require_2fa: true });
  assert.equal(required.status, 200, JSON.stringify(required.body));
  await reloaded;
  await page.waitForTimeout(300);
  assert.equal(await danger.getByLabel('Current password').inputValue(), 'half typed', 'the page was not drawn again');
});

test('a user sees their security events, downloads their data and deletes their account', async () => {
  const erinUser = await h.createUser('erin', { login: false });
  const erinName = erinUser.username;
  assert.equal((await h.rest('POST', '/auth/login', null, { username: erinName, password: 'wrong guess' })).status, 401);

  const erin = await h.newUser();
  const { page } = erin;
  await h.signInAs(page, erinName);
  await page.getByText(`Signed in as ${erinName}`).waitFor();
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
  assert.equal(archive.user.username, erinName);
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
  assert.equal((await h.rest('POST', '/auth/login', null, { username: erinName, password: PASSWORD })).status, 200);

  await danger.getByLabel('Current password').fill(PASSWORD);
  await danger.getByRole('button', { name: 'Delete my account…' }).click();
  await danger.getByRole('button', { name: 'Yes, delete my account forever' }).click();
  await page.getByText('Your account was deleted.').waitFor();
  await page.getByLabel('Username').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/auth/session')).status), 401, 'signed out');
  await page.getByLabel('Username').fill(erinName);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /invalid|incorrect/i }).waitFor();
  assert.equal((await h.rest('POST', '/auth/login', null, { username: erinName, password: PASSWORD })).status, 401);
});
