// Browser tests of the admin console's Webhooks section against a receiver on 127.0.0.1 (the
// server's SSRF guard lets 127.0.0.0/8 and the receiver's port through): create (the secret
// shown once, masked after), a refused URL, a test event the receiver gets signed with that
// secret, rotation (both secrets sign), deliveries with a failed attempt and a redelivery,
// disable, enable and delete; and an org where the signed-in admin is only a member.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { SHOTS, literal, overflowOf, setup, waitFor } from './harness.mjs';

/** What the receiver got: `{headers, body}` each, oldest first. It answers `receiver.status`. */
const received = [];
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(receiver.status);
    res.end();
  });
});
receiver.status = 200;
await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
const port = receiver.address().port;
after(() => new Promise((ok) => receiver.close(ok)));

const h = setup({ env: { CONCLAVE_WEBHOOK_ALLOW_CIDRS: '127.0.0.0/8', CONCLAVE_WEBHOOK_ALLOW_PORTS: String(port) } });

/** Whether `secret` (`whsec_…`) made one of the Standard Webhooks signatures of `delivery`. */
function signedWith(delivery, secret) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const { 'webhook-id': id, 'webhook-timestamp': at, 'webhook-signature': signatures } = delivery.headers;
  const want = createHmac('sha256', key).update(`${id}.${at}.${delivery.body}`).digest();
  return signatures.split(' ').some((s) => {
    const got = Buffer.from(s.replace(/^v1,/, ''), 'base64');
    return got.length === want.length && timingSafeEqual(got, want);
  });
}

/** The deliveries the receiver got of `type`. */
const deliveriesOf = (type) => received.filter((d) => JSON.parse(d.body).type === type);

