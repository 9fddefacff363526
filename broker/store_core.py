"""The core of the pod's durable store: one SQLite file (WAL) through aiosqlite, schema versioned by migrations.

Writes that acknowledge something to a client (a message, a reply) go through `commit_message`,
which commits before returning: the broker answers only after it. Concurrent writers are
grouped into one transaction (group commit), which is what makes thousands of durable
messages a second possible on one core. WAL with `synchronous=NORMAL` survives `kill -9` of the
broker (every committed transaction is in the WAL file in the OS's hands); only a power cut can
lose the last transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar

import aiosqlite
from podctl.pods import layout

from .commits import BatchHook, BatchWriter, NewMessage, Then, Waiter, in_transaction, insert_batch, run_statements
from .queries import StoreError, StoreLost
from .schema import MIGRATIONS

log = logging.getLogger("podctl.broker.store")

T = TypeVar("T")


def _settle_future(fut: asyncio.Future[NewMessage], msg: NewMessage | None, error: BaseException | None) -> None:
    if fut.done():  # its waiter was cancelled
        return
    if error is not None:
        fut.set_exception(error)
    elif msg is not None:
        fut.set_result(msg)


def first(row: Any) -> Any:
    """The first column of a row SQLite must return (an aggregate's)."""
    if row is None:
        raise StoreError("the pod's store returned no row where one is always expected")
    return row[0]



class StoreCore:
    """The store's connections, transactions and group commit; the records of each concern are in
    the classes that build on it (deliveries_store.py, asks_store.py, store.py).

    Two connections: `conn` writes (serialized by `_lock`, grouped by `commit_message`), `rconn`
    reads. In WAL mode the reader only ever sees committed data, so nothing is shown to a
    recipient before it is durable, and reads never wait behind a write transaction.
    """

    def __init__(self, conn: aiosqlite.Connection, rconn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.rconn = rconn
        self.path = Path()
        self._inode = 0
        self.lost: str | None = None
        self.on_lost: Callable[[str], None] | None = None
        self._pending: list[Waiter] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._batches: BatchWriter | None = None
        self.hooks: list[BatchHook] = []

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating or migrating) the store; a store that cannot be used raises StoreError
        with the reason, and leaves no connection thread behind."""
        conns: list[aiosqlite.Connection] = []
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
            conns.append(conn)
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=5000")
            await cls._migrate_conn(conn)
            rconn = await aiosqlite.connect(path, isolation_level=None)
            conns.append(rconn)
            await rconn.execute("PRAGMA busy_timeout=5000")
            await rconn.execute("PRAGMA query_only=ON")
            store = cls(conn, rconn)
            store._batches = BatchWriter(path)
            store.path = path
            store._inode = os.stat(path).st_ino
            async with conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'), 0),"
                " coalesce((SELECT max(id) FROM messages), 0))"
            ) as cur:
                store._next_id = first(await cur.fetchone())
            return store
        except (sqlite3.Error, OSError, StoreError) as exc:
            for conn in conns:
                try:
                    await asyncio.wait_for(conn.close(), timeout=5)
                except Exception:  # noqa: BLE001 - closing what failed to open; the cause is reported below
                    pass
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"cannot use the pod's store {path}: {exc}. If the disk is full, free space and try again;"
                f" if the file is damaged, move it away (its history is lost) and run `podctl up` again"
            ) from exc

    def check_file(self) -> None:
        """Refuse to go on if pod.db was deleted or replaced: acks would go into an unlinked file."""
        if self.lost is not None:
            raise StoreLost(self.lost)
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if inode != self._inode:
            self._give_up(
                f"the pod's store {self.path} was deleted or replaced while the broker ran; nothing more is"
                " acknowledged: the broker stops (the supervisor or `podctl up` starts it on a new store)"
            )

    def _give_up(self, reason: str) -> NoReturn:
        """Acknowledge nothing more and stop the broker (`on_lost`), which is then started again."""
        self.lost = reason
        if self.on_lost is not None:
            self.on_lost(reason)
        raise StoreLost(reason)

    async def close(self) -> None:
        if self._flush_task is not None:
            await asyncio.wait_for(asyncio.shield(self._flush_task), timeout=10)
        if self._batches is not None:
            self._batches.close()
        await self.rconn.close()
        await self.conn.close()

    @staticmethod
    async def _migrate_conn(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            version = int(first(await cur.fetchone()))
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{layout.DB} has schema version {version}, newer than this podctl knows ({len(MIGRATIONS)}): upgrade podctl"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    # -- writes -----------------------------------------------------------------

    async def commit_message(self, msg: NewMessage) -> NewMessage:
        """Commit one message (grouped with concurrent ones); returns once it is durable."""
        fut: asyncio.Future[NewMessage] = asyncio.get_running_loop().create_future()
        self.submit(msg, partial(_settle_future, fut))
        return await fut

    def submit(self, msg: NewMessage, then: Then) -> None:
        """Queue one message for the next group commit; `then` is called once: with the message once it
        is durable, or with the error that kept it from being stored (in the loop's thread, no task)."""
        self._pending.append(Waiter(msg, then))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            async with self._lock:
                failed = await self._commit_batch(batch)
                if failed is not None and len(batch) > 1 and not isinstance(failed, StoreLost):
                    # One bad message must not fail the others: commit them one by one.
                    for one in batch:
                        await self._commit_batch([one])
                elif failed is not None:
                    for waiter in batch:
                        waiter.settle(failed)

    async def _commit_batch(self, batch: list[Waiter]) -> Exception | None:
        """Commit `batch` in one transaction and tell its waiters; on failure roll back and return
        the error (a single message's waiter gets it)."""
        next_id = self._next_id
        try:
            await self._in_writer(partial(insert_batch, [w.message for w in batch], self._assign_ids, list(self.hooks)))
        except Exception as exc:  # noqa: BLE001 - reported to the callers whose messages failed
            self._next_id = next_id
            for waiter in batch:
                waiter.message.id, waiter.message.duplicate = None, False
            if len(batch) == 1:
                batch[0].settle(exc)
            return exc
        except BaseException:
            # Cancelled (the broker stops): COMMIT may have run, so the ids stay taken; nobody is left waiting.
            for waiter in batch:
                waiter.settle(StoreError("the broker stopped before the message was committed: send it again"))
            raise
        for waiter in batch:
            waiter.settle()
        return None

    @contextlib.asynccontextmanager
    async def _immediate(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK
        on any error (COMMIT's own included) and on cancellation. The caller holds `_lock`.

        aiosqlite runs the statements in order in one thread, and a cancelled `await` may still have
        run its statement (BEGIN included): so BEGIN is inside the `try`, and on every way out a
        ROLLBACK is queued behind whatever the body queued. The transaction always ends."""
        self.check_file()
        try:
            await self._begin()
            yield self.conn
            await self.conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):  # no transaction left, or the connection closed
                await self.conn.execute("ROLLBACK")
            raise

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE; a writer found inside a transaction nobody ended is rolled back first
        (logged); if even that fails, the store is given up (`lost`), so the broker stops and is
        started again rather than refusing every write."""
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            if not self.conn.in_transaction:
                raise
        await self._end_stray()
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._stuck(exc)

    async def _in_writer(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one transaction on the BatchWriter (one hand-over) and return what it returns;
        the caller holds `_lock`."""
        self.check_file()
        if self.conn.in_transaction:
            await self._end_stray()
        if self._batches is None:
            raise StoreError(f"the pod's store {self.path} is closed")
        result: T = await self._batches.run(partial(in_transaction, body))
        return result

    async def _end_stray(self) -> None:
        """Roll back a transaction of the writer that nobody ended (logged); give the store up if that fails."""
        log.warning("the store's writer was found inside a transaction that never ended: rolled it back")
        try:
            await self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._stuck(exc)

    def _stuck(self, exc: sqlite3.Error) -> NoReturn:
        self._give_up(f"the pod's store {self.path} is stuck inside a transaction ({exc}): the broker stops"
                      " (the supervisor or `podctl up` starts it again)")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction of its own (serialized with every other write)."""
        async with self._lock, self._immediate() as conn:
            yield conn

    def _assign_ids(self, batch: list[NewMessage]) -> list[NewMessage]:
        """Give each new message its id (the broker is the store's only writer, so every table can
        be written with one `executemany`); returns the messages to insert. A repeat, within the
        batch, of a (sender, client_msg_id) is a retry: it gets the first one's id and is not inserted."""
        fresh: list[NewMessage] = []
        seen: dict[tuple[str, str], NewMessage] = {}
        for msg in batch:
            key = (msg.sender, msg.client_msg_id) if msg.client_msg_id else None
            if key is not None and key in seen:
                first = seen[key]
                msg.id, msg.ts, msg.ask_id, msg.duplicate = first.id, first.ts, first.ask_id, True
                msg.conflict = not msg.same_as(first.kind, first.recipients, first.text)
                continue
            self._next_id += 1
            msg.id = self._next_id
            if msg.kind == "ask":
                msg.ask_id = msg.id
            if key is not None:
                seen[key] = msg
            fresh.append(msg)
        return fresh

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One small statement in its own transaction; returns the rows changed."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, tuple(params))
            count = cur.rowcount
            await cur.close()
        return count

    async def _write_returning(self, sql: str, params: Iterable[Any] = ()) -> list[int]:
        """One statement ending in `RETURNING <an integer column>`, run and read in one step of the
        writer's thread: SQLite commits a lone statement itself (autocommit), so it is one hand-over
        to that thread instead of three, and no cancellation can leave it half done. A writer found
        inside a transaction nobody ended takes the explicit path, which rolls that back first."""
        async with self._lock:
            if not self.conn.in_transaction:
                self.check_file()
                rows = await self.conn.execute_fetchall(sql, tuple(params))
                return sorted(int(r[0]) for r in rows)
            async with self._immediate() as conn:
                rows = await conn.execute_fetchall(sql, tuple(params))
        return sorted(int(r[0]) for r in rows)

    async def _write_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Statements in one transaction, in one hand-over to the BatchWriter's thread (a busy/idle
        change, at every hook, is two)."""
        async with self._lock:
            await self._in_writer(partial(run_statements, list(statements)))

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Run a read and fetch its rows in one step of the reader's thread (one hand-over, not three)."""
        return list(await self.rconn.execute_fetchall(sql, tuple(params)))

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row of a read that returns one row at most (an aggregate, a key, LIMIT 1)."""
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None
