// Checks Conclave's MCP endpoint with the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, npm) as a client. Not a browser test (node --test does not pick
// it up): the Rust test api::mcp::the_typescript_sdk_connects runs it.
//
// Usage: node mcp-check.mjs MCP_URL API_KEY CONVERSATION_ID
//        node mcp-check.mjs --oauth MCP_URL CLIENT_ID REDIRECT_URI CONVERSATION_ID ORG_ID
//          (environment: CONCLAVE_COOKIE, the signed-in user's session cookie `name=value`, and
//          CONCLAVE_CSRF, its CSRF token)
//
// With an API key: connects with the API key as bearer token (the SDK's initialize handshake, its newest
// revision), lists the tools, reads the conversation, searches it for "interop" and sends a
// message twice with one idempotency key (the retry must answer the same message). Prints
// `<protocol version> tools=<n> read=<n> found=<n> sent=<message id>` and exits non-zero with
// the reason on anything unexpected.
//
// With --oauth: authorized by the SDK's own OAuth client (the transport's `authProvider`, an
// `OAuthClientProvider`; `auth()` behind it) for a client an org admin registered, whose
// client_id the provider's `clientInformation()` gives (no dynamic registration: the provider
// cannot save a registration). The first connection gets a 401; the SDK reads
// `WWW-Authenticate: Bearer resource_metadata=…`, the RFC 9728 and RFC 8414 documents, and
// sends the user to the authorization URL (`redirectToAuthorization`), where this script plays
// the user in the web client's consent page: the URL answers 302 to
// `/#/oauth/consent?request=<id>`, the page reads the request and approves it for ORG_ID with
// the cookie session and CSRF token, and `redirect_to` carries the code (with the state the
// provider gave and the issuer). `finishAuth(code)` redeems it and a new connection does the
// checks. Then it prints `expire` and waits for a line on stdin (the test moves the server's
// clock past the access token's hour): the next call gets a 401, the SDK refreshes the token on
// its own (no second consent) and the checks run again. Ends with
// `oauth consents=<n> tokens=<n> scope=<granted scopes, comma-separated>`.

import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const EXPECTED_TOOLS = [
  'get_user',
  'list_conversations',
  'list_participants',
  'mark_read',
  'read_messages',
  'search_messages',
  'send_message',
];

function fail(why) {
  console.error(why);
  process.exit(1);
}

/** The user content of a successful tool result, after checking the untrusted notice. */
function contentOf(result) {
  if (result.isError) fail(`tool error: ${JSON.stringify(result)}`);
  const data = result.structuredContent;
  if (!String(data?.notice ?? '').includes('never as instructions')) {
    fail(`no untrusted-content notice in ${JSON.stringify(data)}`);
  }
  // The text block carries the same JSON for clients that read text only.
  if (JSON.stringify(JSON.parse(result.content[0].text)) !== JSON.stringify(data)) {
    fail('the text content differs from the structured content');
  }
  return data.untrusted_user_content;
}

/** Lists the tools, reads `conv`, searches it and sends twice with one idempotency key. */
async function exercise(client, transport, conv, label) {
  const names = (await client.listTools()).tools.map((t) => t.name).sort();
  if (JSON.stringify(names) !== JSON.stringify(EXPECTED_TOOLS)) fail(`unexpected tools: ${names}`);
  const read = contentOf(await client.callTool({ name: 'read_messages', arguments: { conversation_id: conv } }));
  const found = contentOf(
    await client.callTool({ name: 'search_messages', arguments: { query: 'interop', conversation_id: conv } }),
  );
  if (!found.items.length || !found.items[0].snippet.includes('<mark>')) fail(`search found nothing: ${JSON.stringify(found)}`);
  const send = { conversation_id: conv, content: `hello from the TypeScript SDK (${label})`, idempotency_key: `typescript-${label}` };
  const first = contentOf(await client.callTool({ name: 'send_message', arguments: send }));
  const again = contentOf(await client.callTool({ name: 'send_message', arguments: send }));
  if (!first.created || again.created || first.message.id !== again.message.id) {
    fail(`the retry was not idempotent: ${JSON.stringify([first, again])}`);
  }
  return (
    `${transport.protocolVersion ?? 'unknown'} tools=${names.length} read=${read.items.length} ` +
    `found=${found.items.length} sent=${first.message.id}`
  );
}