test('an org admin manages a webhook and its deliveries in the console', async () => {
  const admin = await h.createUser('admin', { serverAdmin: true });
  const owner = await h.createUser('owner');
  const acme = await h.createOrg(admin, 'Acme');
  // Harbor is another's org, where the admin is only a member.
  await h.createOrg(owner, 'Harbor', [admin]);
  const { page, seen } = await h.browse(admin);
  await page.goto(`${h.base}/admin#/webhooks`);
  const card = page.getByRole('region', { name: 'Webhooks of Acme' });
  await card.getByRole('button', { name: 'Create webhook' }).waitFor();
  const harbor = page.getByRole('region', { name: 'Webhooks of Harbor' });
  assert.match(await harbor.textContent(), /Your role here is member: only owners and admins of Harbor manage its webhooks\./);
  assert.equal(await harbor.getByRole('button').count(), 0);

  // The SSRF guard refuses a link-local address: the field is marked and the reason shown.
  await card.getByLabel('Endpoint URL').fill('http://169.254.169.254/latest/meta-data');
  await card.getByRole('button', { name: 'Create webhook' }).click();
  await card.getByRole('alert').filter({ hasText: 'not allowed' }).waitFor();
  assert.equal(await card.getByLabel('Endpoint URL').getAttribute('aria-invalid'), 'true');

  const url = `http://127.0.0.1:${port}/hooks/acme`;
  await card.getByLabel('Endpoint URL').fill(url);
  await card.getByLabel('member.added').check();
  await card.getByRole('button', { name: 'Create webhook' }).click();
  const secretField = card.getByLabel(`Signing secret of webhook ${url}`);
  await secretField.waitFor();
  const secret = await secretField.inputValue();
  assert.match(secret, /^whsec_/);
  const row = card.getByRole('row', { name: new RegExp(`^${literal(url)}`) });
  assert.match(await row.textContent(), /message\.created, member\.added.*All of the organization.*enabled/);
  const masked = await row.locator('code').nth(1).textContent();
  assert.equal(masked, `whsec_****${secret.slice(-4)}`, 'the list shows the secret masked');
  const listed = await h.rest('GET', `/orgs/${acme.id}/webhooks`, admin.token);
  assert.equal(listed.body.items.length, 1);
  assert.deepEqual(listed.body.items[0].events, ['message.created', 'member.added']);

  // A test event reaches the receiver signed with the secret shown, and the log says so.
  await row.getByRole('button', { name: `Send a test event to webhook ${url}` }).click();
  const panel = card.getByRole('region', { name: `Deliveries of ${url}` });
  const firstDelivery = panel.locator('tr[data-delivery-id]').first();
  await waitFor(async () => (await firstDelivery.textContent()).includes('delivered'), 'the test delivery');
  assert.match(await firstDelivery.textContent(), /webhook\.test.*delivered1200\d+ ms/);
  const test1 = deliveriesOf('webhook.test');
  assert.equal(test1.length, 1);
  assert.ok(signedWith(test1[0], secret), 'signed with the secret shown once');
  assert.equal(await secretField.inputValue(), secret, 'the secret stays on show until dismissed');
  await page.screenshot({ path: join(SHOTS, 'admin-webhooks.png'), fullPage: true });

  // Rotation: a new secret, shown once; during the overlap both sign.
  await row.getByRole('button', { name: `Rotate the secret of webhook ${url}` }).click();
  await waitFor(async () => (await secretField.inputValue()) !== secret, 'the rotated secret');
  const rotated = await secretField.inputValue();
  assert.match(rotated, /^whsec_/);
  assert.match(await card.getByRole('status').first().textContent(), /previous secret keeps signing until/);
  await row.getByRole('button', { name: `Send a test event to webhook ${url}` }).click();
  await waitFor(() => deliveriesOf('webhook.test').length === 2, 'the second test event');
  const test2 = deliveriesOf('webhook.test')[1];
  assert.ok(signedWith(test2, rotated) && signedWith(test2, secret), 'both secrets sign during the overlap');
  await card.getByRole('button', { name: `Dismiss the secret of webhook ${url}` }).click();
  await secretField.waitFor({ state: 'detached' });

  // A failing receiver: the attempt's status shows; a redelivery (once it answers) arrives.
  receiver.status = 500;
  await row.getByRole('button', { name: `Send a test event to webhook ${url}` }).click();
  const failing = panel.locator('tr[data-delivery-id]').first();
  await waitFor(async () => /pending \(retry at/.test(await failing.textContent()), 'the failed attempt');
  const failedText = await failing.textContent();
  assert.match(failedText, /webhook\.test.*pending \(retry at .*\)1500/);
  assert.match(failedText, /500/);
  receiver.status = 200;
  const before = deliveriesOf('webhook.test').length;
  await failing.getByRole('button', { name: /^Redeliver the webhook\.test event of / }).click();
  const rows = panel.locator('tr[data-delivery-id]');
  await waitFor(async () => (await rows.count()) === 4, 'the redelivery listed');
  await waitFor(
    async () => (await rows.locator('td:nth-child(3)').allTextContents()).every((s) => s === 'delivered'),
    'every delivery done (the retried one and the redelivery)',
    40_000,
  );
  assert.ok(deliveriesOf('webhook.test').length >= before + 2);
  assert.ok(deliveriesOf('webhook.test').slice(before).every((d) => signedWith(d, rotated)));

  // Disable and enable (the server agrees each time), then delete.
  await row.getByRole('button', { name: `Disable webhook ${url}` }).click();
  await row.getByRole('button', { name: `Enable webhook ${url}` }).waitFor();
  assert.match(await row.textContent(), /disabled/);
  assert.equal((await h.rest('GET', `/orgs/${acme.id}/webhooks`, admin.token)).body.items[0].enabled, false);
  await row.getByRole('button', { name: `Enable webhook ${url}` }).click();
  await row.getByRole('button', { name: `Disable webhook ${url}` }).waitFor();
  assert.equal((await h.rest('GET', `/orgs/${acme.id}/webhooks`, admin.token)).body.items[0].enabled, true);
  // Shown once: after a reload only the masked form is anywhere on the page.
  await page.reload();
  await row.waitFor();
  assert.equal(await card.getByLabel(`Signing secret of webhook ${url}`).count(), 0);
  assert.equal(await page.getByText(rotated).count(), 0);
  await page.setViewportSize({ width: 375, height: 740 });
  assert.ok((await overflowOf(page)) <= 0, 'the webhooks section fits a phone screen');
  await page.setViewportSize({ width: 1280, height: 800 });
  await row.getByRole('button', { name: `Delete webhook ${url}` }).click();
  await row.waitFor({ state: 'detached' });
  assert.deepEqual((await h.rest('GET', `/orgs/${acme.id}/webhooks`, admin.token)).body.items, []);
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});
