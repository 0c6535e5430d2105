// Browser tests of the admin console: users (create, disable, require 2FA, impersonate, file
// usage), orgs with their members, teams and bots, API keys, the audit log, and the
// permissions matrix. (Webhooks: webhooks.test.mjs.)
// Each test signs in a server admin of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PASSWORD, SHOTS, literal, overflowOf, setup, waitFor } from './harness.mjs';

const h = setup();

/** A new server admin, signed in to a browser: `{admin, page, context}`. */
async function consoleAdmin() {
  const admin = await h.createUser('admin', { serverAdmin: true });
  const { page, context } = await h.browse(admin);
  return { admin, page, context };
}

test('an admin creates users, an org with members and an API key in the console', async () => {
  const { admin, page } = await consoleAdmin();
  const bob = h.name('bob');
  const carol = h.name('carol');
  await page.goto(`${h.base}/admin#/users`);
  for (const name of [bob, carol]) {
    await page.getByLabel('Username').fill(name);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('cell', { name, exact: true }).waitFor();
  }
  await page.goto(`${h.base}/admin#/orgs`);
  await page.getByLabel('Organization name').fill('Acme');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByRole('heading', { name: 'Acme' }).waitFor();
  for (const name of [bob, carol]) {
    await page.getByLabel('Username to add to Acme').fill(name);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('cell', { name, exact: true }).waitFor();
  }
  await page.goto(`${h.base}/admin#/api-keys`);
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
  await page.goto(`${h.base}/admin#/users`);
  await page.getByRole('button', { name: `Disable ${carol}` }).waitFor();
  // Requiring 2FA of carol: the console shows it, and the server enforces it on her session.
  await page.getByRole('button', { name: `Require 2FA for ${carol}` }).click();
  await page.getByRole('button', { name: `Stop requiring 2FA for ${carol}` }).waitFor();
  const carolRow = page.locator('tr', { hasText: carol });
  assert.ok((await carolRow.textContent()).includes('required'));
  const carolToken = await h.login(carol);
  const carolOrgs = await h.rest('GET', '/orgs', carolToken);
  assert.equal(carolOrgs.status, 403);
  assert.equal(carolOrgs.body.error.code, 'mfa_setup_required');
  await page.screenshot({ path: join(SHOTS, 'admin-users.png') });
  // Lifted again, and her session reaches everything once more.
  await page.getByRole('button', { name: `Stop requiring 2FA for ${carol}` }).click();
  await page.getByRole('button', { name: `Require 2FA for ${carol}` }).waitFor();
  assert.equal((await h.rest('GET', '/orgs', carolToken)).status, 200);
  assert.equal((await h.rest('POST', '/auth/logout', carolToken)).status, 204);
  await page.goto(`${h.base}/admin#/capabilities`);
  await page.getByRole('rowheader', { name: 'api_version' }).waitFor();
  // Guard statistics (RATE-6): a blocked post is counted.
  const stats = page.getByRole('table', { name: 'Content guards' });
  const guardedId = (await h.createOrg(admin, 'Guarded', [])).id;
  const made = await h.rest('POST', `/orgs/${guardedId}/guards`, admin.token, { kind: 'blocklist', mode: 'block', terms: ['darn'] });
  assert.equal(made.status, 201);
  await page.goto(`${h.base}/admin#/stats`);
  await stats.getByRole('row', { name: /^Enabled guards/ }).waitFor();
  assert.ok((await stats.getByRole('row', { name: /^Enabled guards/ }).textContent()).includes('1'));
});