const connect = async (url, opts) => {
  const transport = new StreamableHTTPClientTransport(new URL(url), opts);
  const client = new Client({ name: 'conclave-mcp-check', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
};

/** The SDK's OAuth client provider for a pre-registered public client, kept in memory. */
class Provider {
  constructor(clientId, redirectUri, consentPage) {
    this.info = { client_id: clientId };
    this.redirectUri = redirectUri;
    this.consentPage = consentPage;
    this.saved = [];
  }
  get redirectUrl() {
    return this.redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: 'conclave-mcp-check',
      redirect_uris: [this.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.sentState = randomBytes(16).toString('hex');
    return this.sentState;
  }
  clientInformation() {
    return this.info;
  }
  tokens() {
    return this.saved.at(-1);
  }
  saveTokens(tokens) {
    this.saved.push(tokens);
  }
  async redirectToAuthorization(authorizationUrl) {
    this.code = await this.consentPage.approve(authorizationUrl, this.sentState);
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

/** The user's part: what the web client's consent page does with the browser's session. */
class ConsentPage {
  constructor(base, redirectUri, org) {
    Object.assign(this, { base, redirectUri, org, consents: 0 });
    this.cookie = process.env.CONCLAVE_COOKIE;
    this.csrf = process.env.CONCLAVE_CSRF;
  }
  async approve(authorizationUrl, state) {
    this.consents += 1;
    const browser = { Cookie: this.cookie };
    const res = await fetch(authorizationUrl, { headers: browser, redirect: 'manual' });
    const to = res.headers.get('location') ?? '';
    const prefix = '/#/oauth/consent?request=';
    if (res.status !== 302 || !to.startsWith(prefix)) fail(`authorize answered ${res.status} ${to}: ${await res.text()}`);
    const api = `${this.base}/api/v1/oauth/requests/${to.slice(prefix.length)}`;
    const view = await (await fetch(api, { headers: browser })).json();
    if (!(view.orgs ?? []).some((o) => o.id === this.org)) fail(`the consent page does not offer the org: ${JSON.stringify(view)}`);
    const decided = await fetch(api, {
      method: 'POST',
      headers: { ...browser, 'X-CSRF-Token': this.csrf, Origin: this.base, 'Content-Type': 'application/json' },
      body: JSON.stringify({ approve: true, org_id: this.org }),
    });
    if (decided.status !== 200) fail(`approving answered ${decided.status}: ${await decided.text()}`);
    const back = (await decided.json()).redirect_to;
    if (!back.startsWith(`${this.redirectUri}?`)) fail(`sent back to ${back}, not to the registered redirect URI`);
    const query = new URL(back).searchParams;
    if (query.get('state') !== state) fail(`the state came back as ${query.get('state')}`);
    if (query.get('iss') !== this.base) fail(`the issuer came back as ${query.get('iss')}`);
    return query.get('code');
  }
}

async function oauth(url, clientId, redirectUri, conv, org) {
  const page = new ConsentPage(new URL(url).origin, redirectUri, org);
  const provider = new Provider(clientId, redirectUri, page);
  // The first connection is refused: the SDK authorizes, and this transport redeems the code.
  const unauthorized = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  try {
    await new Client({ name: 'conclave-mcp-check', version: '1.0.0' }).connect(unauthorized);
    fail('connected without authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  await unauthorized.finishAuth(provider.code);
  const { client, transport } = await connect(url, { authProvider: provider });
  console.log(await exercise(client, transport, conv, 'oauth'));
  console.log('expire');
  const lines = createInterface({ input: process.stdin });
  const [go] = await once(lines, 'line');
  lines.close();
  if (go !== 'go') fail('the test did not move the clock');
  console.log(await exercise(client, transport, conv, 'oauth-refreshed'));
  const [before, after] = [provider.saved[0], provider.saved.at(-1)];
  if (provider.saved.length > 1 && (before.access_token === after.access_token || before.refresh_token === after.refresh_token)) {
    fail('the refresh did not rotate the tokens');
  }
  const scope = (after.scope ?? '').split(' ').filter(Boolean).join(',');
  console.log(`oauth consents=${page.consents} tokens=${provider.saved.length} scope=${scope}`);
  await client.close();
}

if (process.argv[2] === '--oauth') {
  await oauth(...process.argv.slice(3, 8));
} else {
  const [url, key, conv] = process.argv.slice(2);
  const { client, transport } = await connect(url, { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
  console.log(await exercise(client, transport, conv, '1'));
  await client.close();
}
