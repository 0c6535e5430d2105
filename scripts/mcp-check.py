#!/usr/bin/env python3
"""Checks Conclave's MCP endpoint with the official MCP Python SDK (`mcp`, PyPI) as a client.

Usage: mcp-check.py MCP_URL API_KEY CONVERSATION_ID
       mcp-check.py --oauth MCP_URL CLIENT_ID REDIRECT_URI CONVERSATION_ID ORG_ID
           (environment: CONCLAVE_COOKIE, the signed-in user's session cookie `name=value`,
           and CONCLAVE_CSRF, its CSRF token)

With an API key: connects twice — once with the initialize handshake (mode "legacy", the
2025-11-25 revision) and once as the SDK connects by default (it probes `server/discover` and
speaks 2026-07-28 when the server offers it) — with the API key as bearer token. Each time it
lists the tools, reads the conversation, searches it for "interop", and sends a message with an
idempotency key (twice: the retry must answer the same message). Prints one line per connection,
`<protocol version> tools=<n> read=<n> found=<n> sent=<message id>`, and exits non-zero with
the reason on anything unexpected.

With --oauth: the same two connections, authorized through the SDK's own OAuth client
(`OAuthClientProvider` as the httpx2 auth of the transport) for a client an org admin
registered (its client_id handed to the SDK through its client-information storage, as
pre-registered clients are). The SDK finds the authorization server from the 401's
`WWW-Authenticate: Bearer resource_metadata=…` and the RFC 9728 and RFC 8414 documents, and
sends the user to the authorization URL; the redirect handler plays the user in the web client's
consent page (the authorization URL answers 302 to `/#/oauth/consent?request=<id>`; the page
reads the request and approves it for ORG_ID with the cookie session and CSRF token; the answer's
`redirect_to` carries the code, the state and the issuer) and the callback handler hands them
back. Between the two connections it prints `expire` and waits for a line on stdin (the test
moves the server's clock past the access token's hour), marks the token expired for the SDK too,
and the second connection must refresh it (the SDK's refresh path: no second consent). Ends
with `oauth consents=<n> tokens=<n> scope=<granted scopes, comma-separated>`.
"""

import asyncio
import os
import sys
import time
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata

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


async def session(http: httpx2.AsyncClient, url: str, conv: str, mode: str, label: str) -> str:
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
            "content": f"hello from the Python SDK ({label})",
            "idempotency_key": f"python-{label}",
        }
        first = content_of(await client.call_tool("send_message", send))
        again = content_of(await client.call_tool("send_message", send))
        if not first["created"] or again["created"] or first["message"]["id"] != again["message"]["id"]:
            raise SystemExit(f"the retry was not idempotent: {first} / {again}")
        return (
            f"{client.protocol_version} tools={len(names)} read={len(read['items'])} "
            f"found={len(found['items'])} sent={first['message']['id']}"
        )


class Storage:
    """The SDK's token and client-information storage, in memory: starts with the registered
    client's information and counts the tokens the SDK stores (one per code or refresh)."""

    def __init__(self, client_info: OAuthClientInformationFull):
        self.client_info = client_info
        self.tokens = None
        self.stored = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens
        self.stored.append(tokens)

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


class ConsentPage:
    """The user's part: what the web client's consent page does with the browser's session."""

    def __init__(self, base: str, redirect_uri: str, org: str):
        self.base, self.redirect_uri, self.org = base, redirect_uri, org
        self.cookie, self.csrf = os.environ["CONCLAVE_COOKIE"], os.environ["CONCLAVE_CSRF"]
        self.consents = 0
        self.answer: AuthorizationCodeResult | None = None

    async def redirect(self, authorization_url: str) -> None:
        self.consents += 1
        browser = {"Cookie": self.cookie}
        async with httpx2.AsyncClient(timeout=30, follow_redirects=False) as web:
            res = await web.get(authorization_url, headers=browser)
            to = res.headers.get("location", "")
            prefix = "/#/oauth/consent?request="
            if res.status_code != 302 or not to.startswith(prefix):
                raise SystemExit(f"authorize answered {res.status_code} {to!r}: {res.text}")
            api = f"{self.base}/api/v1/oauth/requests/{to[len(prefix):]}"
            view = (await web.get(api, headers=browser)).json()
            if self.org not in [o["id"] for o in view.get("orgs", [])]:
                raise SystemExit(f"the consent page does not offer the org: {view}")
            decided = await web.post(
                api,
                headers={**browser, "X-CSRF-Token": self.csrf, "Origin": self.base},
                json={"approve": True, "org_id": self.org},
            )
            if decided.status_code != 200:
                raise SystemExit(f"approving answered {decided.status_code}: {decided.text}")
        back = decided.json()["redirect_to"]
        if not back.startswith(self.redirect_uri + "?"):
            raise SystemExit(f"sent back to {back}, not to the registered redirect URI")
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        self.answer = AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def callback(self) -> AuthorizationCodeResult:
        answer, self.answer = self.answer, None
        if answer is None:
            raise SystemExit("the callback came before the consent")
        return answer


async def oauth(url: str, client_id: str, redirect_uri: str, conv: str, org: str) -> None:
    parts = urlsplit(url)
    page = ConsentPage(f"{parts.scheme}://{parts.netloc}", redirect_uri, org)
    storage = Storage(
        OAuthClientInformationFull(client_id=client_id, redirect_uris=[redirect_uri], token_endpoint_auth_method="none")
    )
    metadata = OAuthClientMetadata(
        client_name="conclave-mcp-check",
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(url, metadata, storage, page.redirect, page.callback)
    for mode in ("legacy", "auto"):
        if mode == "auto":
            # The server's clock is an hour on; the SDK's idea of the expiry follows it.
            print("expire", flush=True)
            if sys.stdin.readline().strip() != "go":
                raise SystemExit("the test did not move the clock")
            provider.context.token_expiry_time = time.time() - 1
        http = httpx2.AsyncClient(auth=provider, timeout=30)
        print(await session(http, url, conv, mode, f"oauth-{mode}"), flush=True)
    first, last = storage.stored[0], storage.stored[-1]
    rotated = first.access_token != last.access_token and first.refresh_token != last.refresh_token
    if len(storage.stored) > 1 and not rotated:
        raise SystemExit("the refresh did not rotate the tokens")
    scope = ",".join((last.scope or "").split())
    print(f"oauth consents={page.consents} tokens={len(storage.stored)} scope={scope}")


async def main() -> int:
    if sys.argv[1] == "--oauth":
        await oauth(*sys.argv[2:7])
        return 0
    url, key, conv = sys.argv[1:4]
    for mode in ("legacy", "auto"):
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
        print(await session(http, url, conv, mode, mode))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