test('an admin manages the teams and bots of an org in the console', async () => {
  const { admin, page } = await consoleAdmin();
  const bob = await h.createUser('bob', { login: false });
  const carol = await h.createUser('carol', { login: false });
  await h.createOrg(admin, 'Acme', [bob, carol]);
  await page.goto(`${h.base}/admin#/orgs`);
  const acme = page.getByRole('region', { name: 'Acme', exact: true });
  const teams = acme.getByRole('region', { name: 'Teams of Acme' });
  await teams.getByLabel('New team name in Acme').fill('Support');
  await teams.getByRole('button', { name: 'Create team' }).click();
  const row = teams.getByRole('row', { name: /^Support/ });
  await row.waitFor();
  for (const name of [bob.username, carol.username]) {
    await row.getByLabel('Add to team Support').selectOption({ label: name });
    await row.getByRole('button', { name: 'Add to team' }).click();
    await row.getByRole('list', { name: 'Members of team Support' }).getByText(name, { exact: true }).waitFor();
  }
  await row.getByRole('button', { name: `Remove ${bob.username} from team Support` }).click();
  await row.getByRole('button', { name: `Remove ${bob.username} from team Support` }).waitFor({ state: 'detached' });
  const token = admin.token;
  const orgId = await acme.getAttribute('data-org-id');
  const listed = await h.rest('GET', `/orgs/${orgId}/teams`, token);
  const support = listed.body.items.find((t) => t.name === 'Support');
  const users = await h.rest('GET', `/orgs/${orgId}/members?limit=100`, token);
  const idOf = (name) => users.body.items.find((m) => m.user.username === name).user.id;
  assert.deepEqual(support.member_ids, [idOf(carol.username)], 'the server has carol, and no longer bob, in the team');

  const bots = acme.getByRole('region', { name: 'Bots of Acme' });
  await bots.getByLabel('New bot name in Acme').fill('deploy-bot');
  await bots.getByRole('button', { name: 'Create bot' }).click();
  const first = await bots.getByLabel('New token of bot deploy-bot').inputValue();
  assert.match(first, /^cnv_b_/);
  const botRow = bots.getByRole('row', { name: /^deploy-bot/ });
  const masked = await botRow.locator('code').textContent();
  assert.ok(masked.includes('****') && !masked.includes(first), `the list shows the token masked: ${masked}`);
  const asBot = async (t) => (await fetch(`${h.base}/api/v1/users/@me`, { headers: { Authorization: `Bot ${t}` } })).status;
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

test('an admin filters and pages the audit log and verifies its chain', async () => {
  const { page } = await consoleAdmin();
  const bob = await h.createUser('bob');
  // More successful sign-ins than one page of ten holds, then the failed one (the newest).
  for (let i = 0; i < 10; i += 1) await h.login(bob.username);
  const failed = await h.rest('POST', '/auth/login', null, { username: bob.username, password: 'not the password' });
  assert.equal(failed.status, 401);
  await page.goto(`${h.base}/admin#/audit`);
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
  assert.match(await newest.locator('td:nth-child(4)').textContent(), new RegExp(`^user ${literal(bob.username)}`));
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
});

test('an admin impersonates a user: the token is shown once and the user is told', async () => {
  const { admin, page, context } = await consoleAdmin();
  const frankUser = await h.createUser('frank', { login: false });
  const frankName = frankUser.username;
  await page.goto(`${h.base}/admin#/users`);
  await page.getByRole('button', { name: `Impersonate ${frankName}` }).waitFor();
  const adminRow = page.getByRole('row', { name: new RegExp(`^${literal(admin.username)}`) });
  assert.equal(await adminRow.getByRole('button', { name: /^Impersonate/ }).count(), 0, 'not yourself');
  await page.getByRole('button', { name: `Impersonate ${frankName}` }).click();
  const box = page.getByRole('status').filter({ hasText: `Impersonation token for ${frankName}` });
  await box.waitFor();
  assert.match(await box.textContent(), new RegExp(`Anyone holding this token acts as ${literal(frankName)}`));
  assert.match(await box.textContent(), /shown only once/);
  const token = await page.getByLabel(`Token to act as ${frankName}`).inputValue();
  assert.ok(token.length > 20);
  const asFrank = await fetch(`${h.base}/api/v1/users/@me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(asFrank.status, 200);
  assert.equal((await asFrank.json()).username, frankName);
  await page.screenshot({ path: join(SHOTS, 'admin-impersonate.png') });
  // The admin's browser keeps its own session and stores nothing.
  const mine = await page.evaluate(async () => ({
    who: (await (await fetch('/api/v1/auth/session')).json()).user.username,
    stored: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
  }));
  assert.deepEqual(mine, { who: admin.username, stored: '{}{}' });
  assert.ok(!(await context.cookies()).some((c) => c.value === token), 'the token is no cookie');
  await page.reload();
  await page.getByRole('button', { name: `Impersonate ${frankName}` }).waitFor();
  assert.equal(await page.getByLabel(`Token to act as ${frankName}`).count(), 0, 'shown once');

  const frank = await h.browse(frankUser);
  await frank.page.goto(`${h.base}/#/account`);
  const flagged = frank.page.getByRole('list', { name: 'Security events' }).locator('li[data-event="impersonation.started"]');
  await flagged.waitFor();
  assert.match(await flagged.textContent(), /Impersonation by an administrator.*signed in as you/);
  await frank.page.screenshot({ path: join(SHOTS, 'client-account-impersonated.png'), fullPage: true });
  await frank.page.setViewportSize({ width: 375, height: 740 });
  assert.ok((await overflowOf(frank.page)) <= 0, 'the account page fits a phone screen');
  await frank.page.goto(`${h.base}/#/sessions`);
  const session = frank.page.getByRole('list', { name: 'Signed-in sessions' }).getByRole('listitem').filter({ hasText: 'Impersonated by an administrator' });
  await session.waitFor();
  assert.equal(await session.count(), 1);
  // Frank may end it like any other session.
  const revoked = frank.page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/v1/auth/sessions/'));
  await session.getByRole('button', { name: /^Revoke session/ }).click();
  assert.equal((await revoked).status(), 204);
  await session.waitFor({ state: 'detached' });
  assert.equal((await fetch(`${h.base}/api/v1/users/@me`, { headers: { Authorization: `Bearer ${token}` } })).status, 401);
});

test("an admin sees each user's file usage against the quota", async () => {
  const { admin, page } = await consoleAdmin();
  const bob = await h.createUser('bob');
  const carol = await h.createUser('carol', { login: false });
  const org = await h.createOrg(admin, 'Acme', [bob]);
  const conv = await h.createConversation(admin, org.id, 'files', { participants: [bob] });
  for (const [name, size] of [['a.txt', 1024], ['b.txt', 1536]]) {
    const made = await h.upload(bob, conv.id, name, 'x'.repeat(size), 'text/plain');
    assert.equal(made.status, 201, JSON.stringify(made.body));
  }
  await page.goto(`${h.base}/admin#/users`);
  const usage = (name) => page.getByRole('row', { name: new RegExp(`^${literal(name)}\\b`) }).locator('td.usage-cell');
  await usage(bob.username).waitFor();
  assert.equal(await usage(bob.username).locator('span').textContent(), '2.5 KiB of 1 GiB · 2 files');
  assert.equal(await usage(carol.username).locator('span').textContent(), '0 B of 1 GiB · 0 files');
  const meter = page.getByRole('meter', { name: `File storage used by ${bob.username}` });
  assert.equal(await meter.evaluate((m) => [m.value, m.max].join('/')), `2560/${1024 ** 3}`);
  await page.screenshot({ path: join(SHOTS, 'admin-users-usage.png') });
});

test('the admin console screens', async () => {
  const { admin, page } = await consoleAdmin();
  await h.createOrg(admin, 'Acme');
  await page.goto(`${h.base}/admin#/orgs`);
  await page.getByRole('heading', { name: 'Acme' }).waitFor();
  await page.getByText('Permissions by role').click();
  const deleteOrg = page.getByRole('row', { name: /^delete org/ });
  assert.deepEqual(await deleteOrg.getByRole('cell').allTextContents(), ['yes', 'no', 'no', 'no']);
  await page.screenshot({ path: join(SHOTS, 'admin-orgs.png') });
});
