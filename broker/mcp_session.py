"""An agent's MCP session, served by the broker over the connection its relay opened.

The relay (`podctl shim`, shim/relay.py) connects, authenticates with the wire frame
`mcp {session, wait_cap_ms?}`, and from then on the connection carries the CLI's MCP JSON-RPC
lines both ways. Each line goes to an `MCPServer` session (the SDK's own loop, the same one its
stdio transport drives); its answers go back as lines. Tool calls run the broker's operations in
this process, as the authenticated agent (mcp_tools.py).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage

from . import wire
from .mcp_tools import DEFAULT_WAIT_CAP_MS, Tools, build_server

log = logging.getLogger("podctl.broker.mcp")

Handle = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SendLine = Callable[[bytes], Awaitable[None]]


class McpSession:
    """One agent CLI's MCP session: feed it the client's lines, run it, close it."""

    def __init__(
        self, handle: Handle, *, pod: str, agent: str, token: str, session: str, wait_cap_ms: int, send_line: SendLine
    ) -> None:
        self.agent = agent
        self._handle = handle
        self._token = token
        self._ids = itertools.count(1)
        self._send_line = send_line
        self.server = build_server(Tools(self.call, session, wait_cap_ms or DEFAULT_WAIT_CAP_MS), pod, agent)
        self._in_send, self._in_recv = create_context_streams[SessionMessage | Exception](16)
        self._out_send, self._out_recv = create_context_streams[SessionMessage](16)

    async def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """A broker operation as this session's agent, in this process (no socket)."""
        frame = wire.request(next(self._ids), op, self.agent, self._token, args)
        return wire.unwrap(await self._handle(frame))

    async def feed(self, line: bytes) -> None:
        """One JSON-RPC line from the client (the SDK answers a malformed one with an error)."""
        try:
            message: SessionMessage | Exception = SessionMessage(
                mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            )
        except Exception as exc:  # noqa: BLE001 - handed to the session, which reports it
            message = exc
        await self._in_send.send(message)

    async def run(self) -> None:
        """Serve until the client's side closes (the connection ended)."""
        low = self.server._lowlevel_server
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write_out)
            try:
                await low.run(self._in_recv, self._out_send, low.create_initialization_options())
            finally:
                self._out_send.close()

    async def _write_out(self) -> None:
        async with self._out_recv:
            async for message in self._out_recv:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await self._send_line(data.encode("utf-8") + b"\n")

    def close(self) -> None:
        """The connection ended: the session's loop ends once it has read what came before."""
        self._in_send.close()


ENVELOPE_KEY = "io.modelcontextprotocol/protocolVersion"


async def _answers(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The real server's results for `requests`, by method (tool calls fail, as when the broker
    is unreachable: their text is replaced by the relay)."""
    wanted = sum(1 for r in requests if "id" in r)
    lines: list[bytes] = []
    answered = anyio.Event()

    async def send(data: bytes) -> None:
        lines.append(data)
        if len(lines) == wanted:
            answered.set()

    async def handle(frame: dict[str, Any]) -> dict[str, Any]:
        return wire.error(frame.get("id"), "broker_unavailable", "TEXT")

    session = McpSession(
        handle, pod="{pod}", agent="{agent}", token="-", session="0" * 16, wait_cap_ms=DEFAULT_WAIT_CAP_MS, send_line=send
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.run)
        for request in requests:
            await session.feed(json.dumps(request).encode())
        with anyio.fail_after(30):
            await answered.wait()
        session.close()
    methods = {r["id"]: r["method"] for r in requests if "id" in r}
    results = {}
    for line in lines:
        answer = json.loads(line)
        results[methods[answer["id"]]] = answer["result"]
    return results


async def builtin_copy() -> dict[str, Any]:
    """What the relay answers alone while the broker is down (shim/builtin.json): the broker's own
    answers, taken from sessions of the real server in both eras of the protocol (the `initialize`
    handshake, and the per-request envelope that `server/discover` starts)."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

    call = {"name": "list_agents", "arguments": {}}
    legacy = await _answers([
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
            "clientInfo": {"name": "podctl", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
    ])
    meta = {"_meta": {ENVELOPE_KEY: LATEST_MODERN_VERSION,
                      "io.modelcontextprotocol/clientInfo": {"name": "podctl", "version": "0"},
                      "io.modelcontextprotocol/clientCapabilities": {}}}
    modern = await _answers([
        {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": meta},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": meta},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {**call, **meta}},
    ])
    return {
        "handshake_versions": list(HANDSHAKE_PROTOCOL_VERSIONS), "envelope_key": ENVELOPE_KEY,
        "legacy": legacy, "modern": modern,
    }


def write_builtin_copy(path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(anyio.run(builtin_copy), fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    import sys

    write_builtin_copy(sys.argv[1] if len(sys.argv) > 1 else "shim/builtin.json")
