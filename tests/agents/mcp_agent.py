"""An agent built on the official MCP Python SDK (`mcp` on PyPI).

Connects to SpendSignoff's gateway over Streamable HTTP with an agent API
key, lists the tools, reads accounts, campaigns, performance, cards,
transactions, token health and the audit log, proposes a payment and a
budget change, reads their status and the pending drafts, tries to call an
approve tool that does not exist, and tries a bad key. Prints one JSON
object with what it saw; the Rust test asserts on it.

    python3 mcp_agent.py http://127.0.0.1:PORT/mcp ssk_…
    python3 mcp_agent.py http://127.0.0.1:PORT/mcp ssk_… --check   # prints ok or refused
"""

import asyncio
import hashlib
import hmac
import json
import secrets
import sys
import time


from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def signer(key):
    """An httpx request hook that signs every request the way SpendSignoff
    asks when an organisation sets `require_signed_requests` (harmless
    otherwise): X-Spend-Timestamp, X-Spend-Nonce and X-Spend-Signature =
    hex HMAC-SHA256(key, ts \n nonce \n METHOD \n path \n hex(sha256(body)))."""

    async def sign(request):
        body = await request.aread()
        ts = str(int(time.time()))
        nonce = secrets.token_hex(16)
        message = "\n".join([ts, nonce, request.method, request.url.path, hashlib.sha256(body).hexdigest()])
        request.headers["X-Spend-Timestamp"] = ts
        request.headers["X-Spend-Nonce"] = nonce
        request.headers["X-Spend-Signature"] = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()

    return sign


async def session_with(url, key, body):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    http.event_hooks = {"request": [signer(key)], "response": []}
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return await body(session, init)


async def main(url, key):
    out = {}

    async def agent(session, init):
        out["protocol"] = str(init.protocol_version)
        out["server"] = init.server_info.name
        tools = await session.list_tools()
        out["tools"] = sorted(t.name for t in tools.tools)
        out["schemas"] = {t.name: bool(t.input_schema) and bool(t.output_schema) for t in tools.tools}
        out["annotations"] = {
            t.name: {
                "title": t.title or (t.annotations.title if t.annotations else None),
                "readOnlyHint": t.annotations.read_only_hint if t.annotations else None,
                "destructiveHint": t.annotations.destructive_hint if t.annotations else None,
            }
            for t in tools.tools
        }
        async def call(name, args=None):
            r = await session.call_tool(name, args or {})
            if r.is_error:
                return {"error": " ".join(getattr(c, "text", "") for c in r.content)}
            return r.structured_content

        out["accounts"] = await call("list_accounts")
        out["campaigns"] = await call("list_campaigns", {"account_id": "act_1001"})
        out["performance"] = await call(
            "get_performance", {"account_id": "act_1001", "campaign_id": "cmp_1", "from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z"}
        )
        out["cards"] = await call("list_cards")
        out["transactions"] = await call("list_transactions", {"status": "pending"})
        out["token"] = await call("check_token_health")
        out["unknown_account"] = await call("list_campaigns", {"account_id": "act_9999"})
        out["propose"] = await call(
            "propose_change",
            {
                "account_id": "card_1",
                "rationale": "monthly API bill",
                "payment": {"amount_minor": 300, "currency": "USD", "merchant": "api.openai.com", "card_id": "crd_1", "url": "https://openai.com/pay"},
            },
        )
        out["budget"] = await call(
            "propose_change",
            {"account_id": "act_1001", "rationale": "ROAS is 4x on brand terms", "budget": {"campaign_id": "cmp_1", "new_daily_budget_minor": 6000}},
        )
        out["status"] = await call("get_draft_status", {"draft_id": (out["propose"] or {}).get("draft_id")})
        out["pending"] = await call("list_pending_drafts")
        out["audit"] = await call("get_audit_log", {"draft_id": (out["budget"] or {}).get("draft_id")})
        bad = await session.call_tool("propose_change", {"account_id": "card_1", "rationale": "x"})
        out["bad_input_is_error"] = bool(bad.is_error)
        try:
            smuggled = await session.call_tool(
                "propose_change",
                {
                    "account_id": "card_1",
                    "rationale": "x",
                    "approved": True,
                    "payment": {"amount_minor": 100, "currency": "USD", "merchant": "openai.com", "card_id": "crd_1"},
                },
            )
            out["smuggled"] = "error" if smuggled.is_error else "accepted"
        except Exception as e:
            out["smuggled"] = "refused: " + str(e)[:200]
        try:
            r = await session.call_tool("approve_draft", {"draft_id": (out["budget"] or {}).get("draft_id")})
            out["approve"] = "error" if r.is_error else "accepted"
        except Exception as e:  # the SDK raises McpError for a JSON-RPC error
            out["approve"] = "refused: " + str(e)[:200]
        return out

    await session_with(url, key, agent)

    try:
        await session_with(url, "ssk_000000000000_" + "0" * 64, lambda s, i: asyncio.sleep(0))
        out["bad_key"] = "accepted"
    except BaseException as e:  # the SDK raises an exception group on HTTP 401
        out["bad_key"] = "refused: " + type(e).__name__ + ": " + str(e)[:200]
    print(json.dumps(out))


async def check(url, key):
    """Prints "ok" if the key can open a session, else "refused"."""
    try:
        await session_with(url, key, lambda s, i: asyncio.sleep(0))
        print("ok")
    except BaseException:
        print("refused")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "--check":
        asyncio.run(check(sys.argv[1], sys.argv[2]))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
