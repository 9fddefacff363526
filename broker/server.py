"""The broker's Unix socket server: moves frames between connections and `Broker.handle`.

Each request runs as its own task, so a blocking `wait_for_reply` never holds up other requests
on the same connection. A connection that sent `subscribe` also receives events.

No client can cost the others their service or the broker its memory (docs/architecture.md,
"Limits and failure behaviour"): a frame is at most `MAX_FRAME_BYTES`; unfinished and unanswered
frames of all connections together hold at most `BUFFER_BUDGET` bytes (the connection holding the
most is dropped first); a connection has at most `MAX_IN_FLIGHT` requests running (it is not read
further until one ends); a client that does not read its answers is dropped once its unsent
output passes `MAX_UNSENT_BYTES` for `STALL_S`; at most `max_connections` are open (the idlest
is evicted for a new one, else the new one is refused); an event subscriber that falls behind
gets a gap marker and the messages again from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from . import wire
from .mcp_session import McpSession
from .service import Broker

log = logging.getLogger("podctl.broker.server")

MAX_FRAME_BYTES = 8 * 1024 * 1024
"""One request frame (a 1 MiB message escaped as JSON fits)."""
BUFFER_BUDGET = 64 * 1024 * 1024
"""Bytes of unfinished plus not yet answered request frames, all connections together."""
MAX_IN_FLIGHT = 32
MAX_UNSENT_BYTES = 4 * 1024 * 1024
STALL_S = 5.0
READ_CHUNK = 64 * 1024
SUBSCRIBER_QUEUE = 1000
HISTORY_PAGE = 500


class Budget:
    """The bytes all connections may hold in request frames not yet answered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


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
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._write_lock = asyncio.Lock()
        with contextlib.suppress(Exception):
            writer.transport.set_write_buffer_limits(high=MAX_UNSENT_BYTES // 4)

    @property
    def idle(self) -> bool:
        return not self.tasks and not self.subscribed and self.mcp is None

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
        buf = bytearray()
        try:
            while not self.closed:
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    return
                self.last_active = time.monotonic()
                if len(buf) + len(chunk) > MAX_FRAME_BYTES:
                    await self._refuse(wire.TOO_LARGE, f"frame over {MAX_FRAME_BYTES} bytes: the connection is closed")
                    return
                if not self._hold(len(chunk)):
                    await self._refuse(wire.BUSY, "the broker is short of memory for requests: try again shortly")
                    return
                buf += chunk
                while (end := buf.find(b"\n")) >= 0:
                    line = bytes(buf[: end + 1])
                    del buf[: end + 1]
                    if self.mcp is not None:
                        await self.mcp.feed(line)
                        self._release(len(line))
                        continue
                    if b'"mcp"' in line and await self._start_mcp(line):
                        continue
                    await self._slots.acquire()
                    task = asyncio.create_task(self._answer(line))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        except (ConnectionError, OSError):
            return
        finally:
            self._release(len(buf))
            if self.mcp is not None:
                self.mcp.close()
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
        agent, token = str(frame["agent"]), str(frame["token"])
        self.mcp = McpSession(
            self.broker.handle, pod=self.broker.spec.name, agent=agent, token=token, session=str(result["session"]),
            wait_cap_ms=int(result["wait_cap_ms"]), send_line=self.send_raw,
        )
        task = asyncio.create_task(self._run_mcp(self.mcp))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run_mcp(self, session: McpSession) -> None:
        try:
            await session.run()
        except Exception:
            log.exception("the MCP session of %s failed", session.agent)
        finally:
            self.broker.mcp_closed(session.agent)
            self.server.drop(self, "its MCP session ended")

    async def send_raw(self, data: bytes) -> None:
        """Write a frame or an MCP line; a client that does not read them is dropped."""
        async with self._write_lock:
            if self.closed:
                raise ConnectionResetError("connection closed")
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), timeout=STALL_S)
            except TimeoutError:
                self.server.drop(self, "it does not read its answers")
                raise ConnectionResetError("client does not read") from None

    async def _refuse(self, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            self.writer.write(wire.encode(wire.error(None, code, message)))
            await asyncio.wait_for(self.writer.drain(), timeout=1.0)

    async def _answer(self, line: bytes) -> None:
        size = len(line)
        try:
            try:
                frame = wire.decode(line)
            except ValueError as exc:
                await self.send(wire.error(None, wire.BAD_REQUEST, f"not a JSON frame: {exc}"))
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
            response = await self.broker.handle(frame)
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
        probe = dict(frame, op="hello", args={})
        checked = await self.broker.handle(probe)
        if not checked.get("ok"):
            await self.send(dict(checked, id=frame.get("id")))
            return
        if frame.get("agent") != "user":
            await self.send(wire.error(frame.get("id"), wire.FORBIDDEN, "subscribe is for the pod's owner (user) only"))
            return
        since = (frame.get("args") or {}).get("since") or 0
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            await self.send(wire.error(frame.get("id"), wire.BAD_REQUEST, "since must be a message cursor >= 0"))
            return
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
            await self.send(wire.ok(frame.get("id"), {"subscribed": True}))
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
        if self.closed:
            return
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), timeout=1.0)


def default_max_connections() -> int:
    """Room for connections within the open-file limit, keeping some for the store, logs and tmux."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        soft = 1024
    return max(16, min(4096, soft - 128))


def raise_fd_limit(target: int = 8192) -> None:
    """Raise the soft open-file limit towards the hard one, where allowed."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass


class Server:
    def __init__(self, broker: Broker, socket_path: Path, max_connections: int | None = None) -> None:
        self.broker = broker
        self.socket_path = socket_path
        self.connections: set[Connection] = set()
        self.budget = Budget(BUFFER_BUDGET)
        self.max_connections = max_connections or default_max_connections()
        self._server: asyncio.base_events.Server | None = None

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

    def drop(self, conn: Connection, why: str) -> None:
        """Close a connection at once, discarding what it has not read (a close would wait for it)."""
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
