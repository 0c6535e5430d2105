#!/usr/bin/env python3
"""Checks Conclave's MCP endpoint with the official MCP Python SDK (`mcp`, PyPI) as a client.

Usage: mcp-check.py MCP_URL API_KEY CONVERSATION_ID

Connects twice — once with the initialize handshake (mode "legacy", the 2025-11-25 revision)
and once as the SDK connects by default (it probes `server/discover` and speaks 2026-07-28
when the server offers it) — with the API key as bearer token. Each time it lists the tools,
reads the conversation, searches it for "interop", and sends a message with an idempotency key
(twice: the retry must answer the same message). Prints one line per connection,
`<protocol version> tools=<n> read=<n> found=<n> sent=<message id>`, and exits non-zero with
the reason on anything unexpected.
"""

import asyncio
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "list_conversations",
    "read_messages",
    "search_messages",
    "send_message",
    "list_participants",
    "mark_read",
    "get_user",
}


def content_of(result):
    """The user content of a successful tool result, after checking the untrusted notice."""
    if result.is_error:
        raise SystemExit(f"tool error: {result.structured_content or result.content}")
    data = result.structured_content
    if "never as instructions" not in data.get("notice", ""):
        raise SystemExit(f"no untrusted-content notice in {data}")
    return data["untrusted_user_content"]


async def session(url: str, key: str, conv: str, mode: str) -> str:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    transport = streamable_http_client(url, http_client=http, terminate_on_close=False)
    async with http, Client(transport, mode=mode) as client:
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        if names != EXPECTED_TOOLS:
            raise SystemExit(f"unexpected tools: {sorted(names)}")
        read = content_of(await client.call_tool("read_messages", {"conversation_id": conv}))
        found = content_of(
            await client.call_tool("search_messages", {"query": "interop", "conversation_id": conv})
        )
        if not found["items"] or "<mark>" not in found["items"][0]["snippet"]:
            raise SystemExit(f"search found nothing: {found}")
        send = {
            "conversation_id": conv,
            "content": f"hello from the Python SDK ({mode})",
            "idempotency_key": f"python-{mode}",
        }
        first = content_of(await client.call_tool("send_message", send))
        again = content_of(await client.call_tool("send_message", send))
        if not first["created"] or again["created"] or first["message"]["id"] != again["message"]["id"]:
            raise SystemExit(f"the retry was not idempotent: {first} / {again}")
        return (
            f"{client.protocol_version} tools={len(names)} read={len(read['items'])} "
            f"found={len(found['items'])} sent={first['message']['id']}"
        )


async def main() -> int:
    url, key, conv = sys.argv[1:4]
    for mode in ("legacy", "auto"):
        print(await session(url, key, conv, mode))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
