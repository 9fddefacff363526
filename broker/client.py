"""An asyncio client of the broker for long-lived callers (benchmarks, tools written in asyncio).

It reconnects by itself: a call made while the broker restarts waits (up to its timeout) for the
broker to come back, and write requests carry a `client_msg_id` so a retried send is stored once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import wire

if TYPE_CHECKING:
    from .calls import AsyncCalls

RETRIED_WRITES = frozenset({"tell", "ask", "post_reply"})


class AsyncClient:
    def __init__(self, socket_path: str | os.PathLike[str], agent: str, token: str) -> None:
        self.socket_path = os.fspath(socket_path)
        self.agent = agent
        self.token = token
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._read_task: asyncio.Task[None] | None = None
        self._next_id = 0
        self._connect_lock = asyncio.Lock()

    async def _ensure(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=wire.MAX_ANSWER_BYTES)
            except OSError as exc:
                raise wire.BrokerUnavailable(f"cannot reach the broker at {self.socket_path}: {exc}") from exc
            self._writer = writer
            self._read_task = asyncio.create_task(self._read_loop(reader))
            return writer

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readuntil(b"\n")
                frame = wire.decode(line)
                req_id = frame.get("id")
                fut = self._pending.pop(req_id, None) if isinstance(req_id, int) else None
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(wire.BrokerUnavailable("the broker closed the connection"))

    async def _exchange(
        self, writer: asyncio.StreamWriter, op: str, timeout: float, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Send one request on `writer` and wait for its response frame."""
        self._next_id += 1
        req_id = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            writer.write(wire.encode(wire.request(req_id, op, self.agent, self.token, args)))
            async with asyncio.timeout(timeout):  # no task of its own per call, unlike wait_for
                await writer.drain()
                return await fut
        except (ConnectionError, OSError) as exc:
            self._drop_connection()
            raise wire.BrokerUnavailable(f"lost the broker during {op}: {exc}") from exc
        except TimeoutError as exc:
            raise wire.BrokerUnavailable(f"the broker did not answer {op} within {timeout:.0f}s") from exc
        finally:
            self._pending.pop(req_id, None)

    async def call_once(self, op: str, timeout: float, **args: Any) -> dict[str, Any]:
        """One attempt: raises BrokerUnavailable if the broker is unreachable or the connection drops."""
        writer = await self._ensure()
        return wire.unwrap(await self._exchange(writer, op, timeout, args))

    async def _call(self, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Call `op`, reconnecting while the broker is away, for at most `timeout` seconds."""
        if op in RETRIED_WRITES and "client_msg_id" not in args:
            args["client_msg_id"] = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                return await self.call_once(op, max(remaining, 0.05), **args)
            except wire.BrokerUnavailable:
                if time.monotonic() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    if TYPE_CHECKING:
        call: AsyncCalls
        """`await call(op, timeout=30.0, **args)`: typed per operation (calls.AsyncCalls)."""
    else:
        call = _call

    call_untyped = _call
    """`call` for an operation named at run time: untyped."""

    async def events(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Subscribe (user only) on a connection of its own and yield event frames as they come.

        Raises BrokerUnavailable when the broker goes away: subscribe again from the last message
        id seen (the messages after it are sent again)."""
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=wire.MAX_ANSWER_BYTES)
        except OSError as exc:
            raise wire.BrokerUnavailable(f"cannot reach the broker at {self.socket_path}: {exc}") from exc
        try:
            writer.write(wire.encode(wire.request(0, "subscribe", self.agent, self.token, {"since": since})))
            await writer.drain()
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError) as exc:
                    raise wire.BrokerUnavailable(f"lost the broker at {self.socket_path}: {exc}") from exc
                frame = wire.decode(line)
                if "event" in frame:
                    yield frame
                else:
                    wire.unwrap(frame)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        self._drop_connection()
