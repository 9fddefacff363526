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
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from . import wire

DEFAULT_WAIT_CAP_MS = 50_000
"""Each wait_for_reply call returns before the CLIs' own tool timeout (about 60 s)."""

SERVER_NAME = "podctl"
INSTRUCTIONS = """\
You are one agent of a podctl pod: a team of AI coding agents (and a human named `user`) who
message each other with these tools.
- list_agents() shows who is in the pod, their roles, whether they are busy, and the pod's routes.
- tell(to, text) sends a note; ask(to, text) asks a question and returns an ask_id;
  wait_for_reply(ask_id) waits for the answer (call it again while it says "pending": no reply is lost).
- `to` is an agent name, a route name (asks all its members), a list of names, or "all" (every other agent).
- Messages reach your context by themselves; read_messages() lists your inbox. A message has id, ts,
  from, to, kind (tell, ask, reply, notice), text, ask_id and urgent.
- Answer every ask (kind "ask") with post_reply(ask_id, text). An ask with answered: true you already
  answered: another reply to it is only a follow-up.
- Results are JSON; a call that fails returns {"error": {"code", "message"}}.
"""

Recipients = Annotated[str | list[str], Field(description='A name, a route, a list of names, or "all".')]

Call = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""Run a broker operation as the session's agent: (op, args) -> result, or raise wire.BrokerError."""


def instructions(pod: str, agent: str) -> str:
    return INSTRUCTIONS + f"\nYou are agent `{agent}` of pod `{pod}`.\n"


def _dump(result: Mapping[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=1)


def _result(data: Mapping[str, Any]) -> CallToolResult:
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
            result = dict(await self._call("wait_for_reply", {"ask_id": ask_id, "timeout_ms": this_call}))
        except wire.BrokerError as exc:
            return tool_error(exc.code, exc.message)
        if result.get("status") == "timeout" and timeout_ms > this_call:
            result["status"] = "pending"
            result["remaining_ms"] = timeout_ms - this_call
            result["hint"] = "No reply yet. Call wait_for_reply again with the same ask_id to keep waiting."
        elif result.get("status") == "timeout":
            result["hint"] = "No reply within timeout_ms. You can wait again, check later with check_replies, or go on."
        return _result(result)


def _lean(tool: Tool) -> Tool:
    """The tool without the `title`s pydantic generates (the arguments model's and each argument's):
    every model request of every agent carries the tool list, so it says each thing once."""
    schema = dict(tool.parameters)
    schema.pop("title", None)
    schema["properties"] = {
        name: {k: v for k, v in prop.items() if k != "title"} for name, prop in schema.get("properties", {}).items()
    }
    tool.parameters = schema
    return tool


def build_server(tools: Tools, pod: str, agent: str) -> MCPServer:
    """An MCP server of the seven tools for one session. What they share (what `to` takes, a
    message's fields, answering asks, errors) is said once, in the server's instructions."""

    async def tell(
        to: Recipients,
        text: Annotated[str, Field(description="Plain text; point to files rather than pasting them.")],
        ctx: Context,
        urgent: Annotated[bool, Field(description="Wake an idle recipient. Use sparingly.")] = False,
    ) -> CallToolResult:
        """Send a note (no reply expected). Returns message_id and each recipient's state."""
        return await tools.call("tell", to=to, text=text, urgent=urgent, client_msg_id=tools.msg_id(ctx))

    async def ask(
        to: Recipients,
        text: Annotated[str, Field(description="The question, with all the recipients need.")],
        ctx: Context,
    ) -> CallToolResult:
        """Ask teammates (they are woken to answer); returns the ask_id to wait_for_reply on."""
        return await tools.call("ask", to=to, text=text, client_msg_id=tools.msg_id(ctx))

    async def wait_for_reply(
        ask_id: int,
        timeout_ms: Annotated[int, Field(description="How long to wait in all.")] = 300_000,
    ) -> CallToolResult:
        """Wait for your ask's replies. status: replied, expired (a route's timeout passed), timeout,
        or pending (a call waits at most about 50 s: call again)."""
        return await tools.wait_for_reply(ask_id, timeout_ms)

    async def check_replies(ask_id: int) -> CallToolResult:
        """Without waiting: your ask's replies so far, and whether each recipient has seen it."""
        return await tools.call("check_replies", ask_id=ask_id)

    async def read_messages(
        since: Annotated[int | None, Field(description="A cursor (next): all after it. Omit: only unseen.")] = None,
    ) -> CallToolResult:
        """Your inbox, oldest first, and the next cursor."""
        return await tools.call("read_messages", **({} if since is None else {"since": since}))

    async def post_reply(ask_id: int, text: str, ctx: Context) -> CallToolResult:
        """Answer an ask sent to you (the asker is woken). A later reply to it is a follow-up."""
        return await tools.call("post_reply", ask_id=ask_id, text=text, client_msg_id=tools.msg_id(ctx))

    async def list_agents() -> CallToolResult:
        """The pod's agents (role, state, unread) and routes (addresses you can ask)."""
        return await tools.call("list_agents")

    functions = (tell, ask, wait_for_reply, check_replies, read_messages, post_reply, list_agents)
    return MCPServer(
        name=SERVER_NAME, log_level="WARNING", instructions=instructions(pod, agent),
        tools=[
            _lean(Tool.from_function(fn, description=" ".join((fn.__doc__ or "").split()), structured_output=False))
            for fn in functions
        ],
    )
