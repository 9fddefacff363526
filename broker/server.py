"""The broker's Unix socket server: moves frames between connections and `Broker.handle`.

Each request runs as its own task, so a blocking `wait_for_reply` never holds up other requests
on the same connection. A connection that sent `subscribe` also receives events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from . import wire
from .service import Broker

log = logging.getLogger("podctl.broker.server")

SUBSCRIBER_QUEUE = 10_000


class Connection:
    def __init__(self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.tasks: set[asyncio.Task[None]] = set()
        self.events: asyncio.Queue[dict[str, Any]] | None = None
        self._write_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._write_lock:
            self.writer.write(wire.encode(frame))
            await self.writer.drain()

    async def serve(self) -> None:
        try:
            while True:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    await self.send(wire.error(None, wire.TOO_LARGE, f"frame over {wire.MAX_FRAME_BYTES} bytes"))
                    return
                try:
                    frame = wire.decode(line)
                except (ValueError, json.JSONDecodeError) as exc:
                    await self.send(wire.error(None, wire.BAD_REQUEST, f"not a JSON frame: {exc}"))
                    continue
                task = asyncio.create_task(self._answer(frame))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (ConnectionError, OSError):
            return
        finally:
            await self.close()

    async def _answer(self, frame: dict[str, Any]) -> None:
        if frame.get("op") == "subscribe" and frame.get("v") == wire.PROTOCOL_VERSION:
            await self._subscribe(frame)
            return
        response = await self.broker.handle(frame)
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(response)

    async def _subscribe(self, frame: dict[str, Any]) -> None:
        """Send history after `since`, then every new event, with no gap and no repeat."""
        probe = dict(frame, op="hello", args={})
        checked = await self.broker.handle(probe)
        if not checked.get("ok"):
            await self.send(dict(checked, id=frame.get("id")))
            return
        if frame.get("agent") != "user":
            await self.send(wire.error(frame.get("id"), wire.FORBIDDEN, "subscribe is for the pod's owner (user) only"))
            return
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)

        def push(event: dict[str, Any]) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

        self.broker.subscribers.add(push)
        try:
            since = (frame.get("args") or {}).get("since") or 0
            await self.send(wire.ok(frame.get("id"), {"subscribed": True}))
            last = since
            while True:
                backlog = await self.broker.store.history(last, 1000)
                for message in backlog:
                    await self.send(wire.event("message", message))
                    last = message["id"]
                if len(backlog) < 1000:
                    break
            while True:
                event = await queue.get()
                if event.get("event") == "message":
                    if event["data"]["id"] <= last:
                        continue
                    last = event["data"]["id"]
                await self.send(event)
        except (ConnectionError, OSError):
            return
        finally:
            self.broker.subscribers.discard(push)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), timeout=1.0)


class Server:
    def __init__(self, broker: Broker, socket_path: Path) -> None:
        self.broker = broker
        self.socket_path = socket_path
        self.connections: set[Connection] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(self.socket_path), limit=wire.MAX_FRAME_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self.broker, reader, writer)
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
