"""An agent's MCP session, served by the broker over the connection its relay opened.

The relay (`podctl shim`, shim/relay.py) connects, authenticates with the wire frame
`mcp {session, wait_cap_ms?}`, and from then on the connection carries the CLI's MCP JSON-RPC
lines both ways. Each line goes to the session's server (the SDK's low-level `Server` loop over a
pair of memory streams, the one its stdio transport drives; mcp_server.py) and its answers go back
as lines. Tool calls run the broker's operations in this process, directly on the op table, as the agent
the `mcp` frame authenticated (mcp_tools.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import anyio
import mcp_types
from mcp.shared.message import ServerMessageMetadata, SessionMessage

from . import wire
from .mcp_server import stream_server
from .mcp_tools import DEFAULT_WAIT_CAP_MS, Tools, build_server, tool_error
from .slots import MAX_IN_FLIGHT, Slots

log = logging.getLogger("podctl.broker.mcp")

Invoke = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""Run a broker operation as the session's agent: (op, args) -> result, or raise wire.BrokerError."""
SendLine = Callable[[bytes], Awaitable[None]]
Release = Callable[[], None]



def _nothing() -> None:
    pass


class McpSession:
    """One agent CLI's MCP session: feed it the client's lines, run it, close it.

    Its requests are bounded like a connection's frames: at most `max_in_flight` of this session
    and the agent's `agent_slots` run at once, each holding its line's bytes (`release`) until it
    is answered; a request beyond them waits in `feed`, so the connection is not read further
    (back-pressure, nothing dropped)."""

    def __init__(
        self, invoke: Invoke, *, pod: str, agent: str, session: str, wait_cap_ms: int, send_line: SendLine,
        agent_slots: Slots | None = None, max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.agent = agent
        self._send_line = send_line
        self._slots = Slots(max_in_flight)
        self._agent_slots = agent_slots
        self._running: dict[str, list[Release]] = {}
        """The requests the SDK has and has not answered, by id: what each holds."""
        self._gone = False
        self.server = stream_server(build_server(Tools(invoke, session, wait_cap_ms or DEFAULT_WAIT_CAP_MS), pod, agent))
        self._in_send, self._in_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        self._out_send, self._out_recv = anyio.create_memory_object_stream[SessionMessage](16)

    @property
    def running(self) -> int:
        """Requests running (read and not yet answered)."""
        return sum(len(held) for held in self._running.values())

    async def feed(self, line: bytes, release: Release = _nothing) -> None:
        """One JSON-RPC line from the client. A request waits here for a slot of its session and of
        its agent and keeps them (and its bytes: `release`) until it is answered or settles
        unanswered (the client cancelled it). A line that is no valid message is answered here."""
        try:
            message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except Exception:  # noqa: BLE001 - answered as the JSON-RPC error it is
            release()
            await self._refuse(line)
            return
        if not isinstance(message, mcp_types.JSONRPCRequest):
            release()
            if isinstance(message, mcp_types.JSONRPCNotification) and _has_id(line):
                await self._refuse(line)  # an id that is no string or integer reads as a notification
            else:
                await self._to_sdk(SessionMessage(message))
            return
        await self._slots.acquire()
        if self._agent_slots is not None:
            try:
                await self._agent_slots.acquire()
            except BaseException:
                self._slots.release()
                raise
        key = _key(message.id)
        self._running.setdefault(key, []).append(release)
        metadata = ServerMessageMetadata(on_request_unanswered=partial(self._unanswered, key))
        await self._to_sdk(SessionMessage(message, metadata=metadata))

    async def _to_sdk(self, message: SessionMessage) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):  # the session ended
            await self._in_send.send(message)

    async def _refuse(self, line: bytes) -> None:
        """Answer a line the SDK cannot take: -32700 (not JSON), -32600 (no valid message), or for a
        tool call a tool error `bad_request` the model can read (say a lone surrogate in its text)."""
        try:
            raw = json.loads(line)  # lenient (it takes lone surrogates): such a request is answered by its id
        except (ValueError, RecursionError):
            try:
                wire.loads(line)
                why = "not JSON"
            except ValueError as exc:
                why = str(exc)
            await self._send(wire.jsonrpc_error(None, wire.PARSE_ERROR, f"Parse error: {why}"))
            return
        problem = wire.jsonrpc_problem(raw)
        if problem is not None:
            code, req_id, why = problem
            await self._send(wire.jsonrpc_error(req_id, code, f"Invalid request: {why}"))
            return
        if "id" not in raw or "method" not in raw:
            return  # a notification, or a response, is never answered
        try:
            wire.loads(line)
            why = "its params are not those of an MCP request"
        except ValueError as exc:
            why = str(exc)
        if raw.get("method") == "tools/call":
            result = tool_error(wire.BAD_REQUEST, why).model_dump(by_alias=True, exclude_unset=True)
            answer = mcp_types.JSONRPCResponse(jsonrpc="2.0", id=raw["id"], result=result)
            await self._send(answer.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
        else:
            await self._send(wire.jsonrpc_error(raw["id"], wire.INVALID_REQUEST, f"Invalid request: {why}"))

    async def _send(self, data: bytes) -> None:
        if not self._gone:
            try:
                await self._send_line(data)
            except (ConnectionError, OSError):
                self._gone = True

    async def _unanswered(self, key: str) -> None:
        self._settle(key)

    def _settle(self, key: str) -> None:
        """A request was answered (or settled unanswered): what it held is free again."""
        held = self._running.get(key)
        if not held:
            return
        held.pop(0)()
        if not held:
            del self._running[key]
        self._slots.release()
        if self._agent_slots is not None:
            self._agent_slots.release()

    async def run(self) -> None:
        """Serve until the client's side closes (the connection ended)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write_out)
            try:
                await self.server.run(self._in_recv, self._out_send, self.server.create_initialization_options())
            finally:
                self._out_send.close()

    async def _write_out(self) -> None:
        """Send the session's answers; once the client is gone, read and drop them, so the SDK's
        last answers never wait on a connection that is closed."""
        async with self._out_recv:
            async for message in self._out_recv:
                answer = message.message
                data = answer.model_dump_json(by_alias=True, exclude_unset=True)
                await self._send(data.encode("utf-8", "replace") + b"\n")
                if isinstance(answer, mcp_types.JSONRPCResponse | mcp_types.JSONRPCError) and answer.id is not None:
                    self._settle(_key(answer.id))

    def close(self) -> None:
        """The connection ended: the session's loop ends once it has read what came before, and
        every slot its requests held is given back. Idempotent."""
        self._gone = True
        self._in_send.close()
        for key in list(self._running):
            while key in self._running:
                self._settle(key)


def _key(req_id: Any) -> str:
    return json.dumps(req_id)


def _has_id(line: bytes) -> bool:
    """Whether a line the SDK read as a notification has an `id` after all (one it could not take)."""
    if b'"id"' not in line:
        return False
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and "id" in raw


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

    async def invoke(op: str, args: dict[str, Any]) -> Mapping[str, Any]:
        raise wire.BrokerError("broker_unavailable", "TEXT")

    session = McpSession(
        invoke, pod="{pod}", agent="{agent}", session="0" * 16, wait_cap_ms=DEFAULT_WAIT_CAP_MS, send_line=send
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
