// Browser tests of the embeddable support widget and the support inbox (WEB-4, WEB-3): the
// script itself, a chat end to end (streamed AI answer, handoff, a person answering from the
// inbox), the live inbox, a reconnect after a dropped connection, the keyboard, the pre-chat
// form and the console's widget keys. The sites, the proxy and `Probe` are in widget-site.mjs;
// what hostile pages and payloads cannot do is in widget-security.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, log, waitFor } from './harness.mjs';
import { ALLOWED, ANSWER, OTHER, errorsOf, h, openChat, proxy, supportDesk, take, visit } from './widget-site.mjs';

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

  // MSG-2: a reply its sender deletes leaves the visitor's view at once (the stream's `delete`).
  const oops = await h.send(desk.staff, conv.id, 'Sent by mistake.');
  await probe.waitMessage((m) => m.text === 'Sent by mistake.', 'the mistaken reply');
  const gone = await h.rest('DELETE', `/messages/${oops.id}`, desk.staff.token);
  assert.equal(gone.status, 204, JSON.stringify(gone.body));
  const without = async () => !(await probe.messages()).some((m) => m.text === 'Sent by mistake.');
  await waitFor(without, 'the deleted reply taken away');
  assert.deepEqual((await probe.messages()).map((m) => m.text), [...texts]);
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
