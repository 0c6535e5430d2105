// Browser tests of files in the chat client, on a server with small limits (200 KiB a file,
// 300 KiB a user): attaching with the button and by drag-and-drop, progress, refusals in
// words (a type not accepted, too large, past the quota), and the other side's view — an image
// preview, a download link — with a hostile file name shown as text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SHOTS, log, setup, waitFor } from './harness.mjs';

const MAX = 200 * 1024;
const QUOTA = 300 * 1024;
const h = setup({ env: { CONCLAVE_FILES__MAX_UPLOAD_BYTES: String(MAX), CONCLAVE_FILES__USER_QUOTA_BYTES: String(QUOTA) } });

/** Ann (owner of a new org) and Bob in a new conversation "files", each with it open. */
async function pair() {
  const owner = await h.createUser('ann');
  const bobUser = await h.createUser('bob');
  const org = await h.createOrg(owner, 'Acme', [bobUser]);
  const conv = await h.createConversation(owner, org.id, 'files', { visibility: 'private', participants: [bobUser] });
  const open = async (user) => {
    const opened = await h.browse(user);
    await opened.page.goto(`${h.base}/#/c/${conv.id}`);
    await log(opened.page).waitFor();
    return opened;
  };
  return { owner, bobUser, conv, ann: await open(owner), bob: await open(bobUser) };
}

/** Files for the file chooser: `{name, mimeType, buffer}`. */
const text = (name, body) => ({ name, mimeType: 'text/plain', buffer: Buffer.from(body) });

/** The pending upload of `name` under the composer. */
const pending = (page, name) => page.getByRole('list', { name: 'Files to send' }).getByRole('listitem').filter({ hasText: name });

test('refused uploads say why in words, and nothing is sent with them', async () => {
  const { ann } = await pair();
  const page = ann.page;
  await page.getByLabel('Files to attach').setInputFiles([
    { name: 'page.html', mimeType: 'text/html', buffer: Buffer.from('<!DOCTYPE html><html><script>alert(1)</script></html>') },
    text('big.txt', 'b'.repeat(MAX + 1)),
    text('fits.txt', 'f'.repeat(150 * 1024)),
  ]);
  await pending(page, 'page.html').getByRole('alert').filter({ hasText: 'page.html was refused: this type of file is not accepted here.' }).waitFor();
  await pending(page, 'big.txt').getByRole('alert').filter({ hasText: 'big.txt is too large: files may be at most 200 KiB.' }).waitFor();
  await pending(page, 'fits.txt').getByText('ready').waitFor();
  // 150 KiB held; another 160 KiB would pass the 300 KiB quota (the server's 413).
  const quota = page.waitForResponse((r) => r.url().endsWith('/api/v1/files') && r.status() === 413);
  await page.getByLabel('Files to attach').setInputFiles([text('more.txt', 'm'.repeat(160 * 1024))]);
  assert.equal((await (await quota).json()).error.code, 'quota_exceeded');
  await pending(page, 'more.txt').getByRole('alert').filter({ hasText: /^more\.txt does not fit: it would take your files past your storage quota\./ }).waitFor();
  await page.screenshot({ path: join(SHOTS, 'client-upload-errors.png') });
  // Removing a pending file takes it off the list.
  await page.getByRole('button', { name: 'Remove page.html' }).click();
  await pending(page, 'page.html').waitFor({ state: 'detached' });
  assert.equal(await pending(page, 'big.txt').count(), 1);
});

test('a participant attaches files with the button and by dropping them; the other sees previews and links', async () => {
  const { ann, bob } = await pair();
  const page = ann.page;
  // A real PNG: a screenshot of part of the page.
  const png = await page.screenshot({ clip: { x: 0, y: 0, width: 40, height: 30 } });
  const hostile = '<img src=x onerror=alert(1)>.png';
  await page.getByLabel('Files to attach').setInputFiles([{ name: hostile, mimeType: 'image/png', buffer: png }, text('notes.txt', 'meeting notes\n')]);
  // Dropped on the composer.
  const dropped = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped on the composer\n'], 'dropped.txt', { type: 'text/plain' }));
    return dt;
  });
  await page.dispatchEvent('form.composer', 'dragenter', { dataTransfer: dropped });
  assert.ok(await page.locator('form.composer.drop-target').count(), 'the composer shows it takes the drop');
  await page.dispatchEvent('form.composer', 'drop', { dataTransfer: dropped });
  for (const name of [hostile, 'notes.txt', 'dropped.txt']) await pending(page, name).getByText('ready').waitFor();
  assert.equal(await page.locator('form.composer.drop-target').count(), 0);
  // The name is text in the pending list too.
  assert.equal(await pending(page, hostile).locator('.name').textContent(), hostile);
  await page.getByLabel('Message', { exact: true }).fill('Here are the files');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await page.getByRole('list', { name: 'Files to send' }).getByRole('listitem').first().waitFor({ state: 'detached' });

  // Bob, live: the message with an image preview and two download links.
  const message = log(bob.page).locator('[data-message-id]', { hasText: 'Here are the files' });
  await message.waitFor();
  const img = message.locator('figure.attachment img');
  await waitFor(() => img.evaluate((i) => i.complete && i.naturalWidth === 40), 'the preview to load');
  assert.equal(await img.getAttribute('alt'), hostile);
  assert.equal(await message.locator('figure.attachment figcaption span').first().textContent(), hostile);
  assert.equal(await bob.page.locator('img[src="x"]').count(), 0, 'the name made no element');
  const links = message.getByRole('link', { name: /^Download / });
  assert.deepEqual(await links.allTextContents(), ['notes.txt', 'dropped.txt']);
  const download = bob.page.waitForEvent('download');
  await message.getByRole('link', { name: /^Download notes\.txt/ }).click();
  const got = await download;
  assert.equal(got.suggestedFilename(), 'notes.txt');
  const chunks = [];
  for await (const c of await got.createReadStream()) chunks.push(c);
  assert.equal(Buffer.concat(chunks).toString(), 'meeting notes\n');
  await bob.page.screenshot({ path: join(SHOTS, 'client-attachments.png') });
  // Nothing ran: no dialog, no error, in either browser.
  for (const side of [ann, bob]) {
    assert.deepEqual(side.seen.dialogs, []);
    assert.deepEqual(side.seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  }
  // A reload draws them again from the REST list (fresh URLs).
  await bob.page.reload();
  await waitFor(() => log(bob.page).locator('figure.attachment img').evaluate((i) => i.complete && i.naturalWidth === 40), 'the preview after a reload');
});
