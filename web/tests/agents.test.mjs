// Browser tests of AI agents and content guards (AGENT-1..5, RATE-6, WEB-3) against a fake
// OpenAI Chat Completions provider on 127.0.0.1 (the server's agent SSRF guard lets that
// address and the provider's port through): an answer that grows in the client as it streams
// and ends complete, as text (no markup, no link followed or previewed), a repeated delta
// ignored and a lost one fetched again (the gateway's frames altered in between); an endless answer
// stopped with its Stop button; one the provider breaks off shown failed with its reason; and the console — an agent created (its API key never shown
// back), changed, its key rotated and cleared, its usage; the org's token budget; a blocklist
// guard whose refusal the client shows, a flagging guard whose message reaches the review
// queue and is resolved there.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { SHOTS, completionStream, log, setup, waitFor } from './harness.mjs';

/** The pieces of the finite answer, sent ~150 ms apart. */
const PIECES = ['Hello', ' there,', ' I am', ' <b>an agent</b>', '. See http://127.0.0.1:PORT/preview-me', ' — done.'];
/** What the fake provider was asked: `{authorization, body}` each, and every other path hit. */
const calls = [];
const otherPaths = [];
/** The endless answers still being written (their responses open). */
let endlessOpen = 0;

const provider = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    otherPaths.push(`${req.method} ${req.url}`);
    res.writeHead(404);
    res.end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    calls.push({ authorization: req.headers.authorization ?? null, body });
    const { delta, finish } = completionStream(res);
    const last = body.messages.at(-1)?.content ?? '';
    if (/break/.test(last)) {
      // A piece, then the connection drops before [DONE].
      delta('Half an ans');
      setTimeout(() => res.destroy(), 300);
      return;
    }
    if (/forever/.test(last)) {
      // Endless: a word every 150 ms until the server hangs up.
      endlessOpen += 1;
      const timer = setInterval(() => delta('more '), 150);
      res.on('close', () => {
        clearInterval(timer);
        endlessOpen -= 1;
      });
      return;
    }
    finish(
      PIECES.map((p) => p.replace('PORT', String(port))),
      { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
    );
  });
});
await new Promise((ok) => provider.listen(0, '127.0.0.1', ok));
const port = provider.address().port;
const ANSWER = PIECES.join('').replace('PORT', String(port));
after(() => new Promise((ok) => provider.close(ok)));

const h = setup({ env: { CONCLAVE_AGENT_ALLOW_CIDRS: '127.0.0.1/32', CONCLAVE_AGENT_ALLOW_PORTS: String(port) } });
const endpoint = `http://127.0.0.1:${port}/v1`;

/** An org owner (a server admin, for the console), their org and an agent in it made over REST. */
async function withAgent(name = 'Sage') {
  const owner = await h.createUser('ann', { serverAdmin: true });
  const org = await h.createOrg(owner, h.name('Acme'));
  const made = await h.rest('POST', `/orgs/${org.id}/agents`, owner.token, { name, endpoint, model: 'fake-model' });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  return { owner, org, agent: made.body };
}

/** A direct conversation of `user` with the agent (its bot account), made over REST. */
async function directWith(user, org, agent) {
  const c = await h.rest('POST', `/orgs/${org.id}/conversations`, user.token, { kind: 'direct', visibility: 'private', participant_ids: [agent.user_id] });
  assert.ok([200, 201].includes(c.status), JSON.stringify(c.body));
  return c.body;
}

/** `user`'s browser with conversation `id` open. */
async function onConversation(user, id) {
  const opened = await h.browse(user);
  await opened.page.goto(`${h.base}/#/c/${id}`);
  await log(opened.page).waitFor();
  return opened;
}

