"""What requests may hold at once: slots (how many run, of a connection, an MCP session, an agent),
the bytes budget of all connections, and the connections the open-file limit leaves room for.

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

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (without waiting)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


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
