// Checks Conclave's MCP endpoint with the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, npm) as a client. Not a browser test (node --test does not pick
// it up): the Rust test api::mcp::the_typescript_sdk_connects runs it.
//
// Usage: node mcp-check.mjs MCP_URL API_KEY CONVERSATION_ID
//
// Connects with the API key as bearer token (the SDK's initialize handshake, its newest
// revision), lists the tools, reads the conversation, searches it for "interop" and sends a
// message twice with one idempotency key (the retry must answer the same message). Prints
// `<protocol version> tools=<n> read=<n> found=<n> sent=<message id>` and exits non-zero with
// the reason on anything unexpected.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

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

const [url, key, conv] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: 'conclave-mcp-check', version: '1.0.0' });
await client.connect(transport);

const names = (await client.listTools()).tools.map((t) => t.name).sort();
if (JSON.stringify(names) !== JSON.stringify(EXPECTED_TOOLS)) fail(`unexpected tools: ${names}`);
const read = contentOf(await client.callTool({ name: 'read_messages', arguments: { conversation_id: conv } }));
const found = contentOf(
  await client.callTool({ name: 'search_messages', arguments: { query: 'interop', conversation_id: conv } }),
);
if (!found.items.length || !found.items[0].snippet.includes('<mark>')) fail(`search found nothing: ${JSON.stringify(found)}`);
const send = { conversation_id: conv, content: 'hello from the TypeScript SDK', idempotency_key: 'typescript-1' };
const first = contentOf(await client.callTool({ name: 'send_message', arguments: send }));
const again = contentOf(await client.callTool({ name: 'send_message', arguments: send }));
if (!first.created || again.created || first.message.id !== again.message.id) {
  fail(`the retry was not idempotent: ${JSON.stringify([first, again])}`);
}
console.log(
  `${transport.protocolVersion ?? 'unknown'} tools=${names.length} read=${read.items.length} ` +
    `found=${found.items.length} sent=${first.message.id}`,
);
await client.close();
