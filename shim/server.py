"""`podctl shim`: the stdio MCP server each agent CLI talks to. Seven tools, each a thin call to
the broker; results are JSON text that a model and a program can both read.

Only `mcp` and the standard library are imported here: the CLI waits for the shim's answer to
`initialize` before the agent can start, and importing `mcp` alone costs most of that time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from podctl.broker import wire
from podctl.broker.client import AsyncClient
from podctl.broker.paths import PodPaths
from pydantic import Field

DEFAULT_WAIT_CAP_MS = 50_000
"""Each wait_for_reply call returns before the CLIs' own tool timeout (about 60 s)."""

INSTRUCTIONS = """\
You are one agent of a podctl pod: a team of AI coding agents (and a human named `user`) who
message each other. Use these tools to talk to your teammates:
- list_agents() shows who is in the pod, their roles and whether they are busy.
- tell(to, text) sends a note; ask(to, text) asks a question and returns an ask_id;
  wait_for_reply(ask_id) waits for the answer (call it again while it says "pending").
- When you receive an ask (kind "ask"), answer it with post_reply(ask_id, text).
- New messages also appear in your context by themselves; read_messages() lists your inbox.
"""

Recipients = Annotated[
    str | list[str],
    Field(description='An agent name, a route name, a list of agent names, or "all" for every other agent.'),
]


def _dump(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=1)


def _result(data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_dump(data))])


def _error(code: str, message: str) -> CallToolResult:
    """A tool error the model can read: `{"error": {"code", "message"}}` with isError set."""
    return CallToolResult(
        content=[TextContent(type="text", text=_dump({"error": {"code": code, "message": message}}))], is_error=True
    )


class Shim:
    def __init__(self, client: AsyncClient, wait_cap_ms: int | None) -> None:
        self.client = client
        self.wait_cap_ms = wait_cap_ms

    async def call(self, op: str, **args: Any) -> CallToolResult:
        try:
            return _result(await self.client.call(op, timeout=20.0, **args))
        except wire.BrokerError as exc:
            return _error(exc.code, exc.message)
        except wire.BrokerUnavailable as exc:
            return _error("broker_unavailable", f"{exc}; try again shortly")

    async def cap_ms(self) -> int:
        if self.wait_cap_ms is None:
            try:
                hello = await self.client.call("hello", timeout=5.0)
                self.wait_cap_ms = int(hello.get("limits", {}).get("wait_cap_ms", DEFAULT_WAIT_CAP_MS))
            except (wire.BrokerError, wire.BrokerUnavailable):
                return DEFAULT_WAIT_CAP_MS
        return self.wait_cap_ms

    async def wait_for_reply(self, ask_id: int, timeout_ms: int) -> CallToolResult:
        """Wait at most `timeout_ms`, but never longer than the cap in one call; survives broker restarts."""
        if timeout_ms < 0:
            return _error(wire.BAD_REQUEST, "timeout_ms must be >= 0")
        cap = await self.cap_ms()
        this_call = min(timeout_ms, cap)
        deadline = time.monotonic() + this_call / 1000.0
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                result = await self.client.call_once(
                    "wait_for_reply", timeout=remaining_ms / 1000.0 + 5.0, ask_id=ask_id, timeout_ms=remaining_ms
                )
                break
            except wire.BrokerError as exc:
                return _error(exc.code, exc.message)
            except wire.BrokerUnavailable:
                if time.monotonic() >= deadline:
                    result = {"ask_id": ask_id, "status": "timeout", "replies": [], "broker": "unreachable"}
                    break
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if result.get("status") == "timeout" and timeout_ms > this_call:
            result["status"] = "pending"
            result["remaining_ms"] = timeout_ms - this_call
            result["hint"] = "No reply yet. Call wait_for_reply again with the same ask_id to keep waiting."
        elif result.get("status") == "timeout":
            result["hint"] = "No reply within timeout_ms. You can wait again, check later with check_replies, or go on."
        return _result(result)