/** Sends `text` from the open conversation's composer. */
async function say(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

/** Records, in the page, each text the agent's answer shows while it streams (and its node). */
function watchAnswers(page) {
  return page.evaluate(() => {
    const seen = [];
    const nodes = new WeakMap();
    let made = 0;
    const logNode = document.querySelector('[role="log"]');
    const record = () => {
      for (const li of logNode.querySelectorAll('[data-status="streaming"]')) {
        const body = li.querySelector('.body');
        if (!nodes.has(body)) nodes.set(body, (made += 1));
        seen.push({ id: li.dataset.messageId, text: body.textContent, node: nodes.get(body), busy: li.getAttribute('aria-busy') });
      }
    };
    new MutationObserver(record).observe(logNode, { childList: true, subtree: true, characterData: true });
    window.answerTexts = seen;
  });
}

test('an agent’s answer grows in place as it streams, as text, and ends complete', async () => {
  const { owner, org, agent } = await withAgent();
  const conv = await directWith(owner, org, agent);
  const { page, seen } = await onConversation(owner, conv.id);
  // The agent takes part, marked as one.
  const people = page.getByRole('list', { name: 'Participants' });
  await people.getByText('Sage').waitFor();
  assert.match(await people.locator('li', { hasText: 'Sage' }).textContent(), /AI agent/);
  await watchAnswers(page);
  const before = calls.length;

  await say(page, 'Hi Sage, who are you?');
  await waitFor(() => page.evaluate(() => window.answerTexts.length > 0), 'the answer to open');
  const id = await page.evaluate(() => window.answerTexts[0].id);
  const answer = log(page).locator(`[data-message-id="${id}"]`);
  await waitFor(async () => (await answer.getAttribute('data-status')) === 'complete', 'the answer to end complete', 20_000);
  assert.equal(await answer.locator('.author').textContent(), 'Sage');
  assert.equal(await answer.locator('.body').textContent(), ANSWER);
  assert.equal(calls.length, before + 1, 'one model call');
  assert.equal(calls.at(-1).body.stream, true);

  const texts = await page.evaluate(() => window.answerTexts);
  const mine = texts.filter((t) => t.id === id);
  const lengths = [...new Set(mine.map((t) => t.text.length))].filter((n) => n > 0 && n < ANSWER.length);
  assert.ok(lengths.length >= 2, `at least two intermediate lengths: ${JSON.stringify(lengths)}`);
  // Each shown text continues the one before (append in order), in the same element.
  for (let i = 1; i < mine.length; i += 1) assert.ok(mine[i].text.startsWith(mine[i - 1].text), `${mine[i].text} continues ${mine[i - 1].text}`);
  assert.ok(ANSWER.startsWith(mine.at(-1).text));
  assert.equal(new Set(mine.map((t) => t.node)).size, 1, 'the answer grew in one element');
  assert.ok(mine.every((t) => t.busy === 'true'), 'a growing answer is aria-busy');
  assert.equal(await answer.getAttribute('aria-busy'), null);

  // Text only: the markup is shown as written, the link is not a link, nothing was previewed.
  assert.equal(await answer.locator('.body b, .body a, .body img, .body iframe').count(), 0);
  assert.match(await answer.textContent(), /<b>an agent<\/b>/);
  assert.equal(await answer.getByRole('button').count(), 0, 'an ended answer has no Stop button');
  assert.deepEqual(otherPaths, [], 'nothing fetched the link in the answer');
  // REST has the same text and state.
  const listed = await h.rest('GET', `/conversations/${conv.id}/messages?limit=5`, owner.token);
  const stored = listed.body.items.find((m) => m.author.id === agent.user_id);
  assert.equal(stored.status, 'complete');
  assert.equal(stored.content, ANSWER);
  assert.equal(stored.author.kind, 'bot');
  assert.match(stored.author.username, /^agent-/);
  assert.equal(await answer.locator('.badge').textContent(), 'AI agent');
  await page.screenshot({ path: join(SHOTS, 'client-agent-answer.png') });
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

test('a repeated delta changes nothing and a lost one makes the client fetch the answer', async () => {
  const { owner, org, agent } = await withAgent('Relay');
  const conv = await directWith(owner, org, agent);
  const opened = await h.newUser();
  const { page } = opened;
  // Between the page and the gateway: the second delta comes twice, the fourth never.
  await page.routeWebSocket(/\/gateway/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((frame) => {
      const f = JSON.parse(frame);
      if (f.t === 'MESSAGE_STREAM' && f.d.index === 1) ws.send(frame);
      if (f.t === 'MESSAGE_STREAM' && f.d.index === 3) return;
      ws.send(frame);
    });
  });
  const refetched = [];
  page.on('request', (r) => {
    if (/\/messages\?limit=1&after=/.test(r.url())) refetched.push(r.url());
  });
  await h.signInAs(page, owner.username);
  await page.getByText(`Signed in as ${owner.username}`).waitFor();
  await page.goto(`${h.base}/#/c/${conv.id}`);
  await log(page).waitFor();
  await watchAnswers(page);
  await say(page, 'Relay this, please');
  await waitFor(() => page.evaluate(() => window.answerTexts.length > 0), 'the answer to open');
  const id = await page.evaluate(() => window.answerTexts[0].id);
  const answer = log(page).locator(`[data-message-id="${id}"]`);
  await waitFor(async () => (await answer.getAttribute('data-status')) === 'complete', 'the answer to end complete');
  assert.equal(await answer.locator('.body').textContent(), ANSWER);
  const texts = (await page.evaluate(() => window.answerTexts)).filter((t) => t.id === id).map((t) => t.text);
  // Never a piece twice, never shrinking: each text shown is the start of the answer and of the next.
  for (const [i, text] of texts.entries()) {
    assert.ok(ANSWER.startsWith(text), `${JSON.stringify(text)} starts the answer`);
    if (i > 0) assert.ok(text.startsWith(texts[i - 1]), `${JSON.stringify(text)} continues ${JSON.stringify(texts[i - 1])}`);
  }
  assert.ok(new Set(texts).size >= 2, `it grew: ${JSON.stringify(texts)}`);
  assert.ok(refetched.length >= 1, 'the gap made the client fetch the answer');
});

test('a participant stops an endless answer with its Stop button', async () => {
  const { owner } = await withAgent('Chatter');
  // The agent is offered for a direct conversation, as an agent.
  const { page } = await h.browse(owner);
  await page.getByLabel('Start a direct conversation with').selectOption({ label: 'Chatter (AI agent)' });
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/c\/[0-9a-f-]{36}$/);
  await log(page).waitFor();
  const convId = new URL(page.url()).hash.slice('#/c/'.length);
  await say(page, 'Please go on forever');
  const answer = log(page).locator('[data-status="streaming"]');
  await answer.waitFor();
  assert.equal(await answer.getAttribute('aria-busy'), 'true');
  await waitFor(async () => (await answer.locator('.body').textContent()).length >= 10, 'the answer to grow');
  const id = await answer.getAttribute('data-message-id');
  await page.getByRole('button', { name: 'Stop answer by Chatter' }).click();
  const ended = log(page).locator(`[data-message-id="${id}"]`);
  await waitFor(async () => (await ended.getAttribute('data-status')) === 'stopped', 'the answer to show stopped');
  await ended.getByText(/The answer was stopped/).waitFor();
  assert.equal(await ended.getByRole('button').count(), 0);
  const kept = await ended.locator('.body').textContent();
  assert.match(kept, /^(more )+$/, 'the text written so far stays');
  // The server let go of the provider, and REST says stopped with that text.
  await waitFor(() => endlessOpen === 0, 'the provider’s stream to be closed');
  const listed = await h.rest('GET', `/conversations/${convId}/messages?limit=5`, owner.token);
  const stored = listed.body.items.find((m) => m.id === id);
  assert.equal(stored.status, 'stopped');
  assert.ok(stored.content.length > 0 && kept.startsWith(stored.content.slice(0, 5)));
  // Stopping again: the answer no longer streams.
  assert.equal((await h.rest('POST', `/messages/${id}/stop`, owner.token)).status, 409);
});

/**
 * A server admin signed in to a browser, owner of an org (with `member` in it) and a member of
 * another's org: `{owner, member, org, orgName, otherName, page, seen}`.
 */
async function consoleOwner() {
  const owner = await h.createUser('root', { serverAdmin: true });
  const member = await h.createUser('mia');
  const orgName = h.name('Guarded');
  const org = await h.createOrg(owner, orgName, [member]);
  // Another's org, where the admin is only a member: no controls there.
  const other = await h.createUser('olga');
  const otherName = h.name('Elsewhere');
  await h.createOrg(other, otherName, [owner]);
  const { page, seen } = await h.browse(owner);
  return { owner, member, org, orgName, otherName, page, seen };
}

test('an answer the provider breaks off ends failed, saying why', async () => {
  const { owner, org, agent } = await withAgent('Brittle');
  const conv = await directWith(owner, org, agent);
  const { page } = await onConversation(owner, conv.id);
  await say(page, 'Please break');
  const answer = log(page).locator('[data-message-id]').filter({ has: page.locator('.author', { hasText: 'Brittle' }) });
  await waitFor(async () => (await answer.getAttribute('data-status')) === 'failed', 'the answer to end failed');
  const said = await answer.locator('.answer-state').textContent();
  const stored = (await h.rest('GET', `/conversations/${conv.id}/messages?limit=5`, owner.token)).body.items.find((m) => m.author.id === agent.user_id);
  assert.equal(stored.status, 'failed');
  assert.ok(stored.status_reason, 'a failed answer has a reason');
  assert.equal(said, `The answer failed: ${stored.status_reason.replaceAll('_', ' ')}.`);
  assert.equal(await answer.getAttribute('aria-busy'), null);
  assert.equal(await answer.getByRole('button').count(), 0);
});

test('an admin manages agents, their keys, usage and budget in the console', async () => {
  const { owner, org, orgName, otherName, page, seen } = await consoleOwner();

  // Agents: create one; its key goes to the provider and never comes back.
  await page.goto(`${h.base}/admin#/agents`);
  const card = page.getByRole('region', { name: `Agents of ${orgName}` });
  const create = card.getByRole('form', { name: `Create an agent in ${orgName}` });
  await create.waitFor();
  assert.match(await page.getByRole('region', { name: `Agents of ${otherName}` }).textContent(), /only owners and admins/);
  assert.equal(await page.getByRole('region', { name: `Agents of ${otherName}` }).getByRole('button').count(), 0);
  const key = `sk-test-${randomBytes(12).toString('hex')}`;
  await create.getByLabel('Name').fill('Helper');
  await create.getByLabel('Endpoint URL').fill(endpoint);
  await create.getByLabel('Model').fill('fake-model');
  await create.getByLabel('API key').fill(key);
  await create.getByLabel('System prompt').fill('Answer briefly.');
  await create.getByLabel(/^Temperature/).fill('0.5');
  await create.getByLabel('Max output tokens').fill('256');
  await create.getByLabel('Context messages').fill('10');
  await create.getByLabel(/^Monthly token budget/).fill('100000');
  await create.getByRole('button', { name: 'Create agent' }).click();
  const helper = card.getByRole('row', { name: /^Helper/ });
  await helper.waitFor();
  assert.match(await helper.textContent(), new RegExp(`fake-model.*\\*\\*\\*\\*${key.slice(-4)}.*100,000 tokens`));
  assert.ok(!(await page.content()).includes(key), 'the page never holds the key');
  assert.equal(await card.getByRole('form', { name: `Create an agent in ${orgName}` }).getByLabel('API key').inputValue(), '');
  const listed = await h.rest('GET', `/orgs/${org.id}/agents`, owner.token);
  const made = listed.body.items.find((a) => a.name === 'Helper');
  assert.equal(made.system_prompt, 'Answer briefly.');
  assert.equal(made.temperature, 0.5);
  assert.equal(made.max_output_tokens, 256);
  assert.equal(made.context_messages, 10);
  assert.ok(!JSON.stringify(listed.body).includes(key));

  // A refused endpoint names the field.
  await create.getByLabel('Name').fill('Metadata');
  await create.getByLabel('Endpoint URL').fill('http://169.254.169.254/v1');
  await create.getByLabel('Model').fill('m');
  await create.getByRole('button', { name: 'Create agent' }).click();
  await create.getByRole('alert').filter({ hasText: 'not allowed' }).waitFor();
  assert.equal(await create.getByLabel('Endpoint URL').getAttribute('aria-invalid'), 'true');

  // The agent answers once, with the key; its usage shows the call.
  const conv = await directWith(owner, org, made);
  await h.send(owner, conv.id, 'Hello Helper');
  await waitFor(async () => {
    const items = (await h.rest('GET', `/conversations/${conv.id}/messages?limit=5`, owner.token)).body.items;
    return items.some((m) => m.author.id === made.user_id && m.status === 'complete');
  }, 'the agent to answer');
  assert.equal(calls.at(-1).authorization, `Bearer ${key}`);
  assert.equal(calls.at(-1).body.model, 'fake-model');
  assert.equal(calls.at(-1).body.messages[0].content, 'Answer briefly.');
  await card.getByRole('button', { name: 'Usage of agent Helper' }).click();
  const usage = card.getByRole('table', { name: 'Usage of agent Helper per day' });
  const today = new Date().toISOString().slice(0, 10);
  await usage.getByRole('row', { name: new RegExp(`^${today}`) }).waitFor();
  assert.match(await usage.getByRole('row', { name: new RegExp(`^${today}`) }).textContent(), new RegExp(`^${today}1117`));
  await card.getByRole('button', { name: 'Close the usage of agent Helper' }).click();

  // Change it, rotate its key (shown masked only), clear it.
  await card.getByRole('button', { name: 'Edit agent Helper' }).click();
  const edit = card.getByRole('form', { name: 'Edit agent Helper' });
  await edit.getByLabel('Model').fill('fake-model-2');
  const rotated = `sk-next-${randomBytes(12).toString('hex')}`;
  await edit.getByLabel(/^New API key/).fill(rotated);
  await edit.getByRole('button', { name: 'Save agent' }).click();
  await waitFor(async () => /fake-model-2/.test(await helper.textContent()), 'the changed model');
  assert.match(await helper.textContent(), new RegExp(`\\*\\*\\*\\*${rotated.slice(-4)}`));
  assert.ok(!(await page.content()).includes(rotated));
  await card.getByRole('button', { name: 'Clear the API key of agent Helper' }).click();
  await waitFor(async () => /none/.test(await helper.textContent()), 'the key cleared');

  // The org's budget for all its agents.
  await card.getByLabel(`Monthly token budget of ${orgName} (empty: no cap)`).fill('50000');
  await card.getByRole('button', { name: 'Save budget' }).click();
  await card.getByText(/used 18 tokens of 50,000/).waitFor();
  assert.equal((await h.rest('GET', `/orgs/${org.id}/agent-budget`, owner.token)).body.monthly_token_budget, 50000);
  await page.screenshot({ path: join(SHOTS, 'console-agents.png'), fullPage: true });

  await card.getByRole('button', { name: 'Delete agent Helper' }).click();
  await card.getByRole('row', { name: /^Helper/ }).waitFor({ state: 'detached' });
  assert.equal((await h.rest('GET', `/orgs/${org.id}/agents`, owner.token)).body.items.length, 0);
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

test('an admin manages guards in the console; the client shows a refusal; the review queue resolves a flag', async () => {
  const { owner, member, org, orgName, otherName, page, seen } = await consoleOwner();
  // Guards: a blocklist that blocks, and a pattern that flags.
  await page.goto(`${h.base}/admin#/guards`);
  const guards = page.getByRole('region', { name: `Guards of ${orgName}` });
  const newGuard = guards.getByRole('form', { name: `Create a guard in ${orgName}` });
  await newGuard.waitFor();
  assert.equal(await page.getByRole('region', { name: `Guards of ${otherName}` }).getByRole('button').count(), 0);
  await newGuard.getByLabel('Name (optional)').fill('Language');
  await newGuard.getByLabel('Kind', { exact: true }).selectOption('blocklist');
  await newGuard.getByLabel('Mode', { exact: true }).selectOption('block');
  await newGuard.getByLabel('Blocked terms').fill('darn\nheck');
  assert.equal(await newGuard.getByLabel('Patterns').isVisible(), false, 'only the kind’s fields show');
  await newGuard.getByRole('button', { name: 'Create guard' }).click();
  await guards.getByRole('row', { name: /^Language/ }).waitFor();
  await newGuard.getByLabel('Name (optional)').fill('Refunds');
  await newGuard.getByLabel('Kind', { exact: true }).selectOption('regex');
  await newGuard.getByLabel('Mode', { exact: true }).selectOption('flag');
  await newGuard.getByLabel('Patterns').fill('(?i)refund');
  await newGuard.getByRole('button', { name: 'Create guard' }).click();
  await guards.getByRole('row', { name: /^Refunds/ }).waitFor();

  // In the client: a blocked send shows the refusal; a flagged one is delivered.
  const group = await h.createConversation(owner, org.id, 'front-desk', { participants: [member] });
  const mia = await onConversation(member, group.id);
  await say(mia.page, 'well darn it');
  await mia.page.getByRole('alert').filter({ hasText: 'the content guard "Language" does not allow this content' }).waitFor();
  assert.equal(await log(mia.page).getByText('well darn it').count(), 0);
  await say(mia.page, 'I would like a refund please');
  await log(mia.page).getByText('I would like a refund please').waitFor();

  // The counters and the review queue (once the server lists the flag).
  await waitFor(async () => (await h.rest('GET', `/orgs/${org.id}/flags`, owner.token)).body.items.length === 1, 'the flag to be queued');
  await page.reload();
  // Cells after the name: kind, mode, rules, status, allowed, flagged, blocked, errors.
  const counted = async (name) => {
    const cells = guards.getByRole('row', { name: new RegExp(`^${name}`) }).locator('td');
    await cells.first().waitFor();
    return { flagged: await cells.nth(5).textContent(), blocked: await cells.nth(6).textContent() };
  };
  assert.equal((await counted('Language')).blocked, '1');
  assert.equal((await counted('Refunds')).flagged, '1');
  const queue = guards.getByRole('table', { name: `Flagged messages of ${orgName}` });
  const flagged = queue.getByRole('row', { name: /Refunds/ });
  await flagged.waitFor();
  assert.match(await flagged.textContent(), new RegExp(`Refunds${member.username}front-deskI would like a refund please`));
  await page.screenshot({ path: join(SHOTS, 'console-guards.png'), fullPage: true });
  await flagged.getByRole('button', { name: `Dismiss the flag on ${member.username}’s message` }).click();
  await queue.getByRole('row', { name: /Refunds/ }).waitFor({ state: 'detached' });
  await guards.getByRole('button', { name: 'Show resolved flags' }).click();
  await queue.getByRole('row', { name: /Refunds.*dismissed/ }).waitFor();
  assert.equal((await h.rest('GET', `/orgs/${org.id}/flags`, owner.token)).body.items.length, 0);

  // Edit and delete a guard.
  await guards.getByRole('button', { name: 'Edit guard Language' }).click();
  const editGuard = guards.getByRole('form', { name: 'Edit guard Language' });
  await editGuard.getByLabel('Mode', { exact: true }).selectOption('flag');
  await editGuard.getByRole('button', { name: 'Save guard' }).click();
  await waitFor(async () => /Blocklist\s*flag/.test(await guards.getByRole('row', { name: /^Language/ }).textContent()), 'the guard in flag mode');
  await guards.getByRole('button', { name: 'Delete guard Refunds' }).click();
  await guards.getByRole('row', { name: /^Refunds/ }).waitFor({ state: 'detached' });
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});
