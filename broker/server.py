"""The broker's Unix socket server: moves frames between connections and `Broker.handle`.

Each request runs as its own task, so a blocking `wait_for_reply` never holds up other requests
on the same connection; a committing request (a tell, an ask) is checked at once and answered from
its group commit's callback, with no task (`Broker.submit`). A connection that sent `subscribe`
also receives events; one that sent `mcp` carries its agent's MCP session (mcp_session.py) from then on.

No client can cost the others their service or the broker its memory (docs/architecture.md,
"Limits and failure behaviour"): a request (frame or MCP line) is at most
`wire.MAX_REQUEST_BYTES`; unfinished and unanswered requests of all connections together hold at
most `BUFFER_BUDGET` bytes (the connection holding the most is dropped first); a connection (or
MCP session) has at most `MAX_IN_FLIGHT` requests running and an agent `AGENT_IN_FLIGHT` over all
its connections (it is not read further until one ends); an agent has at most
`MCP_SESSIONS_PER_AGENT` MCP sessions (a new one closes its idlest); a client that does not read
its answers is dropped once its unsent output passes `MAX_UNSENT_BYTES` for `STALL_S`; at most
`max_connections` are open (the idlest is evicted for a new one, else the new one is refused); an
event subscriber that falls behind gets a gap marker and the messages again from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from . import wire
from .mcp_session import McpSession
from .paths import USER
from .service import Broker
from .slots import MAX_IN_FLIGHT, Budget, Slots, default_max_connections

log = logging.getLogger("podctl.broker.server")

BUFFER_BUDGET = 64 * 1024 * 1024
"""Bytes of unfinished plus not yet answered requests, all connections together."""
AGENT_IN_FLIGHT = 64
"""Requests of one agent running at once, over all its connections and MCP sessions (the pod's
owner, `user`, is bound only per connection)."""
MCP_SESSIONS_PER_AGENT = 8
"""MCP sessions one agent may have open; a new one closes the idlest (a restarting CLI gets in)."""
MAX_UNSENT_BYTES = 4 * 1024 * 1024
STALL_S = 5.0
READ_CHUNK = 64 * 1024
SUBSCRIBER_QUEUE = 1000
HISTORY_PAGE = 500
MCP_CLOSE_GRACE_S = 5.0
"""How long a closed connection's MCP session may take to end its own loop before it is cancelled."""