def build_server(shim: Shim, pod: str, agent: str) -> MCPServer:
    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[None]:
        announce(shim.client)
        try:
            yield
        finally:
            await shim.client.close()

    instructions = INSTRUCTIONS + f"\nYou are agent `{agent}` of pod `{pod}`.\n"
    server = MCPServer(name="podctl", log_level="WARNING", lifespan=lifespan, instructions=instructions)

    @server.tool(structured_output=False)
    async def tell(
        to: Recipients,
        text: Annotated[str, Field(description="The message. Plain text; point to files rather than pasting them.")],
        urgent: Annotated[bool, Field(description="Wake the recipient even if it is idle. Use sparingly.")] = False,
    ) -> CallToolResult:
        """Send a note to teammates (fire-and-forget; no reply expected).

        Returns JSON with the message_id and, per recipient, its state (busy/idle/stopped). A
        stopped recipient gets the message when it starts again.
        """
        return await shim.call("tell", to=to, text=text, urgent=urgent)

    @server.tool(structured_output=False)
    async def ask(
        to: Recipients,
        text: Annotated[str, Field(description="The question or request, with everything the recipient needs.")],
    ) -> CallToolResult:
        """Ask teammates something and get an ask_id; the recipients are woken to answer.

        Then call wait_for_reply(ask_id) to wait for the answer (or check_replies(ask_id) later).
        Asking a route (see list_agents) asks all its members.
        """
        return await shim.call("ask", to=to, text=text)

    @server.tool(structured_output=False)
    async def wait_for_reply(
        ask_id: Annotated[int, Field(description="The ask_id that ask() returned.")],
        timeout_ms: Annotated[int, Field(description="How long to wait in total, in milliseconds.")] = 300_000,
    ) -> CallToolResult:
        """Wait for the reply to one of your asks.

        Returns status "replied" with the replies (each names its author), "expired" when a route's
        timeout passed (with the replies so far and who is missing), "timeout", or "pending":
        one call waits at most about 50 s, so on "pending" call wait_for_reply again with the
        same ask_id. No reply is lost between calls.
        """
        return await shim.wait_for_reply(ask_id, timeout_ms)

    @server.tool(structured_output=False)
    async def check_replies(
        ask_id: Annotated[int, Field(description="The ask_id that ask() returned.")],
    ) -> CallToolResult:
        """Check, without waiting, whether your ask was answered and whether each recipient has seen it
        (delivery state queued / injected / read, with times)."""
        return await shim.call("check_replies", ask_id=ask_id)

    @server.tool(structured_output=False)
    async def read_messages(
        since: Annotated[
            int | None,
            Field(description="A cursor ('next' from an earlier call) to list everything after it."
                  " Omit to get only what you have not seen yet (neither shown to you by podctl nor read)."),
        ] = None,
    ) -> CallToolResult:
        """Read your inbox: messages sent to you after a cursor, oldest first, and the next cursor.

        Each message has id, ts, from, to, kind (tell / ask / reply / notice), text, ask_id and urgent.
        Answer every message of kind "ask" with post_reply(ask_id, text).
        """
        return await shim.call("read_messages", since=since)

    @server.tool(structured_output=False)
    async def post_reply(
        ask_id: Annotated[int, Field(description="The ask_id of the ask you are answering.")],
        text: Annotated[str, Field(description="Your answer.")],
    ) -> CallToolResult:
        """Answer an ask that was sent to you. The asker is woken with your answer.

        Your first reply answers the ask; a later one is delivered as a follow-up.
        """
        return await shim.call("post_reply", ask_id=ask_id, text=text)

    @server.tool(structured_output=False)
    async def list_agents() -> CallToolResult:
        """List the pod's agents (name, cli, role, state busy/idle/stopped, unread count) and its routes
        (named addresses you can ask, e.g. a review route)."""
        return await shim.call("list_agents")

    return server


def announce(client: AsyncClient) -> None:
    """Tell the broker this agent's tools are up, so it may be woken: the client greets it with
    `hello {shim: true}` on every connection, and reconnects at once when the broker restarts
    (a restarted broker must not leave the agent unwakeable)."""
    client.stay_connected()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="podctl shim", description="The stdio MCP server of one podctl agent.")
    parser.add_argument("--pod", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--socket", help="the pod's broker socket")
    parser.add_argument("--token-file", help="this agent's token file")
    parser.add_argument("--state", help="the pod's state folder (stands for its socket and the agent's token in it)")
    parser.add_argument("--wait-cap-ms", type=int, default=None, help="longest single wait_for_reply call")
    args = parser.parse_args(argv)
    paths = PodPaths(args.pod, Path(args.state)) if args.state else PodPaths.of(args.pod)
    socket = Path(args.socket) if args.socket else paths.socket
    token_file = Path(args.token_file) if args.token_file else paths.token_file(args.agent)
    token = os.environ.get("PODCTL_TOKEN")
    if not token:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            print(
                f"podctl shim: no token for agent {args.agent!r} at {token_file}: is it an agent of pod"
                f" {args.pod!r}? Bring the pod up with `podctl up` first.",
                file=sys.stderr,
            )
            return 2
    cap = args.wait_cap_ms or (int(os.environ["PODCTL_WAIT_CAP_MS"]) if os.environ.get("PODCTL_WAIT_CAP_MS") else None)
    shim = Shim(AsyncClient(socket, args.agent, token, greeting={"shim": True}), cap)
    build_server(shim, args.pod, args.agent).run("stdio")
    return 0
