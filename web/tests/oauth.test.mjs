// MCP-2 in the browser: an MCP client's authorization walks the consent page. The client
// here is the test itself: it registers a public client, computes its own PKCE S256 pair
// (node's crypto, not the server's), sends a signed-out browser to `/oauth/authorize`, and
// listens on a loopback redirect URI for the code; the browser signs in, sees the client,
// the host it returns to, the scopes and the org picker, and approves or denies.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { PASSWORD, SHOTS, setup, waitFor } from './harness.mjs';

const h = setup();

/** A loopback redirect target that records each query it is sent. */
async function callbackServer() {
  const hits = [];
  const server = createServer((req, res) => {
    // Only the redirect itself: the browser may ask for /favicon.ico of the page as well.
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') hits.push(url);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('back at the client');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const uri = `http://127.0.0.1:${server.address().port}/callback`;
  return { uri, hits, close: () => new Promise((ok) => server.close(ok)) };
}

const base64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

async function authorizeInBrowser(approve) {
  const owner = await h.createUser('olga');
  const org = await h.createOrg(owner, h.name('Orbit'));
  const cb = await callbackServer();
  const client = await h.rest('POST', `/orgs/${org.id}/oauth-clients`, owner.token, {
    name: 'Desk Agent',
    redirect_uris: [cb.uri],
    public: true,
  });
  assert.equal(client.status, 201, JSON.stringify(client.body));
  const verifier = base64url(randomBytes(48));
  const challenge = base64url(createHash('sha256').update(verifier).digest());
  const resource = `${h.base}/mcp`;
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: client.body.client_id,
    redirect_uri: cb.uri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'xyz-state',
    resource,
    scope: 'messages:read messages:write conversations:read',
  });
  const { page, seen } = await h.newUser();
  await page.goto(`${h.base}/oauth/authorize?${query}`);
  // Signed out: the sign-in form first, then the consent page again.
  await page.getByLabel('Username').fill(owner.username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const heading = page.getByRole('heading', { name: 'Allow Desk Agent to use Conclave as you?' });
  await heading.waitFor();
  assert.match(page.url(), /#\/oauth\/consent\?request=[0-9a-f-]{36}$/);
  assert.equal(await page.locator('.consent-host').textContent(), '127.0.0.1');
  const scopes = await page.getByRole('list', { name: 'Requested permissions' }).locator('li').evaluateAll((li) => li.map((n) => n.dataset.scope));
  assert.deepEqual(scopes, ['messages:read', 'messages:write', 'conversations:read']);
  const picker = page.getByRole('combobox', { name: 'Organization to grant' });
  assert.equal(await picker.inputValue(), org.id);
  await page.screenshot({ path: join(SHOTS, `oauth-consent-${approve ? 'approve' : 'deny'}.png`) });
  await page.getByRole('button', { name: approve ? 'Approve' : 'Deny' }).click();
  await waitFor(() => cb.hits.length === 1, 'the browser to reach the redirect URI');
  const back = cb.hits[0];
  await cb.close();
  assert.equal(back.searchParams.get('state'), 'xyz-state');
  assert.equal(back.searchParams.get('iss'), h.base);
  assert.deepEqual(seen.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  return { back, client: client.body, verifier, redirect: cb.uri, resource, owner };
}

test('an MCP client is approved on the consent page and redeems its code', async () => {
  const { back, client, verifier, redirect, resource, owner } = await authorizeInBrowser(true);
  const code = back.searchParams.get('code');
  assert.match(code, /^cnv_oc_/);
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: redirect,
    client_id: client.client_id,
    resource,
  });
  const res = await fetch(`${h.base}/oauth/token`, { method: 'POST', body: form });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.scope, 'messages:read messages:write conversations:read');
  // The token is for /mcp: REST answers 401.
  const rest = await h.rest('GET', '/users/@me', body.access_token);
  assert.equal(rest.status, 401);
  // The grant is listed for its user.
  const grants = await h.rest('GET', '/users/@me/grants', owner.token);
  assert.equal(grants.body.items.length, 1);
  assert.equal(grants.body.items[0].client_name, 'Desk Agent');
});

test('denying on the consent page sends the client access_denied and no code', async () => {
  const { back } = await authorizeInBrowser(false);
  assert.equal(back.searchParams.get('error'), 'access_denied');
  assert.equal(back.searchParams.get('code'), null);
});
