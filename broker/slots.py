"""Slots: how many requests may run at once (of a connection, an MCP session, an agent).

A counting semaphore like `asyncio.Semaphore`, whose `acquire` in Python 3.11 walks its waiters on
every call: every request of the broker takes two of these, so the common case (a slot is free and
nobody waits) is one comparison here. A released slot goes straight to the oldest waiter.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

MAX_IN_FLIGHT = 32
"""Requests of one connection, or one MCP session, running at once."""


class Slots:
    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed a slot, then cancelled before it ran: pass the slot on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
