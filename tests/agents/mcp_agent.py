"""An agent built on the official MCP Python SDK (`mcp` on PyPI).

Connects to SpendSignoff's gateway over Streamable HTTP with an agent API
key, lists the tools, proposes a change, reads its status, and tries a bad
key. Prints one JSON object with what it saw; the Rust test asserts on it.

    python3 mcp_agent.py http://127.0.0.1:PORT/mcp ssk_…
    python3 mcp_agent.py http://127.0.0.1:PORT/mcp ssk_… --check   # prints ok or refused
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def session_with(url, key, body):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
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
        r = await session.call_tool(
            "propose_change",
            {
                "account_id": "card_1",
                "rationale": "monthly API bill",
                "payment": {"amount_minor": 300, "currency": "USD", "merchant": "api.openai.com", "url": "https://openai.com/pay"},
            },
        )
        out["propose"] = r.structured_content
        out["propose_error"] = bool(r.is_error)
        draft_id = (r.structured_content or {}).get("draft_id")
        s = await session.call_tool("get_draft_status", {"draft_id": draft_id})
        out["status"] = s.structured_content
        bad = await session.call_tool("propose_change", {"account_id": "card_1", "rationale": "x"})
        out["bad_input_is_error"] = bool(bad.is_error)
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
