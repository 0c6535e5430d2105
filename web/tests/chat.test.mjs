// Browser tests of the chat client: invitations, live messages (edit, delete, typing), older
// pages, removing a participant (by an owner and by a moderator), hostile content, reconnecting after a restart, and direct
// conversations with unread counts kept by read markers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, literal, log, setup, waitFor } from './harness.mjs';

const h = setup();

/** `owner` and `others` in a new org "Acme" (owner's), each signed in over REST. */
async function team(...others) {
  const owner = await h.createUser('ann', { serverAdmin: true });
  const people = [];
  for (const name of others) people.push(await h.createUser(name));
  const org = await h.createOrg(owner, 'Acme', people);
  return { owner, people, org };
}

/** A browser of `user` with conversation `id` open. */
async function onConversation(user, id) {
  const opened = await h.browse(user);
  await opened.page.goto(`${h.base}/#/c/${id}`);
  await log(opened.page).waitFor();
  return opened;
}

test('an owner invites a person by username, who sees the invitation and accepts it', async () => {
  const owner = await h.createUser('owner', { serverAdmin: true });
  await h.createOrg(owner, 'Acme');
  const fernUser = await h.createUser('fern');
  const fernName = fernUser.username;
  const harbor = await h.createOrg(owner, 'Harbor');
  const { page } = await h.browse(owner);
  await page.locator('#org-select').selectOption({ label: 'Harbor' });
  await page.getByLabel('Username to invite to Harbor').fill(fernName);
  await page.getByLabel('Role for the invited person').selectOption('admin');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.getByText(`Invited ${fernName}: they join once they accept.`).waitFor();
  // Nothing happens to fern until she accepts.
  const fernToken = fernUser.token;
  assert.equal((await h.rest('GET', `/orgs/${harbor.id}`, fernToken)).status, 404);
  const fern = await h.newUser();
  await h.signInAs(fern.page, fernName);
  const accept = fern.page.getByRole('button', { name: 'Accept the invitation to Harbor' });
  await accept.waitFor();
  await fern.page.screenshot({ path: join(SHOTS, 'client-invitations.png') });
  await accept.click();
  await fern.page.getByRole('option', { name: 'Harbor' }).waitFor({ state: 'attached' });
  await fern.page.getByText('No invitations.').waitFor();
  assert.equal((await h.rest('GET', `/orgs/${harbor.id}`, fernToken)).body.role, 'admin');
  // The console lists the org's invites with a revoke button each.
  await page.goto(`${h.base}/admin#/orgs`);
  await page.getByRole('button', { name: `Revoke the invite for ${fernName}` }).waitFor();
  assert.deepEqual(fern.seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  assert.equal((await h.rest('DELETE', `/orgs/${harbor.id}`, owner.token)).status, 204);
});

test('two users exchange, edit and delete messages live', async () => {
  const { owner, people: [bobUser] } = await team('bob');
  const bobName = bobUser.username;
  const { page } = await h.browse(owner);
  await page.getByLabel('New conversation name').fill('general');
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await page.waitForURL(/#\/c\/[0-9a-f-]{36}$/);
  const conversationId = new URL(page.url()).hash.slice('#/c/'.length);
  await log(page).waitFor();

  const bob = await h.newUser();
  await h.signInAs(bob.page, bobName);
  await bob.page.getByRole('button', { name: 'Join general' }).click();
  await bob.page.waitForURL(`${h.base}/#/c/${conversationId}`);
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

  // The owner's messages carry no edit or delete controls for bob.
  const ownersMessage = log(bob.page).locator('[data-message-id]', { hasText: 'Hello Bob' });
  assert.equal(await ownersMessage.getByRole('button').count(), 0);

  // Typing reaches the other side.
  await bob.page.getByLabel('Message', { exact: true }).fill('typing…');
  await page.getByText(`${bobName} is typing…`).waitFor();
  await bob.page.getByLabel('Message', { exact: true }).fill('');

  // A reload opens the same conversation from the address alone.
  await bob.page.reload();
  await log(bob.page).getByText('Hello Bob, welcome aboard!').waitFor();
  await page.screenshot({ path: join(SHOTS, 'client-conversation.png') });
});

test('older messages load on request', async () => {
  const { owner, org } = await team();
  const conv = await h.createConversation(owner, org.id, 'history', { visibility: 'private' });
  for (let i = 1; i <= 60; i += 1) await h.send(owner, conv.id, `history #${i}.`);
  const { page } = await h.browse(owner);
  await page.goto(`${h.base}/#/c/${conv.id}`);
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

test('a removed participant stops seeing the conversation', async () => {
  const { owner, people: [bobUser], org } = await team('bob');
  const general = await h.createConversation(owner, org.id, 'general', { participants: [bobUser] });
  const conversationId = general.id;
  const bob = await onConversation(bobUser, conversationId);
  const { page } = await onConversation(owner, conversationId);
  await page.getByRole('button', { name: `Remove ${bobUser.username}` }).click();
  await bob.page.getByText('You were removed from this conversation.').waitFor();
  await page.getByLabel('Message', { exact: true }).fill('Only for those still here');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await log(page).getByText('Only for those still here').waitFor();
  await bob.page.goto(`${h.base}/#/c/${conversationId}`);
  await bob.page.reload();
  await bob.page.getByText('does not exist or you are not a participant').waitFor();
  assert.equal(await bob.page.getByText('Only for those still here').count(), 0);
  const status = await bob.page.evaluate(async (id) => (await fetch(`/api/v1/conversations/${id}/messages`)).status, conversationId);
  assert.ok([403, 404].includes(status), `bob can no longer read it over REST (${status})`);
});

test('a conversation moderator removes a member, and a plain member sees no Remove button', async () => {
  // The client shows controls from the conversation's `permissions` (issue 11): moderators
  // remove members, plain members are offered nothing.
  const { owner, people: [modUser, memberUser, targetUser], org } = await team('mod', 'mem', 'tgt');
  const conv = await h.createConversation(owner, org.id, 'moderated', { participants: [memberUser, targetUser] });
  const made = await h.rest('POST', `/conversations/${conv.id}/participants`, owner.token, { user_id: modUser.id, role: 'moderator' });
  assert.equal(made.status, 201, JSON.stringify(made.body));

  const mod = await onConversation(modUser, conv.id);
  const remove = mod.page.getByRole('button', { name: `Remove ${targetUser.username}` });
  await remove.waitFor({ timeout: 10_000 });
  await remove.click();
  await remove.waitFor({ state: 'detached' });
  const left = await h.rest('GET', `/conversations/${conv.id}/participants`, owner.token);
  assert.equal(left.status, 200);
  assert.ok(!left.body.items.some((p) => p.user.id === targetUser.id), 'the server removed the member');
  assert.ok(left.body.items.some((p) => p.user.id === memberUser.id), 'the others stay');

  const plain = await onConversation(memberUser, conv.id);
  await plain.page.locator(`.people li[data-user-id="${modUser.id}"]`).waitFor();
  assert.equal(await plain.page.getByRole('button', { name: /^Remove / }).count(), 0, 'a plain member is offered no Remove');
});

test('hostile message content executes nothing', async () => {
  const { owner, org } = await team();
  const conversationId = (await h.createConversation(owner, org.id, 'general')).id;
  const { page, seen } = await onConversation(owner, conversationId);
  seen.errors.length = 0;
  const payloads = [
    ['text', '<script>window.__xss = 1; alert("text-script")</script>'],
    ['html', '<p>hi<script>window.__xss = 2; alert("html-script")</script></p>'],
    ['html', '<img src="/nothing.png" onerror="window.__xss = 3; alert(\'onerror\')"> image payload'],
    ['html', '<a href="javascript:window.__xss=4;alert(\'js-link\')">click me</a>'],
    ['html', '<svg onload="window.__xss=5;alert(\'svg\')"><script>alert("svg-script")</script></svg> svg payload'],
    ['html', '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe><strong>bold</strong> and <a href="https://example.com/">a real link</a>'],
    ['text', '<img src=x onerror=alert("text-img")>'],
  ];
  const token = await h.login(owner.username);
  for (const [format, content] of payloads) {
    const r = await h.rest('POST', `/conversations/${conversationId}/messages`, token, { content, format });
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

test('the client reconnects after a server restart and gets live messages again', async () => {
  const { owner, org } = await team();
  const conversationId = (await h.createConversation(owner, org.id, 'general')).id;
  const { page } = await onConversation(owner, conversationId);
  await page.locator('#connection[data-state="online"]').waitFor({ state: 'attached' });
  await h.server.stop();
  await page.locator('#connection[data-state="reconnecting"]').waitFor();
  await h.server.listen();
  await page.locator('#connection[data-state="online"]').waitFor({ state: 'attached', timeout: 15_000 });
  const sent = await h.rest('POST', `/conversations/${conversationId}/messages`, await h.login(owner.username), { content: 'after the restart', format: 'text' });
  assert.equal(sent.status, 201);
  await log(page).getByText('after the restart').waitFor();
});

test('direct conversations, with unread counts kept by read markers across sessions', async () => {
  const { owner, people: [bobUser], org } = await team('bob');
  const conversationId = (await h.createConversation(owner, org.id, 'general', { participants: [bobUser] })).id;
  const ownerName = owner.username;
  const bobName = bobUser.username;
  const { page } = await h.browse(owner);
  const bob = await h.browse(bobUser);
  const unread = (p, id) => p.locator(`[data-conversation-id="${id}"] .unread`);
  await page.goto(`${h.base}/`);
  await page.reload();
  await page.getByLabel('Start a direct conversation with').selectOption({ label: bobName });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/c\/[0-9a-f-]{36}$/);
  const directId = new URL(page.url()).hash.slice('#/c/'.length);
  assert.notEqual(directId, conversationId);
  await page.getByRole('heading', { name: bobName, exact: true }).waitFor();
  await page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: bobName }).waitFor();

  // Bob is told live, and the conversation carries the owner's name on his side.
  await bob.page.goto(`${h.base}/`);
  await bob.page.reload();
  const bobsLink = bob.page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: new RegExp(`^${literal(ownerName)}`) });
  await bobsLink.waitFor();
  assert.equal(await bobsLink.getAttribute('href'), `#/c/${directId}`);

  for (const text of ['Hi Bob, a word in private?', 'It is about the launch.']) {
    await page.getByLabel('Message', { exact: true }).fill(text);
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await log(page).getByText(text).waitFor();
  }
  await waitFor(async () => (await unread(bob.page, directId).getAttribute('data-count')) === '2', "bob's unread count of 2");
  assert.equal(await bobsLink.textContent(), `${ownerName}2 unread`);
  // The sender has read what they sent.
  assert.equal(await unread(page, directId).count(), 0);

  // READY carries the count: a reload and a second session of bob show it too.
  await bob.page.reload();
  await waitFor(async () => (await unread(bob.page, directId).getAttribute('data-count')) === '2', 'the count after a reload');
  const bob2 = await h.newUser();
  await h.signInAs(bob2.page, bobName);
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
  await bob2.page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: ownerName }).waitFor();
  assert.equal(await unread(bob2.page, directId).count(), 0, 'the server keeps the marker: READY counts nothing unread');
  // The owner, on another page, gets a count for bob's reply and loses it on opening.
  await page.goto(`${h.base}/#/sessions`);
  await bob.page.getByLabel('Message', { exact: true }).fill('Ping.');
  await bob.page.getByLabel('Message', { exact: true }).press('Enter');
  await waitFor(async () => (await unread(page, directId).getAttribute('data-count')) === '1', "the owner's unread count");
  await page.getByRole('list', { name: 'Direct conversations' }).getByRole('link', { name: new RegExp(`^${literal(bobName)}`) }).click();
  await log(page).getByText('Ping.').waitFor();
  await unread(page, directId).waitFor({ state: 'detached' });

  // Starting again with the same person opens the same conversation.
  await page.goto(`${h.base}/`);
  await page.getByLabel('Start a direct conversation with').selectOption({ label: bobName });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(`${h.base}/#/c/${directId}`);
  assert.equal(await page.getByRole('list', { name: 'Direct conversations' }).getByRole('listitem').count(), 1);
});
