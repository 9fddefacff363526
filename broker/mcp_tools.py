"""The seven MCP tools an agent's CLI gets, served by the broker itself.

Each agent's `podctl shim` is a thin relay (shim/relay.py) that carries its CLI's MCP session to
the broker; here each session gets an `MCPServer` whose tools call the broker's operations in
this process, as that agent. The `mcp` SDK is imported once per pod, not once per agent.

Results are JSON text that a model and a program can both read; a failed call is a tool error
`{"error": {"code", "message"}}`. Writes carry a `client_msg_id` made of the relay's session id
and the JSON-RPC request id, so a call the relay sends again after a broker restart is stored
once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from . import wire

DEFAULT_WAIT_CAP_MS = 50_000
"""Each wait_for_reply call returns before the CLIs' own tool timeout (about 60 s)."""

SERVER_NAME = "podctl"
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

Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Run a broker operation as the session's agent: (op, args) -> result, or raise wire.BrokerError."""


def instructions(pod: str, agent: str) -> str:
    return INSTRUCTIONS + f"\nYou are agent `{agent}` of pod `{pod}`.\n"


def _dump(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=1)


def _result(data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=_dump(data))])


def tool_error(code: str, message: str) -> CallToolResult:
    """A tool error the model can read: `{"error": {"code", "message"}}` with isError set."""
    return CallToolResult(
        content=[TextContent(type="text", text=_dump({"error": {"code": code, "message": message}}))], is_error=True
    )


class Tools:
    """The tools' behaviour for one session, apart from their MCP declarations."""

    def __init__(self, call: Call, session: str, wait_cap_ms: int) -> None:
        self._call = call
        self.session = session
        self.wait_cap_ms = wait_cap_ms

    async def call(self, op: str, **args: Any) -> CallToolResult:
        try:
            return _result(await self._call(op, args))
        except wire.BrokerError as exc:
            return tool_error(exc.code, exc.message)

    def msg_id(self, ctx: Context) -> str:
        """The same id for a call the relay sends again after a broker restart."""
        return f"{self.session}:{ctx.request_id}"

    async def wait_for_reply(self, ask_id: int, timeout_ms: int) -> CallToolResult:
        """Wait at most `timeout_ms`, but never longer than the cap in one call (the CLIs cut a tool
        call at about 60 s): past the cap the answer is "pending", and the agent calls again."""
        if timeout_ms < 0:
            return tool_error(wire.BAD_REQUEST, "timeout_ms must be >= 0")
        this_call = min(timeout_ms, self.wait_cap_ms)
        try:
            result = await self._call("wait_for_reply", {"ask_id": ask_id, "timeout_ms": this_call})
        except wire.BrokerError as exc:
            return tool_error(exc.code, exc.message)
        if result.get("status") == "timeout" and timeout_ms > this_call:
            result["status"] = "pending"
            result["remaining_ms"] = timeout_ms - this_call
            result["hint"] = "No reply yet. Call wait_for_reply again with the same ask_id to keep waiting."
        elif result.get("status") == "timeout":
            result["hint"] = "No reply within timeout_ms. You can wait again, check later with check_replies, or go on."
        return _result(result)


def build_server(tools: Tools, pod: str, agent: str) -> MCPServer:
    server = MCPServer(name=SERVER_NAME, log_level="WARNING", instructions=instructions(pod, agent))

    @server.tool(structured_output=False)
    async def tell(
        to: Recipients,
        text: Annotated[str, Field(description="The message. Plain text; point to files rather than pasting them.")],
        ctx: Context,
        urgent: Annotated[bool, Field(description="Wake the recipient even if it is idle. Use sparingly.")] = False,
    ) -> CallToolResult:
        """Send a note to teammates (fire-and-forget; no reply expected).

        Returns JSON with the message_id and, per recipient, its state (busy/idle/stopped). A
        stopped recipient gets the message when it starts again.
        """
        return await tools.call("tell", to=to, text=text, urgent=urgent, client_msg_id=tools.msg_id(ctx))

    @server.tool(structured_output=False)
    async def ask(
        to: Recipients,
        text: Annotated[str, Field(description="The question or request, with everything the recipient needs.")],
        ctx: Context,
    ) -> CallToolResult:
        """Ask teammates something and get an ask_id; the recipients are woken to answer.

        Then call wait_for_reply(ask_id) to wait for the answer (or check_replies(ask_id) later).
        Asking a route (see list_agents) asks all its members.
        """
        return await tools.call("ask", to=to, text=text, client_msg_id=tools.msg_id(ctx))

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
        return await tools.wait_for_reply(ask_id, timeout_ms)

    @server.tool(structured_output=False)
    async def check_replies(
        ask_id: Annotated[int, Field(description="The ask_id that ask() returned.")],
    ) -> CallToolResult:
        """Check, without waiting, whether your ask was answered and whether each recipient has seen it
        (delivery state queued / injected / read, with times)."""
        return await tools.call("check_replies", ask_id=ask_id)

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
        Answer every message of kind "ask" with post_reply(ask_id, text); an ask with answered: true
        you already answered (a new reply to it is only a follow-up).
        """
        return await tools.call("read_messages", **({} if since is None else {"since": since}))

    @server.tool(structured_output=False)
    async def post_reply(
        ask_id: Annotated[int, Field(description="The ask_id of the ask you are answering.")],
        text: Annotated[str, Field(description="Your answer.")],
        ctx: Context,
    ) -> CallToolResult:
        """Answer an ask that was sent to you. The asker is woken with your answer.

        Your first reply answers the ask; a later one is delivered as a follow-up, and the result names
        the asks to you that are still open.
        """
        return await tools.call("post_reply", ask_id=ask_id, text=text, client_msg_id=tools.msg_id(ctx))

    @server.tool(structured_output=False)
    async def list_agents() -> CallToolResult:
        """List the pod's agents (name, cli, role, state busy/idle/stopped, unread count) and its routes
        (named addresses you can ask, e.g. a review route)."""
        return await tools.call("list_agents")

    return server

