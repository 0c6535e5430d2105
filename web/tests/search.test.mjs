// Browser tests of search (MSG-6) in the chat client: the organization's box finds messages of
// the conversations the user takes part in (not the others), a hostile message comes back as
// text with only the matching words marked, and choosing a hit opens its conversation with the
// message — 70 messages back, outside the first page — scrolled to and marked; the
// conversation's own box finds its messages only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, log, setup } from './harness.mjs';

const h = setup();

test('searching an org and a conversation, and opening a hit in its context', async () => {
  const owner = await h.createUser('ann');
  const bobUser = await h.createUser('bob');
  const org = await h.createOrg(owner, 'Acme', [bobUser]);
  const shared = await h.createConversation(owner, org.id, 'plans', { visibility: 'private', participants: [bobUser] });
  const hidden = await h.createConversation(owner, org.id, 'board', { visibility: 'private' });
  const other = await h.createConversation(owner, org.id, 'random', { visibility: 'private', participants: [bobUser] });
  const hostile = '<img src=x onerror=alert(1)> the zebra <b>crossing</b>';
  const target = await h.send(owner, shared.id, hostile);
  for (let i = 1; i <= 70; i += 1) await h.send(owner, shared.id, `filler message ${i}`);
  await h.send(owner, hidden.id, 'a zebra nobody else may read');
  await h.send(owner, other.id, 'another zebra elsewhere');

  const { page, seen } = await h.browse(bobUser);
  await page.goto(`${h.base}/#/c/${other.id}`);
  await log(page).getByText('another zebra elsewhere').waitFor();

  // The organization's box: hits of both conversations Bob is in, none of the board's.
  const orgBox = page.getByRole('search', { name: 'Search this organization' });
  await orgBox.getByRole('searchbox').fill('zebra');
  await orgBox.getByRole('button', { name: 'Search' }).click();
  const orgHits = page.getByRole('list', { name: 'Results of search this organization' }).getByRole('listitem');
  await orgHits.nth(1).waitFor();
  assert.equal(await orgHits.count(), 2);
  assert.ok(!(await page.getByRole('list', { name: 'Results of search this organization' }).textContent()).includes('nobody else'));
  const hit = page.locator(`.search-results li[data-message-id="${target.id}"]`);
  // The snippet: the hostile text as text, only the query's word marked.
  const snippet = hit.locator('.snippet');
  assert.equal(await snippet.textContent(), hostile);
  assert.deepEqual(await snippet.locator('mark').allTextContents(), ['zebra']);
  assert.equal(await snippet.locator('img, b').count(), 0, 'no markup from the message');
  await page.screenshot({ path: join(SHOTS, 'client-search.png') });

  // Choosing it opens its conversation with the message, far back, on screen and marked.
  await hit.getByRole('button').click();
  await page.waitForURL(`**/#/c/${shared.id}`);
  const found = log(page).locator(`[data-message-id="${target.id}"]`);
  await found.waitFor();
  assert.ok(await found.evaluate((n) => n.classList.contains('found')));
  assert.equal(await found.locator('.body').textContent(), hostile);
  await log(page).getByText('filler message 70', { exact: true }).waitFor();

  // The conversation's own box finds its messages only.
  const convBox = page.getByRole('search', { name: 'Search this conversation' });
  await convBox.getByRole('searchbox').fill('filler 7');
  await convBox.getByRole('button', { name: 'Search' }).click();
  const convHits = page.getByRole('list', { name: 'Results of search this conversation' }).getByRole('listitem');
  await convHits.first().waitFor();
  assert.equal(await convHits.count(), 1);
  assert.equal(await convHits.first().locator('mark').count(), 2);
  await convBox.getByRole('searchbox').fill('elsewhere');
  await convBox.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('list', { name: 'Results of search this conversation' }).getByText('No messages match.').waitFor();

  assert.deepEqual(seen.dialogs, [], 'nothing in a message ran');
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});