class Connection:
    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.broker = server.broker
        self.reader = reader
        self.writer = writer
        self.tasks: set[asyncio.Task[None]] = set()
        self.subscribed = False
        self.mcp: McpSession | None = None
        """Set once the relay of an agent's CLI asked for MCP: every line is then MCP JSON-RPC."""
        self.held = 0
        """Bytes this connection holds against the budget (its unfinished frame and running requests)."""
        self.last_active = time.monotonic()
        self.closed = False
        self._serving: asyncio.Task[Any] | None = None
        self._mcp_task: asyncio.Task[None] | None = None
        self._slots = Slots(MAX_IN_FLIGHT)
        self._out: list[bytes] = []
        """Frames and lines to write, in order, at the end of this turn of the loop (one send for all)."""
        self._flushing = False
        self.answering = 0
        """Committing requests answered from the group commit's callback (`_answer_now`), not yet answered."""
        with contextlib.suppress(Exception):
            writer.transport.set_write_buffer_limits(high=MAX_UNSENT_BYTES // 4)

    @property
    def idle(self) -> bool:
        return not self.tasks and not self.answering and not self.subscribed and self.mcp is None

    @property
    def mcp_busy(self) -> bool:
        """Its MCP session has a request running."""
        return self.mcp is not None and self.mcp.running > 0

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_raw(wire.encode(frame))

    def _hold(self, n: int) -> bool:
        """Count `n` more bytes against the budget, evicting the biggest holder if that frees enough."""
        while not self.server.budget.take(n):
            victim = max(self.server.connections, key=lambda c: c.held, default=None)
            if victim is None or victim is self or victim.held < n:
                return False
            self.server.drop(victim, f"it held {victim.held} bytes of unfinished requests while the broker was short")
        self.held += n
        return True

    def _release(self, n: int) -> None:
        self.held -= n
        self.server.budget.give(n)

    async def serve(self) -> None:
        """Read requests until the client closes, or `close` ends it (even while it waits for a slot)."""
        self._serving = asyncio.current_task()
        buf = bytearray()
        try:
            while not self.closed:
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    return
                self.last_active = time.monotonic()
                if len(buf) + len(chunk) > wire.MAX_REQUEST_BYTES:
                    await self._refuse(
                        wire.TOO_LARGE, f"a request over {wire.MAX_REQUEST_BYTES} bytes: the connection is closed"
                    )
                    return
                if not self._hold(len(chunk)):
                    await self._refuse(wire.BUSY, "the broker is short of memory for requests: try again shortly")
                    return
                buf += chunk
                while (end := buf.find(b"\n")) >= 0:
                    line = bytes(buf[: end + 1])
                    del buf[: end + 1]
                    if self.mcp is not None:
                        await self.mcp.feed(line, partial(self._release, len(line)))
                        continue
                    if b'"mcp"' in line and await self._start_mcp(line):
                        continue
                    await self._slots.acquire()
                    frame, problem = _decoded(line)
                    if frame is None or not self._answer_now(frame, len(line)):
                        task = asyncio.create_task(self._answer(line, frame, problem))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
        except (ConnectionError, OSError):
            return
        finally:
            self._release(len(buf))
            await self.close()

    async def _start_mcp(self, line: bytes) -> bool:
        """Switch this connection to MCP if `line` is an `mcp` request the broker accepts; the
        lines after it are then the agent's MCP session (no other frame is read on it)."""
        try:
            frame = wire.decode(line)
        except ValueError:
            return False
        if frame.get("op") != "mcp":
            return False
        self._release(len(line))
        response = await self.broker.handle(frame)
        await self.send(response)
        if not response.get("ok"):
            return True
        result = response["result"]
        agent = str(frame["agent"])
        self.mcp = McpSession(
            partial(self.broker.invoke_member, agent), pod=self.broker.spec.name, agent=agent, session=str(result["session"]),
            wait_cap_ms=int(result["wait_cap_ms"]), send_line=self.send_raw, agent_slots=self.server.agent_slots(agent),
        )
        self.server.add_mcp(self, agent)
        self._mcp_task = asyncio.create_task(self._run_mcp(self.mcp))
        return True

    async def _run_mcp(self, session: McpSession) -> None:
        try:
            await session.run()
        except Exception as exc:  # a client going away is normal; anything else is logged
            if not _client_gone(exc):
                log.exception("the MCP session of %s failed", session.agent)
        finally:
            log.info("the MCP session of %s ended", session.agent)
            self.broker.mcp_closed(session.agent)
            self.server.drop(self, None)

    async def send_raw(self, data: bytes) -> None:
        """Write a frame or an MCP line; a client that does not read them is dropped.

        What is sent in one turn of the loop (a group commit answers many requests at once) goes
        out in one write at the end of it. A client whose unsent answers pass the transport's
        high-water mark is waited for, at most STALL_S, then dropped."""
        if self._queue(data):
            await self._drain()

    def _queue(self, data: bytes) -> bool:
        """Queue `data` for the write at the end of this turn of the loop; True if the client's unsent
        answers passed the high-water mark (then `_drain`)."""
        if self.closed or self.writer.is_closing():
            raise ConnectionResetError("connection closed")
        self._out.append(data)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        return self.writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES // 4

    async def _drain(self) -> None:
        self._flush()
        try:
            await asyncio.wait_for(self.writer.drain(), timeout=STALL_S)
        except TimeoutError:
            self.server.drop(self, "it does not read its answers")
            raise ConnectionResetError("client does not read") from None

    async def _drain_quietly(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._drain()

    def _flush(self) -> None:
        self._flushing = False
        if self._out and not self.closed and not self.writer.is_closing():
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self.writer.write(data)

    async def _refuse(self, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            self.writer.write(wire.encode(wire.error(None, code, message)))
            await asyncio.wait_for(self.writer.drain(), timeout=1.0)

    def _answer_now(self, frame: dict[str, Any], size: int) -> bool:
        """Answer a committing request (a tell, an ask) without a task: the broker checks it and queues
        its message now and answers from the group commit's callback. False: `_answer` takes it."""
        if not self.broker.commits(frame):
            return False
        agent = self.broker.identify(frame)
        if agent is None:
            return False
        slots = self.server.slots_of(agent)
        if slots is not None and not slots.try_acquire():
            return False
        self.answering += 1

        def respond(response: dict[str, Any]) -> None:
            self.answering -= 1
            if slots is not None:
                slots.release()
            self._release(size)
            self._slots.release()
            self.last_active = time.monotonic()
            with contextlib.suppress(ConnectionError, OSError):
                if self._queue(wire.encode(response)):
                    task = asyncio.create_task(self._drain_quietly())
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

        if self.broker.submit(frame, agent, respond):
            return True
        self.answering -= 1
        if slots is not None:
            slots.release()
        return False

    async def _answer(self, line: bytes, frame: dict[str, Any] | None, problem: str) -> None:
        """Answer one request in a task of its own (`frame`: the line decoded; None: why not, `problem`)."""
        size = len(line)
        try:
            if frame is None:
                await self.send(wire.error(_lenient_id(line), wire.BAD_REQUEST, f"not a valid frame: {problem}"))
                return
            if frame.get("op") == "subscribe" and frame.get("v") == wire.PROTOCOL_VERSION:
                self._release(size)
                size = 0
                self._slots.release()
                try:
                    await self._subscribe(frame)
                finally:
                    await self._slots.acquire()
                return
            slots = self.server.slots_of(self.broker.identify(frame))
            if slots is None:
                response = await self.broker.handle(frame)
            else:
                await slots.acquire()
                try:
                    response = await self.broker.handle(frame)
                finally:
                    slots.release()
            del frame, line
            self._release(size)
            size = 0
            await self.send(response)
        except (ConnectionError, OSError):
            pass
        finally:
            if size:
                self._release(size)
            self._slots.release()
            self.last_active = time.monotonic()

    async def _subscribe(self, frame: dict[str, Any]) -> None:
        """Send history after `since`, then every new event, with no gap and no repeat.

        A subscriber that falls behind by more than `SUBSCRIBER_QUEUE` events gets a `gap` event
        saying how many were skipped; the messages among them are sent again from the store.
        """
        checked = await self.broker.handle(frame)
        if not checked.get("ok"):
            await self.send(checked)
            return
        since = (frame.get("args") or {}).get("since") or 0
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        skipped = 0

        def push(event: dict[str, Any]) -> None:
            nonlocal skipped
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                skipped += 1

        self.subscribed = True
        self.broker.subscribers.add(push)
        try:
            await self.send(checked)
            last = await self._replay(since)
            while True:
                event = await queue.get()
                if skipped:
                    count, skipped = skipped, 0
                    await self.send(wire.event("gap", {"skipped": count, "after": last, "ts": time.time()}))
                    last = await self._replay(last)
                if event.get("event") == "message":
                    if event["data"]["id"] <= last:
                        continue
                    last = event["data"]["id"]
                await self.send(event)
        except (ConnectionError, OSError):
            return
        finally:
            self.subscribed = False
            self.broker.subscribers.discard(push)

    async def _replay(self, last: int) -> int:
        """Send every stored message after `last`; returns the new cursor."""
        while True:
            backlog = await self.broker.store.history(last, HISTORY_PAGE)
            for message in backlog.messages:
                await self.send(wire.event("message", message))
                last = message["id"]
            if not backlog.more:
                return last

    async def close(self) -> None:
        """End the connection: its requests are cancelled, its MCP session is closed (its requests'
        slots given back at once; the SDK ends its loop itself, or is cancelled after
        `MCP_CLOSE_GRACE_S`), and its reader stops even if it was waiting for a slot."""
        if self.closed:
            return
        self._flush()  # what was answered before the end goes out (a dropped connection's is discarded)
        self.closed = True
        self.server.remove_mcp(self)
        for task in list(self.tasks):
            task.cancel()
        if self.mcp is not None:
            self.mcp.close()
        if self._mcp_task is not None and not self._mcp_task.done():
            asyncio.get_running_loop().call_later(MCP_CLOSE_GRACE_S, self._mcp_task.cancel)
        if self._serving is not None and self._serving is not asyncio.current_task():
            self._serving.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), timeout=1.0)


def _decoded(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """A request line's frame, or None and why it is none."""
    try:
        return wire.decode(line), ""
    except ValueError as exc:
        return None, str(exc)


def _lenient_id(line: bytes) -> Any:
    """The id of a frame refused as invalid, if a lenient parser finds one (a lone surrogate in its
    text): its client waits for that id."""
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):
        return None
    req_id = frame.get("id") if isinstance(frame, dict) else None
    return req_id if isinstance(req_id, int | str) and not isinstance(req_id, bool) else None


def _client_gone(exc: BaseException) -> bool:
    """Whether an error (or every error of a group) is the client's connection going away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_client_gone(e) for e in exc.exceptions)
    return isinstance(exc, ConnectionError | BrokenPipeError)


class Server:
    def __init__(self, broker: Broker, socket_path: Path, max_connections: int | None = None) -> None:
        self.broker = broker
        self.socket_path = socket_path
        self.connections: set[Connection] = set()
        self.budget = Budget(BUFFER_BUDGET)
        self.max_connections = max_connections or default_max_connections()
        self._server: asyncio.base_events.Server | None = None
        self._agent_slots: dict[str, Slots] = {}
        self._mcp: dict[str, list[Connection]] = {}
        """Each agent's connections that carry an MCP session, oldest first."""

    def agent_slots(self, agent: str) -> Slots:
        """The requests an agent (authenticated: one of the pod's) may have running at once."""
        slots = self._agent_slots.get(agent)
        if slots is None:
            slots = self._agent_slots[agent] = Slots(AGENT_IN_FLIGHT)
        return slots

    def slots_of(self, agent: str | None) -> Slots | None:
        """The slots one request of `agent` runs within (None: a request that does not authenticate,
        or the owner's, is bound only by its connection's)."""
        if agent is None or agent == USER:
            return None
        return self.agent_slots(agent)

    def add_mcp(self, conn: Connection, agent: str) -> None:
        """A new MCP session of `agent`; past `MCP_SESSIONS_PER_AGENT` its idlest one (no request
        running, quiet the longest) is closed, so a CLI that restarts always gets in."""
        sessions = self._mcp.setdefault(agent, [])
        while len(sessions) >= MCP_SESSIONS_PER_AGENT:
            victim = min(sessions, key=lambda c: (c.mcp_busy, c.last_active))
            sessions.remove(victim)
            self.drop(victim, f"agent {agent} opened more than {MCP_SESSIONS_PER_AGENT} MCP sessions: its idlest was closed")
        sessions.append(conn)

    def remove_mcp(self, conn: Connection) -> None:
        if conn.mcp is not None and conn in (sessions := self._mcp.get(conn.mcp.agent, [])):
            sessions.remove(conn)

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(self.socket_path), limit=READ_CHUNK
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)

    def drop(self, conn: Connection, why: str | None) -> None:
        """Close a connection at once, discarding what it has not read (a close would wait for it);
        `why` is logged (None: an end that is normal, such as an MCP session's)."""
        if why is not None:
            log.warning("dropped a client connection: %s", why)
        self.connections.discard(conn)
        with contextlib.suppress(Exception):
            conn.writer.transport.abort()
        asyncio.get_running_loop().create_task(conn.close())

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        if len(self.connections) >= self.max_connections:
            idle = [c for c in self.connections if c.idle]
            if not idle:
                log.warning("refused a connection: %d open, none idle", len(self.connections))
                with contextlib.suppress(Exception):
                    writer.write(wire.encode(wire.error(None, wire.BUSY, "too many connections to this broker")))
                    writer.close()
                return
            self.drop(min(idle, key=lambda c: c.last_active), "it was the idlest of too many connections")
        self.connections.add(conn)
        try:
            await conn.serve()
        except asyncio.CancelledError:
            if not conn.closed:
                raise  # the broker stops; a connection that was closed ends here quietly
        finally:
            self.connections.discard(conn)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            await conn.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
