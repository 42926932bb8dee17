"""An interactive MCP client built on the official MCP Python SDK's OAuth
support (`mcp.client.auth.OAuthClientProvider`), given only the gateway's
MCP URL, as an IDE assistant would be.

It discovers the authorization server from the gateway's 401, registers
itself, and prints the authorization URL for a human to open
(`AUTHORIZE <url>` on stderr, one line); it receives the browser's
redirect on its own loopback callback, redeems the code, lists the tools,
reads, drafts a payment. Then it tries what approves: its access token
on the approval app's approve route (refused by the app's gate), and an
authorization request for `mcp.approve` (refused by the authorization
server, which sends the browser back with `invalid_scope`). Prints one JSON object with what it saw on stdout.

    python3 mcp_oauth_agent.py http://localhost:PORT/mcp http://localhost:APPROVALS
"""

import asyncio
import json
import socket
import sys
from urllib.parse import parse_qs, urlencode, urlparse

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata


class Memory:
    """Tokens and the registration, kept for this run only."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Callback:
    """The loopback redirect URI: one request, its query parameters."""

    def __init__(self):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}/callback"

    async def wait(self):
        got = asyncio.get_running_loop().create_future()

        async def handle(reader, writer):
            line = (await reader.readline()).decode()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            query = parse_qs(urlparse(line.split(" ")[1]).query)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nYou can close this window.")
            await writer.drain()
            writer.close()
            if not got.done():
                got.set_result({k: v[0] for k, v in query.items()})

        server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        async with server:
            return await asyncio.wait_for(got, 60)


def provider(url, storage, callback, scope, seen):
    async def redirect(auth_url):
        seen.setdefault("authorize_urls", []).append(auth_url)
        print(f"AUTHORIZE {auth_url}", file=sys.stderr, flush=True)

    async def answered():
        q = await callback.wait()
        if "error" in q:
            seen.setdefault("errors", []).append({"error": q["error"], "description": q.get("error_description", "")})
            raise RuntimeError(f"authorization refused: {q['error']}")
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="SDK agent",
            redirect_uris=[callback.uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope=scope,
        ),
        storage=storage,
        redirect_handler=redirect,
        callback_handler=answered,
    )


async def connect(url, auth, body):
    http = create_mcp_http_client(auth=auth)
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                return await body(session)


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main(url, approvals):
    seen = {}
    storage = Memory()

    async def work(session):
        tools = await session.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        accounts = await session.call_tool("list_accounts", {})
        seen["accounts"] = text_of(accounts)
        seen["accounts_error"] = bool(accounts.is_error)
        draft = await session.call_tool(
            "propose_change",
            {
                "account_id": "card_1",
                "rationale": "API credits for the weekly report",
                "payment": {"amount_minor": 300, "currency": "USD", "merchant": "openai.com", "card_id": "crd_1"},
            },
        )
        seen["draft"] = text_of(draft)
        seen["draft_error"] = bool(draft.is_error)
        try:
            missing = await session.call_tool("approve_draft", {"draft_id": "x"})
            seen["approve_tool_error"] = bool(missing.is_error)
        except Exception as e:  # the SDK raises the server's refusal
            seen["approve_tool_error"] = "only a signed-in human approves" in str(e)

    await connect(url, provider(url, storage, Callback(), "mcp.read mcp.draft", seen), work)
    seen["scope"] = storage.tokens.scope if storage.tokens else None
    seen["registered_auth_method"] = storage.client.token_endpoint_auth_method if storage.client else None

    # The token on a human's route: the approval app's gate refuses it.
    draft_id = json.loads(seen["draft"]).get("draft_id", "x") if seen.get("draft") and not seen["draft_error"] else "x"
    async with create_mcp_http_client() as http:
        r = await http.post(
            f"{approvals}/approvals/{draft_id}/arm",
            headers={"Authorization": f"Bearer {storage.tokens.access_token}"},
        )
        seen["approve_route_status"] = r.status_code

    # The same client asking to approve (the SDK asks for what the
    # gateway's 401 names, so the request is made by hand): the
    # authorization server sends the browser back refused.
    first = urlparse(seen["authorize_urls"][0])
    query = {k: v[0] for k, v in parse_qs(first.query).items()}
    callback = Callback()
    query.update(scope="mcp.read mcp.approve", state="approve-attempt", redirect_uri=callback.uri)
    approve_url = first._replace(query=urlencode(query)).geturl()
    print(f"AUTHORIZE {approve_url}", file=sys.stderr, flush=True)
    answer = await callback.wait()
    seen.setdefault("errors", []).append({"error": answer.get("error"), "description": answer.get("error_description", "")})
    seen["approve_scope"] = "granted" if "code" in answer else f"refused: {answer.get('error')}"
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].rstrip("/")))
